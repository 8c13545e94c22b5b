"""Classification losses for label attributes (language, gender, …); each owns its classifier weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uattr.losses.base import ClassificationLoss, check_flag
from uattr.registry import LOSSES
from uattr.speechbrain_import import import_speechbrain


@LOSSES.register("ce")
class CrossEntropyLoss(ClassificationLoss):
    """A Linear classifier on the embedding + cross-entropy."""

    def __init__(self, num_classes: int, embedding_dim: int, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes, embedding_dim)
        if not 0.0 <= label_smoothing <= 1.0:  # torch checks it only at the first forward, naming no setting
            raise ValueError(f"label_smoothing must be between 0 and 1, got {label_smoothing}")
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.label_smoothing = float(label_smoothing)

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(embedding), target, label_smoothing=self.label_smoothing)


@LOSSES.register("aam")
class AAMSoftmaxLoss(ClassificationLoss):
    """Additive angular margin softmax: s·cos(θ_y + m) for the true class, s·cos θ_j for the others.

    Cosines are taken between the L2-normalised embedding and L2-normalised class weights; the margin itself
    is speechbrain's ``AdditiveAngularMargin`` (with its handling of θ + m > π).
    """

    def __init__(
        self, num_classes: int, embedding_dim: int, margin: float = 0.2, scale: float = 30.0, easy_margin: bool = False
    ) -> None:
        super().__init__(num_classes, embedding_dim)
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        # imported here: speechbrain takes seconds to import and only this loss needs it
        speechbrain_losses = import_speechbrain("speechbrain.nnet.losses")

        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin = speechbrain_losses.AdditiveAngularMargin(
            margin=float(margin), scale=float(scale), easy_margin=check_flag("easy_margin", easy_margin)
        )

    def _cosines(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embedding, dim=-1), F.normalize(self.weight, dim=-1))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """s·cos θ_j for every class: the margin only makes training harder."""
        return self.margin.scale * self._cosines(embedding)

    def forward(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cosine = self._cosines(embedding)
        logits = self.margin(cosine, F.one_hot(target, self.num_classes).to(cosine.dtype))
        return F.cross_entropy(logits, target)
