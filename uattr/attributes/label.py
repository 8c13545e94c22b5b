"""The ``label`` expert: classify the utterance into one of ``classes`` (from a ``utt2<label>`` table)."""

from __future__ import annotations

from typing import Any

import torch

from uattr.attributes.base import AttributeConfig, AttributeExpert, target_error
from uattr.errors import ConfigError
from uattr.losses import ClassificationLoss
from uattr.registry import ATTRIBUTE_EXPERTS


@ATTRIBUTE_EXPERTS.register("label")
class LabelExpert(AttributeExpert):
    """Target: an int class index [B] into ``classes``; the loss (``ce`` or ``aam``) owns the classifier."""

    loss_kind = ClassificationLoss

    def __init__(self, name: str, config: AttributeConfig, num_hidden_states: int, hidden_size: int) -> None:
        where = f"attributes.{name}.classes"
        if not config.classes:
            raise ConfigError(f"{where}: a 'label' expert needs the list of class names")
        duplicates = sorted({label for label in config.classes if config.classes.count(label) > 1})
        if duplicates:
            raise ConfigError(f"{where}: class {duplicates[0]!r} is listed twice")
        super().__init__(name, config, num_hidden_states, hidden_size)

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes or [])

    def loss_arguments(self) -> dict[str, Any]:
        return {"num_classes": len(self.classes), "embedding_dim": self.embedding_dim}

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """Class scores [B, len(classes)] of this attribute's embeddings [B, E], columns in ``classes`` order."""
        return self.loss_fn.logits(embedding)

    def check_target(self, embedding: torch.Tensor, target: torch.Tensor) -> None:
        if target.shape != embedding.shape[:1] or target.is_floating_point():
            raise target_error(
                self, f"expected int class indices of shape ({embedding.shape[0]},), got {target.dtype} "
                f"{tuple(target.shape)}"
            )
        outside = target[(target < 0) | (target >= len(self.classes))]
        if outside.numel():
            raise target_error(
                self, f"class index {int(outside[0])} is outside the {len(self.classes)} classes "
                f"({', '.join(self.classes)}); was its table made with other classes?"
            )
