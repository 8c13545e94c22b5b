"""Distillation losses: student embedding vs the teacher's vector of the same utterance."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uattr.losses.base import DistillationLoss, check_flag
from uattr.registry import LOSSES

_REDUCTIONS = ("sum", "mean")
# Cosine above 1 − this: the same teacher vector (one text embedded in two batches can differ in the last bits).
_DUPLICATE_TOLERANCE = 1e-5


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
    return reduction


@LOSSES.register("cosine")
class CosineLoss(DistillationLoss):
    """scale · reduce_b(1 − cos(student_b, teacher_b)); the paper: scale 50, summed over the batch."""

    def __init__(self, scale: float = 50.0, reduction: str = "sum") -> None:
        super().__init__()
        if scale <= 0:  # a negative scale would push the student away from its teacher
            raise ValueError(f"scale must be positive, got {scale}")
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
    averages the two cross-entropies. Two utterances of one sentence share one teacher vector (many speakers read
    the same prompts in Common Voice; every voice reads every unit in the mini recipe). With
    ``mask_duplicate_targets`` another batch item whose teacher vector equals this one's (cosine ≥ 1 − 1e-5) is
    not a negative, so the loss does not push apart students that must meet at the same point. It is off by
    default so that saved experiment configs keep the loss they were trained with; the mini recipe measured it
    (egs/mini/uattr1/TUNING.md).
    """

    def __init__(
        self, temperature: float = 0.07, symmetric: bool = False, mask_duplicate_targets: bool = False
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = check_flag("symmetric", symmetric)
        self.mask_duplicate_targets = check_flag("mask_duplicate_targets", mask_duplicate_targets)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        teacher = F.normalize(teacher.float(), dim=-1)
        logits = F.normalize(student, dim=-1) @ teacher.to(student.dtype).t()
        logits = logits / self.temperature
        if self.mask_duplicate_targets:
            duplicate = (teacher @ teacher.t()) >= 1.0 - _DUPLICATE_TOLERANCE
            duplicate.fill_diagonal_(False)
            logits = logits.masked_fill(duplicate, float("-inf"))
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        return (loss + F.cross_entropy(logits.t(), labels)) / 2 if self.symmetric else loss
