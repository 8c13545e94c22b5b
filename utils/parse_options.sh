#!/usr/bin/env bash
# Command-line options for recipe scripts, with Kaldi/ESPnet semantics. Source it after setting defaults:
#
#   nj=4
#   use_gpu=false
#   help_message="Usage: $0 [--nj N] [--use-gpu true|false] <data-dir>"
#   . utils/parse_options.sh
#
# "--opt value" and "--opt=value" set the shell variable "opt" (dashes become underscores), only if the script
# defined it: an unknown option is an error. A variable that held true/false only accepts true/false.
# "--config FILE" sources FILE (shell assignments) before the other options, so the command line wins.
# "--help" (or -h) prints $help_message, or runs the script's print_help function if it defines one (so that the
# defaults it shows are those set by the options before --help), and exits 0. Parsing stops at the first
# non-option argument or at "--"; the remaining positional arguments are left in "$@".

_po_die() {
  echo "$0: $*" >&2
  exit 1
}

# First pass: --config files, so that options given on the command line override them. Like the second pass, it
# stops at the first non-option argument: a command's own --config (e.g. in "run.sh LOG uattr train --config
# x.yaml") is not ours.
_po_args=("$@")
for ((_po_i = 0; _po_i < ${#_po_args[@]}; _po_i++)); do
  _po_config=""
  case "${_po_args[_po_i]}" in
    --config=*) _po_config=${_po_args[_po_i]#--config=} ;;
    --config)
      ((_po_i + 1 < ${#_po_args[@]})) || _po_die "option --config needs a file"
      _po_config=${_po_args[_po_i + 1]}
      _po_i=$((_po_i + 1))
      ;;
    --help | -h | --*=*) ;;
    --) break ;;
    --*) _po_i=$((_po_i + 1)) ;;  # skip the option's value
    *) break ;;
  esac
  if [ -n "${_po_config}" ]; then
    [ -r "${_po_config}" ] || _po_die "cannot read config file '${_po_config}'"
    # shellcheck disable=SC1090
    . "${_po_config}" || _po_die "error while sourcing config file '${_po_config}'"
  fi
done

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      if declare -F print_help > /dev/null; then
        print_help  # built now, so its defaults include the options parsed so far
      else
        printf '%s\n' "${help_message:-No help found for $0.}"
      fi
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      _po_option=${1%%=*}
      _po_value=${1#*=}
      _po_missing=0
      shift
      ;;
    --*)
      _po_option=$1
      _po_value=${2-}
      _po_missing=$(($# < 2))  # no value: said once the option is known to exist
      shift $((2 - _po_missing))
      ;;
    *) break ;;
  esac
  _po_name=${_po_option#--}
  _po_name=${_po_name//-/_}
  [ "${_po_name}" = config ] && continue  # already sourced above
  if ! [[ ${_po_name} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_name+set}" ]; then
    _po_die "invalid option ${_po_option} (see $0 --help)"
  fi
  [ "${_po_missing}" = 0 ] || _po_die "option ${_po_option} needs a value"
  case "${!_po_name}" in
    true | false)
      case "${_po_value}" in
        true | false) ;;
        *) _po_die "option ${_po_option} expects true or false, got '${_po_value}'" ;;
      esac
      ;;
  esac
  printf -v "${_po_name}" '%s' "${_po_value}"
done

unset -f _po_die
unset _po_args _po_i _po_config _po_option _po_value _po_name _po_missing
