#!/usr/bin/env bash
# Make a data dir consistent in place (intersection of ids, sorted, spk2utt rebuilt).
# A thin wrapper over `uattr fix-data-dir`, where the logic lives and is tested; see `uattr fix-data-dir --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr fix-data-dir "$@"
