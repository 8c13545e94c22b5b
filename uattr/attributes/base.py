"""Attribute configuration and the expert interface: one branch + one loss + the batch entry it learns from."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from uattr.branch import AttributeBranch, BranchConfig
from uattr.errors import ConfigError, DataError
from uattr.losses import LossConfig, build_loss
from uattr.registry import ATTRIBUTE_EXPERTS


@dataclasses.dataclass
class WeightSchedule:
    """When an attribute's loss joins the training total: not before update ``start_step``, then its weight
    rises linearly to the full ``weight`` over ``ramp_steps`` updates (default: full weight from the start).

    Why: an encoder trained from scratch learns content features best before a speaker loss reshapes its lower
    layers (egs/mini/uattr1/TUNING.md: with the speaker loss from update 20, ramped in by 60, the joint model's
    semantic branch matches the semantic-only model on dev). Validation always uses the full weights.
    """

    start_step: int = 0
    ramp_steps: int = 0

    def factor(self, step: int) -> float:
        """The share of the weight in effect at update ``step`` (0-based: updates done so far): 0 for the first
        ``start_step`` updates, then 1/ramp, 2/ramp, ... up to 1 at update ``start_step + ramp_steps``."""
        if step < self.start_step:
            return 0.0
        if self.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - self.start_step + 1) / self.ramp_steps)


@dataclasses.dataclass
class AttributeConfig:
    """One block of the ``attributes:`` mapping.

    ``dim`` is the target (teacher's) dimension; ``classes`` the label set of a ``label`` expert; ``weight``
    scales this attribute's loss in the total, ``weight_schedule`` says from which update; ``teacher`` is a
    free-form record (name/model/field) of who made the targets, shown on the model card.
    """

    expert: str = "distill"
    dim: int | None = None
    classes: list[str] | None = None
    branch: BranchConfig = dataclasses.field(default_factory=BranchConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    weight: float = 1.0
    weight_schedule: WeightSchedule = dataclasses.field(default_factory=WeightSchedule)
    teacher: dict[str, Any] = dataclasses.field(default_factory=dict)


class AttributeExpert(nn.Module):
    """Base of every expert: ``forward(hidden, frame_lens) -> [B, E]``, ``loss(embedding, target) -> scalar``.

    ``target_key`` names the ``batch["targets"]`` entry it learns from (the attribute's name). Subclasses set
    ``loss_kind`` and say what the branch outputs and what the loss is given.
    """

    loss_kind: ClassVar[type[nn.Module]]

    def __init__(self, name: str, config: AttributeConfig, num_hidden_states: int, hidden_size: int) -> None:
        super().__init__()
        self.name = name
        self.target_key = name
        self.config = config
        self.where = f"attributes.{name}"
        if config.dim is not None and config.dim < 1:
            raise ConfigError(f"{self.where}.dim: must be a positive integer, got {config.dim}")
        self.branch = AttributeBranch(
            config.branch, num_hidden_states, hidden_size, self.branch_output_dim(), where=f"{self.where}.branch"
        )
        self.loss_fn = build_loss(config.loss, f"{self.where}.loss", self.loss_kind, **self.loss_arguments())

    @property
    def embedding_dim(self) -> int:
        return self.branch.output_dim

    def branch_output_dim(self) -> int | None:
        """The embedding dimension the head must produce (None: keep the pooled dimension)."""
        return self.config.dim

    def loss_arguments(self) -> dict[str, Any]:
        """Loss constructor arguments fixed by the expert rather than by ``loss.options``."""
        return {}

    def check_target(self, embedding: torch.Tensor, target: torch.Tensor) -> None:
        """Raise DataError when the batch's targets cannot belong to this attribute."""

    def forward(self, hidden: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        return self.branch(hidden, frame_lens)

    def loss(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_target(embedding, target)
        return self.loss_fn(embedding, target)


def build_expert(name: str, config: AttributeConfig, num_hidden_states: int, hidden_size: int) -> AttributeExpert:
    """The registered expert ``config.expert`` for attribute ``name``."""
    factory = ATTRIBUTE_EXPERTS.get(config.expert, where=f"attributes.{name}.expert")
    return factory(name, config, num_hidden_states, hidden_size)


def target_error(expert: AttributeExpert, problem: str) -> DataError:
    """A DataError naming the attribute whose batch targets are wrong."""
    return DataError(f"targets of attribute '{expert.name}': {problem}")
