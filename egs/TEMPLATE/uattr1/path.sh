# Put the toolkit's virtual environment (made by `make install`) first on PATH.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)  # recipes link this file
export MAIN_ROOT
# A `uattr` already on PATH (an activated environment, `make demo`'s) wins; else the checkout's .venv.
if ! command -v uattr >/dev/null && [ -x "${MAIN_ROOT}/.venv/bin/uattr" ]; then
  export PATH="${MAIN_ROOT}/.venv/bin:${PATH}"
fi
export PATH="${MAIN_ROOT}/utils:${PATH}"
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
command -v uattr >/dev/null || { echo "path.sh: 'uattr' not found; run 'make install' in ${MAIN_ROOT}" >&2; return 1; }
