#!/usr/bin/env bash
# Combine data dirs: combine_data.sh DEST SRC1 SRC2 ...
# A thin wrapper over `uattr combine-data`, where the logic lives and is tested; see `uattr combine-data --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr combine-data "$@"
