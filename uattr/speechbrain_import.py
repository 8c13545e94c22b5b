"""speechbrain without its process-wide side effects.

speechbrain's first import applies its "quirks" (``speechbrain.utils.quirks``) to the whole process: TF32 matrix
products on CUDA (``torch.backends.cuda.matmul.allow_tf32 = True``) and the TorchScript profiling executor off. uattr
imports it for the AAM-softmax loss and the ECAPA teacher, and a run's float32 numerics must not change with whether
one of them is configured (measured on an H200: the fused branch projection's float32 error grew from < 1e-5 to
2.8e-4 once a test had built an AAM loss). So uattr's imports of speechbrain go through :func:`import_speechbrain`,
which disables those two quirks with speechbrain's own switch, ``SB_DISABLE_QUIRKS``. Whoever wants TF32 sets it in
torch. A process that imported speechbrain before keeps what that import did.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Iterator

PROCESS_WIDE_QUIRKS = ("allow_tf32", "disable_jit_profiling")


def import_speechbrain(module: str) -> ModuleType:
    """``importlib.import_module(module)`` (a ``speechbrain.*`` module) with the process-wide quirks disabled."""
    with _quirks_disabled():
        return importlib.import_module(module)


@contextlib.contextmanager
def _quirks_disabled() -> Iterator[None]:
    if "speechbrain.core" in sys.modules:  # the quirks ran (or not) at that first import
        yield
        return
    before = os.environ.get("SB_DISABLE_QUIRKS")
    excluded = [name for name in (before or "").split(",") if name]
    os.environ["SB_DISABLE_QUIRKS"] = ",".join(dict.fromkeys([*excluded, *PROCESS_WIDE_QUIRKS]))
    try:
        yield
    finally:
        if before is None:
            del os.environ["SB_DISABLE_QUIRKS"]
        else:
            os.environ["SB_DISABLE_QUIRKS"] = before
