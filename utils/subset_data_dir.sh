#!/usr/bin/env bash
# Subset a data dir: --utt-list FILE, --langs en,fr, --per-lang N, --per-spk N, --first N (then <src> <dst>).
# Thin wrapper: the logic is `uattr subset-data-dir` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
if [ $# -eq 3 ] && [[ $2 =~ ^[0-9]+$ ]]; then  # Kaldi's form, whose N utterances are spread over the list
  echo "$0: Kaldi's '<src> <N> <dst>' is not this script's form: use --first N <src> <dst> (the first N ids in" \
    "sorted order) or --per-spk N <src> <dst>" >&2
  exit 2
fi
run_uattr subset-data-dir "$@"
