#!/usr/bin/env bash
# FLEURS → per split and language data/<split>_<lang>, the English sentence gallery data/<split>_<pivot>_text,
# query2ref maps (speech→text, speech→speech; many recordings per sentence) and data/retrieval_tasks.
# The logic lives in `uattr prepare-fleurs` (tested Python); see its --help.
set -euo pipefail

. utils/lib/log.sh

. ./db.sh
root=${FLEURS}         # the corpus folder (default: FLEURS from db.sh)
languages=""           # query languages, e.g. "fr_fr de_de" (default: every language folder)
pivot=en_us            # the gallery language (conf/teachers.txt embeds data/<split>_<pivot>_text)
splits="dev test"      # dev: model selection; test: reporting
help_message="Usage: $0 [--root DIR] [--languages 'fr_fr de_de ...'] [--pivot en_us] [--splits 'dev test']"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "${help_message}" >&2; exit 2; }
[ -n "${root}" ] || { log "Error: set FLEURS in db.sh or pass --root DIR"; exit 2; }
. ./path.sh

log "Preparing FLEURS from ${root}"
# shellcheck disable=SC2086
uattr prepare-fleurs --root "${root}" --out data --pivot "${pivot}" --splits ${splits} \
  ${languages:+--languages ${languages}}
log "Successfully finished"
