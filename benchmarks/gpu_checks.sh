#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (about 5 minutes on an H200): the tests marked `gpu` (skipped
# elsewhere, CI included) and the GPU rows of benchmarks/README.md (training step and data pipeline at the
# `small` and paper sizes, extraction at the paper's size). Each check runs even if an earlier one failed; the
# exit status is 1 if any did. Outputs go to OUT_DIR (default gpu_checks/), one file per check.
#
#   benchmarks/gpu_checks.sh [OUT_DIR]   # in the repository root; Python: $PYTHON, else make install's .venv
set -uo pipefail

out=${1:-gpu_checks}
default_python=python3
[ -x .venv/bin/python ] && default_python=.venv/bin/python  # make install's
python=${PYTHON:-$default_python}
mkdir -p "$out"
status=0

check() {  # check NAME COMMAND...: run COMMAND, its output into $out/NAME and the console
    local name=$1
    shift
    echo "== $name: $*"
    local started=$SECONDS
    "$@" 2>&1 | tee "$out/$name" || { echo "== $name FAILED"; status=1; }
    echo "== $name: $((SECONDS - started)) s"
}

check device.txt bash -c 'nvidia-smi -L && "$1" -c "import sys, torch, transformers; \
print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.get_device_name())"' _ "$python"
check tests.log env HF_HUB_OFFLINE=1 "$python" -m pytest -q -p no:cacheprovider -rs -m gpu tests
for preset in small w2v-bert-2.0; do
    check "train_step_$preset.md" "$python" benchmarks/train_step.py --device cuda --preset "$preset" --amp bf16 \
        --steps 4 --num-workers 8 --utterances 800
done
check extract_w2v-bert-2.0.md "$python" benchmarks/extract.py --device cuda --preset w2v-bert-2.0 --amp bf16 \
    --utterances 800 --num-workers 8
exit $status
