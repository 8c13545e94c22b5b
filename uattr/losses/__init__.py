"""Attribute losses; importing this package registers the built-ins in ``uattr.registry.LOSSES``.

Distillation (student vs teacher vector): ``cosine`` (the paper: 50 · Σ(1 − cos)), ``mse`` (SONAR),
``infonce``. Classification (int class targets, own classifier weights): ``ce``, ``aam``.
"""

from uattr.losses import classify, distill  # noqa: F401  (registration)
from uattr.losses.base import ClassificationLoss, DistillationLoss, LossConfig, build_loss

__all__ = ["ClassificationLoss", "DistillationLoss", "LossConfig", "build_loss"]
