#!/usr/bin/env bash
# Check a data dir: one line per problem (FILE:LINE: id 'X': ...), non-zero exit if any.
# Thin wrapper: the logic is `uattr validate-data-dir` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr validate-data-dir "$@"
