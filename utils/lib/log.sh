# Sourced by the recipe scripts (egs/TEMPLATE/uattr1/uattr.sh, every local/*.sh): one log line format for all.
#   log "message"  →  2026-11-28T04:10:00 (data.sh:42:main) message
# A message that starts with "Error:" goes to stderr (as parse_options.sh's do), the others to stdout: a run whose
# output is redirected still shows why it stopped.
log() {
  local fname=${BASH_SOURCE[1]##*/}
  local line
  line="$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
  if [[ $* == Error:* ]]; then
    echo -e "${line}" >&2
  else
    echo -e "${line}"
  fi
}
