#!/usr/bin/env bash
# mTEDx → per pair and split data/<split>_<src>_<tgt> (talks cut by segments, text, text.<tgt>), the
# translation gallery data/<split>_<src>_<tgt>_text, its query2ref map and data/retrieval_tasks.
# The logic lives in `uattr prepare-mtedx` (tested Python); see its --help.
set -euo pipefail

. utils/lib/log.sh

. ./db.sh
root=${MTEDX}          # the corpus folder (default: MTEDX from db.sh)
pairs="it-en"          # language pairs (the paper: it-en; any released pair works, e.g. "es-en fr-en pt-en")
splits="valid test"    # valid: model selection; test: reporting
help_message="Usage: $0 [--root DIR] [--pairs 'it-en es-en ...'] [--splits 'valid test']"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }
[ -n "${root}" ] || { log "Error: set MTEDX in db.sh or pass --root DIR"; exit 2; }
. ./path.sh

log "Preparing mTEDx (${pairs}) from ${root}"
# shellcheck disable=SC2086
uattr prepare-mtedx --root "${root}" --out data --pairs ${pairs} --splits ${splits}
log "Successfully finished"
