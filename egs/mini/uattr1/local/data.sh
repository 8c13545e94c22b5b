#!/usr/bin/env bash
# Stage 1 of the mini recipe: synthesise the UDHR TTS corpus into data/ (data dirs, trials, retrieval sets).
# Run from egs/mini/uattr1. Audio is cached in data/wav: a re-run only rewrites the tables.
set -euo pipefail

nj=2                 # parallel synthesis jobs
toy=false            # true: espeak-ng only, en+fr, a few voices and units (CI)
languages=""         # ISO 639-1 codes to keep (empty: every language of the roster)
min_voices=40        # stop unless this many voices are usable
units_per_voice=14   # units each training voice reads (14 = every seen unit, with max_words 16)
eval_units_per_voice=17  # units each dev/test voice reads (17 = all: 14 seen + 3 unseen): more queries per voice
max_words=16         # drop units whose English text is longer (short units: more repetitions per unit)
seed=0
prepare_opts=""      # more `uattr prepare-mini` options (e.g. "--max-words 20 --num-trials 500")

help_message="Usage: $0 [--nj 2] [--toy true|false] [--languages 'en fr'] [--min_voices 40] [--units_per_voice 14]
       [--eval_units_per_voice 17] [--max_words 16]
       [--seed 0] [--prepare_opts '...']"

MAIN_ROOT=${MAIN_ROOT:-$(cd "$(dirname "$0")/../../../.." && pwd)}
. "${MAIN_ROOT}/utils/lib/log.sh"
. "${MAIN_ROOT}/utils/parse_options.sh"
if [ $# -ne 0 ]; then
  echo "${help_message}" >&2
  exit 2
fi

args=(--out data --roster local/voices.txt --udhr local/udhr --nj "${nj}" --seed "${seed}"
      --min-voices "${min_voices}" --units-per-voice "${units_per_voice}"
      --eval-units-per-voice "${eval_units_per_voice}" --max-words "${max_words}")
[ -n "${languages}" ] && args+=(--languages ${languages})
"${toy}" && args+=(--toy)
log "uattr prepare-mini ${args[*]} ${prepare_opts}"
# shellcheck disable=SC2086
uattr prepare-mini "${args[@]}" ${prepare_opts}
