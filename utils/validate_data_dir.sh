#!/usr/bin/env bash
# Check a data dir: one line per problem (FILE:LINE: id 'X': ...), non-zero exit if any.
# A thin wrapper over `uattr validate-data-dir`, where the logic lives and is tested; see `uattr validate-data-dir --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr validate-data-dir "$@"
