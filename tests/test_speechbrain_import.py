"""uattr's imports of speechbrain leave the process's float32 numerics alone (each case in a fresh interpreter:
speechbrain's import-time quirks run once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPORT = "import torch; print(torch.backends.cuda.matmul.allow_tf32)"


def _tf32_after(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}; {REPORT}"], capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "SB_DISABLE_QUIRKS"}, **env},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()[-1]


def test_a_plain_speechbrain_import_turns_tf32_on() -> None:
    """The side effect uattr guards against (if a speechbrain release drops it, this test says so)."""
    assert _tf32_after("import speechbrain.nnet.losses") == "True"


@pytest.mark.parametrize(
    "code",
    [
        "from uattr.losses.classify import AAMSoftmaxLoss; AAMSoftmaxLoss(3, 4)",
        "import uattr.speechbrain_import as sb; sb.import_speechbrain('speechbrain.inference.classifiers')",
    ],
)
def test_uattrs_speechbrain_imports_leave_tf32_off(code: str) -> None:
    assert _tf32_after(code) == "False"


def test_the_users_own_excluded_quirks_are_kept_and_the_variable_restored() -> None:
    code = (
        "import os; from uattr.speechbrain_import import import_speechbrain; "
        "import_speechbrain('speechbrain.nnet.losses'); import speechbrain.utils.quirks as q; "
        "print(sorted(q.excluded_quirks), os.environ['SB_DISABLE_QUIRKS'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SB_DISABLE_QUIRKS": "disable_cudnn_benchmarking"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == (
        "['allow_tf32', 'disable_cudnn_benchmarking', 'disable_jit_profiling'] disable_cudnn_benchmarking"
    )
