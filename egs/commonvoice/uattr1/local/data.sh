#!/usr/bin/env bash
# Common Voice → data/train (validated minus dev/test speakers and sentences, < 10 s), data/dev and data/test
# (per-language samples of dev.tsv/test.tsv, with query2ref maps for speech→text retrieval and speaker trials),
# data/retrieval_tasks.
# The logic lives in `uattr prepare-commonvoice` (tested Python); see its --help.
set -euo pipefail

. utils/lib/log.sh

. ./db.sh
root=${COMMONVOICE}    # the release folder (default: COMMONVOICE from db.sh)
languages=""           # language folders, e.g. "fr de it" (default: every folder with validated.tsv)
max_seconds=10         # drop training clips of this many seconds or more (the paper: 10)
dev_per_language=100   # dev clips per language (0: all of dev.tsv)
test_per_language=100  # test clips per language (0: all of test.tsv)
keep_held_out=false    # true: train on dev/test speakers' and sentences' other clips too (literal "validated")
trials_per_kind=10000  # dev/test trials: at most this many same-speaker pairs, and as many others
nj=8                   # clip headers read in parallel (only for clips missing from clip_durations.tsv)
help_message="Usage: $0 [--root DIR] [--languages 'fr de ...'] [--max_seconds 10] [--dev_per_language N]
  [--test_per_language N] [--keep_held_out true|false] [--trials_per_kind N] [--nj N]"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }
[ -n "${root}" ] || { log "Error: set COMMONVOICE in db.sh or pass --root DIR"; exit 2; }
. ./path.sh

log "Preparing Common Voice from ${root}"
opts=()
[ -n "${languages}" ] && read -r -a langs <<< "${languages}" && opts+=(--languages "${langs[@]}")
[ "${keep_held_out}" = true ] && opts+=(--keep-held-out)
uattr prepare-commonvoice --root "${root}" --out data --max-seconds "${max_seconds}" \
  --dev-per-language "${dev_per_language}" --test-per-language "${test_per_language}" \
  --trials-per-kind "${trials_per_kind}" --nj "${nj}" "${opts[@]}"
log "Successfully finished"
