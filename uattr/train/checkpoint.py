"""Training checkpoints: atomic save/load, the n-best bookkeeping, pruning, and n-best parameter averaging.

A checkpoint ``EXP/checkpoints/ckpt-<step>.pt`` holds everything a resumed run needs to continue as if it
had never stopped (model, optimisers, schedules, AMP scaler, sampler, RNG states, counters, best-k list,
config). It is written to a temporary name and renamed, so a kill never leaves a truncated checkpoint
that looks complete.
"""

from __future__ import annotations

import logging
import pickle
import random
import re
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from uattr.errors import DataError
from uattr.fileio import atomic_write

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"ckpt-{step}.pt"


def list_checkpoints(directory: str | Path) -> dict[int, Path]:
    """``{step: path}`` of the complete checkpoints in ``directory``, by step."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    found = {int(m.group(1)): p for p in directory.iterdir() if (m := _CHECKPOINT.match(p.name))}
    return dict(sorted(found.items()))


def remove_interrupted_saves(directory: str | Path) -> None:
    """Delete the temporary files of checkpoint saves that a kill cut short (``.ckpt-<step>.pt.*.tmp``): each is
    as large as a checkpoint, and nothing else would ever remove it."""
    directory = Path(directory)
    if directory.is_dir():
        for leftover in directory.glob(".ckpt-*.pt.*.tmp"):
            logger.info("%s: removing the temporary file of an interrupted checkpoint save", leftover)
            leftover.unlink(missing_ok=True)


def latest_checkpoint(directory: str | Path) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[max(checkpoints)] if checkpoints else None


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename."""
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (tensors and plain data only: ``weights_only``); a broken file is a DataError."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: cannot read checkpoint: {error}") from error


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states, as data ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(_as_tuples(state["python"]))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())  # RNG states are CPU byte tensors, wherever the file was mapped
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` needs tuples; serialisation may have turned them into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class BestCheckpoints:
    """The ``n`` best validated steps by one criterion (ties keep the earlier step)."""

    def __init__(self, n: int, mode: Literal["min", "max"]) -> None:
        self.n = n
        self.mode = mode
        self.entries: list[tuple[float, int]] = []  # (value, step), best first

    def update(self, step: int, value: float) -> bool:
        """Record ``value`` at ``step``; True when it is among the n best."""
        if not np.isfinite(value):
            logger.warning("step %d: best-checkpoint criterion is %s; not ranked", step, value)
            return False
        sign = 1.0 if self.mode == "min" else -1.0
        entries = [e for e in self.entries if e[1] != step] + [(value, step)]
        self.entries = sorted(entries, key=lambda e: (sign * e[0], e[1]))[: self.n]
        return any(s == step for _, s in self.entries)

    @property
    def steps(self) -> list[int]:
        return [step for _, step in self.entries]

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mode": self.mode, "entries": [list(e) for e in self.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [(float(v), int(s)) for v, s in state["entries"]]


def prune_checkpoints(directory: str | Path, keep_last: int, keep_steps: Sequence[int]) -> list[Path]:
    """Delete checkpoints that are neither among the last ``keep_last`` nor in ``keep_steps``."""
    checkpoints = list_checkpoints(directory)
    keep = set(list(checkpoints)[-keep_last:]) | set(keep_steps)
    removed = [path for step, path in checkpoints.items() if step not in keep]
    for path in removed:
        path.unlink()
        logger.debug("removed checkpoint %s", path)
    return removed


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the ``model`` state of ``paths`` (non-float buffers from the first).

    Accumulated in float64 so the mean does not depend on the order of the checkpoints.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [load_checkpoint(path)["model"] for path in paths]
    keys = set(states[0])
    for path, state in zip(paths[1:], states[1:]):
        if set(state) != keys:
            raise DataError(f"{path}: its model parameters differ from those of {paths[0]}; cannot average")
    averaged: dict[str, torch.Tensor] = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = sum(state[key].to(torch.float64) for state in states)
            averaged[key] = (total / len(states)).to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged
