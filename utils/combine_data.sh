#!/usr/bin/env bash
# Combine data dirs: combine_data.sh DEST SRC1 SRC2 ...
# Thin wrapper: the logic is `uattr combine-data` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr combine-data "$@"
