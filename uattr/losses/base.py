"""Loss configuration and construction shared by every attribute expert."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch import nn

from uattr.errors import ConfigError
from uattr.registry import LOSSES


def check_flag(name: str, value: object) -> bool:
    """A loss option that must be a boolean: bool("false") is True, so a string must fail, not switch it on."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


@dataclasses.dataclass
class LossConfig:
    """A registered loss by name; ``options`` are its keyword arguments (e.g. ``{scale: 50, reduction: sum}``)."""

    name: str = "cosine"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


class DistillationLoss(nn.Module):
    """Pulls a student embedding [B, E] towards its teacher's float vector [B, E]."""


class ClassificationLoss(nn.Module):
    """Classifies an embedding [B, E] into one of ``num_classes`` (int targets [B]); owns its classifier.

    ``logits`` gives the class scores the loss trains, without a training-only margin: validation accuracy and
    ``UnifiedEncoder.classify`` read them. A subclass defines both ``forward`` and ``logits``.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """Class scores [B, num_classes] of embeddings [B, E]; their softmax is the class posterior."""
        raise NotImplementedError(f"{type(self).__name__} defines no logits(): it gives no class scores")


def gives_logits(loss: nn.Module) -> bool:
    """Whether a classification loss defines :meth:`ClassificationLoss.logits` (a plug-in written before it may
    not: it still trains, without a dev accuracy or ``classify``)."""
    return type(loss).logits is not ClassificationLoss.logits


def build_loss(config: LossConfig, where: str, kind: type[nn.Module], **provided: Any) -> nn.Module:
    """Instantiate ``config`` as a loss of ``kind``; ``provided`` are arguments the expert sets itself.

    ``where`` is the config path of the loss block (``attributes.<attr>.loss``); every error names a key in it.
    """
    factory = LOSSES.get(config.name, where=f"{where}.name")
    if not _is_loss_of(factory, kind):
        fitting = [name for name in LOSSES.names() if _is_loss_of(LOSSES.get(name), kind)]
        raise ConfigError(
            f"{where}.name: loss '{config.name}' is not a {kind.__name__} (this attribute's expert needs one of: "
            f"{', '.join(fitting)})"
        )
    clash = sorted(set(config.options) & set(provided))
    if clash:
        raise ConfigError(f"{where}.options.{clash[0]}: set by the attribute itself, not a loss option")
    kwargs = {**config.options, **provided}
    try:
        inspect.signature(factory).bind(**kwargs)
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}.options: {error}") from None


def _is_loss_of(factory: object, kind: type[nn.Module]) -> bool:
    return isinstance(factory, type) and issubclass(factory, kind)
