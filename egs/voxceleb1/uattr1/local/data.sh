#!/usr/bin/env bash
# VoxCeleb1 → data/voxceleb1_test (+ trials_o), data/voxceleb1 (+ trials_e, trials_h), data/voxceleb1_cohort.
# The logic lives in `uattr prepare-voxceleb` (tested Python); see its --help.
set -euo pipefail

. utils/lib/log.sh

. ./db.sh
root=${VOXCELEB1}      # the corpus folder (default: VOXCELEB1 from db.sh)
lists_dir=""           # folder of the official lists (default: the corpus folder)
lists="o e h"          # trial lists to convert (o is required; without e and h, run.sh needs
                       # --sv_sets voxceleb1_test:trials_o, as it scores data/voxceleb1 otherwise)
cohort_per_speaker=5   # AS-norm cohort: utterances per speaker outside the O list (0: no cohort)
help_message="Usage: $0 [--root DIR] [--lists_dir DIR] [--lists 'o e h'] [--cohort_per_speaker N]"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }
[ -n "${root}" ] || { log "Error: set VOXCELEB1 in db.sh or pass --root DIR"; exit 2; }
. ./path.sh

log "Preparing VoxCeleb1 from ${root}"
# shellcheck disable=SC2086
uattr prepare-voxceleb --root "${root}" --out data --lists ${lists} --cohort-per-speaker "${cohort_per_speaker}" \
  ${lists_dir:+--lists-dir "${lists_dir}"}
log "Successfully finished"
