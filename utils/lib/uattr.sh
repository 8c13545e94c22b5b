# Sourced by the data-dir wrappers in utils/: find the `uattr` command and run one of its subcommands.
# `uattr` comes from PATH (path.sh puts the toolkit's .venv first); failing that, from the .venv of the checkout
# this utils/ folder belongs to (utils/ may be a symlink inside a recipe).

run_uattr() {
  local uattr_bin
  uattr_bin=$(command -v uattr || true)
  if [ -z "${uattr_bin}" ]; then
    uattr_bin="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)/.venv/bin/uattr"
    [ -x "${uattr_bin}" ] || { echo "$0: 'uattr' not found; run 'make install' and source path.sh" >&2; exit 1; }
  fi
  exec "${uattr_bin}" "$@"
}
