#!/usr/bin/env bash
# VoxPopuli interpretation pairs → per pair and split data/<split>_<src>_<tgt>_source (queries),
# data/<split>_<src>_<tgt>_target (interpreted speech, the gallery), the query2ref map and data/retrieval_tasks.
# The logic lives in `uattr prepare-voxpopuli` (tested Python); see its --help.
set -euo pipefail

. utils/lib/log.sh

. ./db.sh
root=${VOXPOPULI}      # the corpus folder (default: VOXPOPULI from db.sh)
pairs="fr-en"          # source-target pairs (the paper: fr-en)
splits="dev test"      # the ASR split of the source segment; dev: model selection, test: reporting
annotated_target=false # true: read <tgt>/s2s_ref.tsv (get_s2s_data --use-annotated-target), transcribed targets
help_message="Usage: $0 [--root DIR] [--pairs 'fr-en de-en ...'] [--splits 'dev test'] [--annotated_target true]"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }
[ -n "${root}" ] || { log "Error: set VOXPOPULI in db.sh or pass --root DIR"; exit 2; }
. ./path.sh

log "Preparing VoxPopuli interpretation pairs (${pairs}) from ${root}"
opts=()
case "${annotated_target}" in
  true) opts+=(--annotated-target) ;;
  false) ;;
  *) log "Error: --annotated_target must be true or false, got '${annotated_target}'"; exit 2 ;;
esac
# shellcheck disable=SC2086
uattr prepare-voxpopuli --root "${root}" --out data --pairs ${pairs} --splits ${splits} "${opts[@]}"
log "Successfully finished"
