#!/usr/bin/env bash
# Split a data dir for N jobs: split_data.sh [--per-utt] DIR N → DIR/splitN[utt]/{1..N}.
# A thin wrapper over `uattr split-data`, where the logic lives and is tested; see `uattr split-data --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr split-data "$@"
