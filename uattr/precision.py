"""Mixed precision: the one mapping from an ``amp`` setting to an autocast dtype, for training and extraction.

The model's weights stay in float32; under ``torch.autocast`` matrix products run in bf16 or fp16 and the
numerically delicate steps (normalisations, softmax, the pooling statistics) in float32. torch is imported in
the functions, so that the command line can offer ``AMP_CHOICES`` without loading it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ContextManager

from uattr.errors import ConfigError

if TYPE_CHECKING:
    import torch

AMP_CHOICES = ("none", "bf16", "fp16")
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16"}


def autocast_dtype(amp: str, device: torch.device, option: str) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (None for "none"); ``option`` names the setting in errors."""
    import torch

    if amp not in AMP_CHOICES:
        raise ConfigError(f"{option}: unknown precision '{amp}'; choices: {', '.join(AMP_CHOICES)}")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{option} bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp16")
    return getattr(torch, _DTYPE_NAMES[amp]) if amp in _DTYPE_NAMES else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` at ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    import torch

    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
