#!/usr/bin/env bash
# Split a data dir for N jobs: split_data.sh [--per-utt] DIR N → DIR/splitN[utt]/{1..N}.
# Thin wrapper: the logic is `uattr split-data` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr split-data "$@"
