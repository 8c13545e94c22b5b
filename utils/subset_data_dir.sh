#!/usr/bin/env bash
# Subset a data dir: --utt-list FILE, --langs en,fr, --per-lang N, --per-spk N, --first N.
# A thin wrapper over `uattr subset-data-dir`, where the logic lives and is tested; see `uattr subset-data-dir --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr subset-data-dir "$@"
