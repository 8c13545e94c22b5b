"""A uattr plug-in that lives outside the package: its import registers a pooling, an attribute expert that
regresses one number, and the teacher that gives it its targets."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from uattr.attributes.distill import DistillExpert
from uattr.branch.pooling import frame_mask
from uattr.registry import ATTRIBUTE_EXPERTS, POOLINGS
from uattr.teachers import Teacher, register_teacher


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


@register_teacher("toy_number")
class NumberTeacher(Teacher):
    """One float per utterance, read from a data-dir table (``utt2rate`` unless ``--field`` names another)."""

    input = "label"  # the table's values as written ("text" reads a text field, "audio" the waveforms)
    default_field = "utt2rate"
    dim = 1
    normalized = False

    def embed(self, batch):
        return np.asarray([[float(value)] for value in batch], dtype=np.float32)
