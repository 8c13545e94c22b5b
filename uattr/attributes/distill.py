"""The ``distill`` expert: match a frozen teacher's embedding of the same utterance (semantic, speaker, …)."""

from __future__ import annotations

import torch

from uattr.attributes.base import AttributeConfig, AttributeExpert, target_error
from uattr.errors import ConfigError
from uattr.losses import DistillationLoss
from uattr.registry import ATTRIBUTE_EXPERTS


@ATTRIBUTE_EXPERTS.register("distill")
class DistillExpert(AttributeExpert):
    """Target: the teacher's float vector [B, dim]; the head maps the pooled vector to ``dim``."""

    loss_kind = DistillationLoss

    def __init__(self, name: str, config: AttributeConfig, num_hidden_states: int, hidden_size: int) -> None:
        if config.classes is not None:
            raise ConfigError(
                f"attributes.{name}.classes: only 'label' experts have classes (expert is '{config.expert}')"
            )
        super().__init__(name, config, num_hidden_states, hidden_size)

    def check_target(self, embedding: torch.Tensor, target: torch.Tensor) -> None:
        if target.shape != embedding.shape:
            raise target_error(
                self,
                f"shape {tuple(target.shape)} does not match the embeddings' {tuple(embedding.shape)}; set "
                f"{self.where}.dim to the teacher's dimension",
            )
        if not target.is_floating_point():
            raise target_error(self, f"expected float teacher vectors, got {target.dtype}")
