"""Optimisers and schedules: NewBob and the warm-up curves against hand-computed sequences."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from uattr.errors import ConfigError
from uattr.train.config import GroupConfig, OptimConfig, OptimizerConfig, SchedulerConfig
from uattr.train.optim import LearningRateSchedule, NewBob, build_group, build_optimizer, split_parameters


def _schedule(name: str, lr: float = 1.0, total: int | None = 6, **options) -> LearningRateSchedule:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    return LearningRateSchedule(optimizer, SchedulerConfig(name, **options), total)


def _lrs(schedule: LearningRateSchedule, updates: int) -> list[float]:
    values = []
    for _ in range(updates):
        values.append(schedule.current_lrs()[0])
        schedule.step()
    return values


def test_newbob_paper_encoder_setting() -> None:
    """threshold 0.0025, factor 0.9, patience 0: anneal on every too-small improvement."""
    newbob = NewBob(threshold=0.0025, factor=0.9, patience=0)
    scales = [newbob.observe(loss) for loss in [10.0, 9.0, 8.99, 8.5, 8.6]]
    # 10→9: +10 %; 9→8.99: +0.11 % < 0.25 % → ×0.9; 8.99→8.5: +5.5 %; 8.5→8.6: worse → ×0.9
    assert scales == pytest.approx([1.0, 1.0, 0.9, 0.9, 0.81])


def test_newbob_patience_is_not_reset_by_improvements() -> None:
    """speechbrain semantics: patience 2 anneals on the third bad validation, and improvements do not reset it."""
    newbob = NewBob(threshold=0.0025, factor=0.5, patience=2)
    scales = [newbob.observe(loss) for loss in [10.0, 10.0, 10.0, 10.0, 9.0, 9.0, 8.0, 8.0, 8.0]]
    # bad: 2→1, 1→0, anneal (reset 2); good; bad 2→1; good; bad 1→0; bad → anneal
    assert scales == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25])


def test_newbob_counts_a_non_finite_loss_as_no_improvement() -> None:
    """NaN and inf anneal and are not compared with: the next finite value is measured against the last finite."""
    newbob = NewBob(threshold=0.0025, factor=0.5, patience=0)
    scales = [newbob.observe(loss) for loss in [1.0, math.nan, math.inf, 0.999, 0.5]]
    # 1; NaN → ×0.5; inf → ×0.5; 1→0.999: +0.1 % → ×0.5; 0.999→0.5: +50 %
    assert scales == [1.0, 0.5, 0.25, 0.125, 0.125]


def test_newbob_with_a_loss_below_zero() -> None:
    """A falling negative loss (learned uncertainty weights) is an improvement, a rising one is not."""
    newbob = NewBob(threshold=0.0025, factor=0.5, patience=0)
    assert [newbob.observe(loss) for loss in [-1.0, -2.0, -3.0, -2.0, -1.0]] == [1.0, 1.0, 1.0, 0.5, 0.25]


def test_newbob_schedule_scales_learning_rate_and_resumes() -> None:
    schedule = _schedule("newbob", lr=1.5, factor=0.5, patience=0)
    schedule.step()
    assert schedule.current_lrs() == [1.5]
    schedule.observe_validation(1.0)
    schedule.observe_validation(1.0)
    assert schedule.current_lrs() == [0.75]
    restored = _schedule("newbob", lr=1.5, factor=0.5, patience=0)
    restored.load_state_dict(schedule.state_dict())
    assert restored.current_lrs() == [0.75]
    restored.observe_validation(1.0)
    assert restored.current_lrs() == [0.375]


def test_warmup_linear_sequence() -> None:
    schedule = _schedule("warmup_linear", lr=2.0, total=6, warmup_steps=2)
    assert _lrs(schedule, 7) == pytest.approx([0.0, 1.0, 2.0, 1.5, 1.0, 0.5, 0.0])


def test_warmup_cosine_sequence() -> None:
    schedule = _schedule("warmup_cosine", lr=1.0, total=6, warmup_steps=2)
    expected = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    assert _lrs(schedule, 7) == pytest.approx(expected)


def test_constant_with_warmup_and_newbob_warmup() -> None:
    assert _lrs(_schedule("constant", warmup_steps=4, total=None), 6) == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])
    assert _lrs(_schedule("newbob", warmup_steps=2, total=None), 3) == pytest.approx([0, 0.5, 1])


def test_decay_without_known_length_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="warmup_linear"):
        _schedule("warmup_linear", total=None)


def test_schedule_state_round_trip_continues_the_curve() -> None:
    schedule = _schedule("warmup_linear", total=10, warmup_steps=3)
    _lrs(schedule, 4)
    restored = _schedule("warmup_linear", total=10, warmup_steps=3)
    restored.load_state_dict(schedule.state_dict())
    assert _lrs(restored, 3) == pytest.approx(_lrs(schedule, 3))


def test_bad_optimizer_kwargs_name_the_key() -> None:
    config = OptimizerConfig("adadelta", 1.5, {"rhoo": 0.95})
    with pytest.raises(ConfigError, match=r"optim\.branches\.optimizer\.kwargs"):
        build_optimizer([nn.Parameter(torch.zeros(1))], config, "optim.branches.optimizer")


def test_paper_defaults_and_parameter_split() -> None:
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.upstream = nn.Linear(2, 2)
            self.frozen = nn.Linear(2, 2).requires_grad_(False)
            self.experts = nn.ModuleDict({"a": nn.Linear(2, 2)})

    model = Toy()
    groups = split_parameters(model)
    assert [p.shape for p in groups["upstream"]] == [p.shape for p in model.upstream.parameters()]
    assert {id(p) for p in groups["branches"]} == {id(p) for p in model.experts.parameters()}
    config = OptimConfig()
    optimizer, schedule = build_group(groups["branches"], config.branches, None, "optim.branches")
    assert isinstance(optimizer, torch.optim.Adadelta)
    assert optimizer.defaults["rho"] == 0.95 and optimizer.defaults["eps"] == 1e-8
    assert schedule.current_lrs() == [1.5]
    upstream, _ = build_group(groups["upstream"], config.upstream, None, "optim.upstream")
    assert isinstance(upstream, torch.optim.Adam) and upstream.defaults["lr"] == 1e-5
    assert config.upstream.scheduler == SchedulerConfig("newbob", threshold=0.0025, factor=0.9)
    assert isinstance(config.branches, GroupConfig)
