"""Optimisers and learning-rate schedules for the two parameter groups ("upstream" and "branches").

Each group gets its own optimiser and its own schedule, and the trainer steps both on every update (the
reference implementation built a second optimiser for the pooling heads and never stepped it).
A schedule is ``lr = initial lr × shape(step) × NewBob scale``: the shape is the warm-up/decay curve of
``warmup_linear``, ``warmup_cosine`` or ``constant`` (and the warm-up of ``newbob``), the scale is the
NewBob annealing driven by the validation loss.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable

import torch
from torch import nn

from uattr.errors import ConfigError
from uattr.train.config import GroupConfig, OptimizerConfig, SchedulerConfig

logger = logging.getLogger(__name__)

GROUPS = ("upstream", "branches")

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adadelta": torch.optim.Adadelta,
    "sgd": torch.optim.SGD,
}


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters of ``model.upstream`` → "upstream"; every other trainable one → "branches"."""
    upstream_ids = {id(p) for p in model.upstream.parameters()}
    groups: dict[str, list[nn.Parameter]] = {name: [] for name in GROUPS}
    for parameter in model.parameters():
        if parameter.requires_grad:
            groups["upstream" if id(parameter) in upstream_ids else "branches"].append(parameter)
    return groups


def build_optimizer(params: Iterable[nn.Parameter], config: OptimizerConfig, where: str) -> torch.optim.Optimizer:
    """One torch optimiser; bad keyword arguments are a ConfigError naming ``where``."""
    try:
        return _OPTIMIZERS[config.name](list(params), lr=config.lr, **config.kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}.kwargs: {error}") from error


class NewBob:
    """NewBob annealing with speechbrain's ``NewBobScheduler`` semantics (the paper's reference code).

    Written here because speechbrain's class has no ``state_dict`` and owns no optimiser, and torch's
    ``ReduceLROnPlateau`` behaves differently: it compares with the best value (NewBob with the previous
    one) and resets its patience on every improvement (NewBob never does). Two departures from speechbrain,
    where its arithmetic misleads: a non-finite value counts as no improvement and is not kept as the previous
    one (NaN compares false, so it had passed as an improvement and waved the next value through too), and the
    relative improvement divides by ``|previous|`` (a loss below zero, as learned uncertainty weights give, had
    annealed when it fell and never when it rose).
    """

    def __init__(self, threshold: float, factor: float, patience: int) -> None:
        self.threshold = threshold
        self.factor = factor
        self.patience = patience
        self.patience_left = patience
        self.scale = 1.0
        self.previous: float | None = None

    def observe(self, metric: float) -> float:
        """Record one validation value; anneal when the relative improvement is below the threshold."""
        if not math.isfinite(metric):
            logger.warning("NewBob: a dev loss of %s counts as no improvement", metric)
            self._no_improvement()
            return self.scale
        if self.previous is not None:
            improvement = 0.0 if self.previous == 0 else (self.previous - metric) / abs(self.previous)
            if improvement < self.threshold:
                self._no_improvement()
        self.previous = metric
        return self.scale

    def _no_improvement(self) -> None:
        if self.patience_left == 0:
            self.scale *= self.factor
            self.patience_left = self.patience
        else:
            self.patience_left -= 1

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "previous": self.previous, "patience_left": self.patience_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = state["scale"]
        self.previous = state["previous"]
        self.patience_left = state["patience_left"]


def schedule_shape(config: SchedulerConfig, total_steps: int | None) -> Callable[[int], float]:
    """The multiplier of the initial lr at update ``step`` (0-based), transformers' warm-up conventions.

    Linear warm-up from 0 over ``warmup_steps`` updates, then constant (``constant``, ``newbob``), linear decay
    to 0 at ``total_steps`` (``warmup_linear``) or half a cosine to 0 (``warmup_cosine``).
    """
    warmup, name = config.warmup_steps, config.name
    if name in ("warmup_linear", "warmup_cosine") and not total_steps:
        raise ConfigError(f"scheduler '{name}' needs a known number of steps (trainer.max_steps or max_epochs)")

    def shape(step: int) -> float:
        if step < warmup:
            return step / warmup
        if name in ("constant", "newbob"):
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 1.0 - progress if name == "warmup_linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return shape


class LearningRateSchedule:
    """Sets the lr of every param group of one optimiser: initial lr × shape(update) × NewBob scale."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: SchedulerConfig, total_steps: int | None) -> None:
        self.optimizer = optimizer
        self.initial_lrs = [group["lr"] for group in optimizer.param_groups]
        self.name = config.name
        # What the shape decays over; None for the schedules that do not depend on the run's length.
        self.decay_steps = total_steps if config.name in ("warmup_linear", "warmup_cosine") else None
        self.shape = schedule_shape(config, total_steps)
        self.newbob = NewBob(config.threshold, config.factor, config.patience) if config.name == "newbob" else None
        self.updates = 0
        self._apply()

    def step(self) -> None:
        """Advance one optimiser update."""
        self.updates += 1
        self._apply()

    def observe_validation(self, loss: float) -> None:
        """Feed the validation loss to NewBob (a no-op for the other schedules)."""
        if self.newbob is not None:
            self.newbob.observe(loss)
            self._apply()

    def current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        scale = self.shape(self.updates) * (self.newbob.scale if self.newbob is not None else 1.0)
        for group, initial in zip(self.optimizer.param_groups, self.initial_lrs):
            group["lr"] = initial * scale

    def state_dict(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "initial_lrs": list(self.initial_lrs),
            "newbob": self.newbob.state_dict() if self.newbob is not None else None,
            "decay_steps": self.decay_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's schedule; one that decays over another number of updates is refused: resumed,
        its lr would jump to a point of a curve that neither the first run nor a fresh one follows."""
        saved = state.get("decay_steps", self.decay_steps)
        if saved != self.decay_steps:
            raise ConfigError(
                f"scheduler '{self.name}' decays over the run's length: {saved} updates when the checkpoint was "
                f"written, {self.decay_steps} now; a resumed run keeps trainer.max_steps and max_epochs as they "
                "were (or trains afresh in a new --exp-dir)"
            )
        self.updates = state["updates"]
        self.initial_lrs = list(state["initial_lrs"])
        if self.newbob is not None and state["newbob"] is not None:
            self.newbob.load_state_dict(state["newbob"])
        self._apply()


def build_group(
    params: list[nn.Parameter], config: GroupConfig, total_steps: int | None, where: str
) -> tuple[torch.optim.Optimizer, LearningRateSchedule]:
    """The optimiser and schedule of one parameter group (``where`` is its config path, for errors)."""
    optimizer = build_optimizer(params, config.optimizer, f"{where}.optimizer")
    return optimizer, LearningRateSchedule(optimizer, config.scheduler, total_steps)
