#!/usr/bin/env bash
# Subset a data dir: --utt-list FILE, --langs en,fr, --per-lang N, --per-spk N, --first N.
# Thin wrapper: the logic is `uattr subset-data-dir` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr subset-data-dir "$@"
