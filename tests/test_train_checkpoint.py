"""Checkpoint files: atomic save/load, RNG round trip, n-best bookkeeping, pruning and averaging."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from uattr.errors import DataError
from uattr.train.checkpoint import (
    BestCheckpoints,
    average_checkpoints,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def test_save_load_and_listing(tmp_path) -> None:
    for step in (10, 2, 30):
        save_checkpoint({"model": {"w": torch.full((2,), float(step))}, "step": step}, checkpoint_path(tmp_path, step))
    (tmp_path / ".ckpt-40.pt.x.tmp").write_bytes(b"half")  # an interrupted save is not a checkpoint
    assert list(list_checkpoints(tmp_path)) == [2, 10, 30]
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-30.pt"
    assert load_checkpoint(tmp_path / "ckpt-10.pt")["step"] == 10
    assert latest_checkpoint(tmp_path / "missing") is None


def test_corrupt_checkpoint_names_the_file(tmp_path) -> None:
    path = tmp_path / "ckpt-1.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="ckpt-1.pt"):
        load_checkpoint(path)


def test_rng_state_round_trip_through_a_file(tmp_path) -> None:
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint({"rng": rng_state()}, tmp_path / "ckpt-1.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "ckpt-1.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_best_checkpoints_min_and_max() -> None:
    best = BestCheckpoints(2, "min")
    assert best.update(1, 3.0) and best.update(2, 1.0)
    assert not best.update(3, 5.0)
    assert best.update(4, 2.0)
    assert best.steps == [2, 4]
    assert not best.update(5, float("nan"))
    restored = BestCheckpoints(2, "min")
    restored.load_state_dict(best.state_dict())
    assert restored.steps == [2, 4]
    highest = BestCheckpoints(1, "max")
    highest.update(1, 0.5), highest.update(2, 0.9), highest.update(3, 0.9)
    assert highest.steps == [2]  # a tie keeps the earlier step


def test_prune_keeps_last_and_best(tmp_path) -> None:
    for step in range(1, 7):
        save_checkpoint({"step": step}, checkpoint_path(tmp_path, step))
    prune_checkpoints(tmp_path, keep_last=2, keep_steps=[1, 3])
    assert list(list_checkpoints(tmp_path)) == [1, 3, 5, 6]


def test_average_is_the_parameter_mean(tmp_path) -> None:
    states = [{"w": torch.randn(3, 4), "b": torch.randn(4), "count": torch.tensor(7)} for _ in range(3)]
    paths = []
    for step, state in enumerate(states):
        paths.append(checkpoint_path(tmp_path, step))
        save_checkpoint({"model": state}, paths[-1])
    averaged = average_checkpoints(paths)
    for key in ("w", "b"):
        torch.testing.assert_close(averaged[key], torch.stack([s[key] for s in states]).mean(0))
    assert averaged["count"].item() == 7
    save_checkpoint({"model": {"w": torch.zeros(3, 4)}}, tmp_path / "ckpt-9.pt")
    with pytest.raises(DataError, match="ckpt-9.pt"):
        average_checkpoints([paths[0], tmp_path / "ckpt-9.pt"])
