"""Distillation losses: student embedding vs the teacher's vector of the same utterance."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uattr.losses.base import DistillationLoss
from uattr.registry import LOSSES

_REDUCTIONS = ("sum", "mean")


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
    return reduction


@LOSSES.register("cosine")
class CosineLoss(DistillationLoss):
    """scale · reduce_b(1 − cos(student_b, teacher_b)); the paper: scale 50, summed over the batch."""

    def __init__(self, scale: float = 50.0, reduction: str = "sum") -> None:
        super().__init__()
        self.scale = float(scale)
        self.reduction = _check_reduction(reduction)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        distance = 1.0 - F.cosine_similarity(student, teacher, dim=-1)
        return self.scale * (distance.sum() if self.reduction == "sum" else distance.mean())


@LOSSES.register("mse")
class MSELoss(DistillationLoss):
    """Mean (or summed) squared error between the vectors, as SONAR distils into its text space."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(student, teacher.to(student.dtype), reduction=self.reduction)


@LOSSES.register("infonce")
class InfoNCELoss(DistillationLoss):
    """Contrastive: each student must pick its own teacher among the batch's (in-batch negatives).

    Logits are cosine similarities / temperature; ``symmetric`` also makes each teacher pick its student and
    averages the two cross-entropies.
    """

    def __init__(self, temperature: float = 0.07, symmetric: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        logits = F.normalize(student, dim=-1) @ F.normalize(teacher.to(student.dtype), dim=-1).t()
        logits = logits / self.temperature
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        return (loss + F.cross_entropy(logits.t(), labels)) / 2 if self.symmetric else loss
