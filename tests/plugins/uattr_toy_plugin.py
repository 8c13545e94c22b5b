"""A uattr plug-in that lives outside the package: its import registers a pooling and an attribute expert."""

from __future__ import annotations

import torch
from torch import nn

from uattr.attributes.distill import DistillExpert
from uattr.branch.pooling import frame_mask
from uattr.registry import ATTRIBUTE_EXPERTS, POOLINGS


@POOLINGS.register("toy_max")
class MaxPooling(nn.Module):
    """Masked max over time."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lens, frames.shape[1])
        return frames.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)


@ATTRIBUTE_EXPERTS.register("toy_scalar")
class ScalarExpert(DistillExpert):
    """Regresses one number per utterance (e.g. speaking rate): the head always outputs 1 value."""

    def branch_output_dim(self) -> int:
        return 1
