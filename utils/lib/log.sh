# Sourced by the recipe scripts (egs/TEMPLATE/uattr1/uattr.sh, every local/*.sh): one log line format for all.
#   log "message"  →  2026-11-28T04:10:00 (data.sh:42:main) message
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
