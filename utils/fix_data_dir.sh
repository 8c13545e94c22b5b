#!/usr/bin/env bash
# Make a data dir consistent in place (intersection of ids, sorted, spk2utt rebuilt).
# Thin wrapper: the logic is `uattr fix-data-dir` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr fix-data-dir "$@"
