#!/usr/bin/env bash
# Subset a data dir: --utt-list FILE, --langs en,fr, --per-lang N, --per-spk N, --first N (then <src> <dst>).
# Thin wrapper: the logic is `uattr subset-data-dir` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
# Kaldi's forms '<src> <N> <dst>' (N utterances spread over the list) and '--per-spk <src> <N> <dst>'.
if { [ $# -eq 3 ] && [[ $2 =~ ^[0-9]+$ ]]; } || { [ $# -eq 4 ] && [ "$1" = --per-spk ] && [[ $3 =~ ^[0-9]+$ ]]; }; then
  echo "$0: Kaldi's '[--per-spk] <src> <N> <dst>' is not this script's form: use --first N <src> <dst> (the first N" \
    "ids in sorted order) or --per-spk N <src> <dst>" >&2
  exit 2
fi
run_uattr subset-data-dir "$@"
