"""The branch head: pooled vector -> the attribute's embedding dimension (the teacher's)."""

from __future__ import annotations

from typing import Literal

from torch import nn

from uattr.errors import ConfigError

HeadKind = Literal["linear", "mlp", "none"]


def build_head(
    kind: HeadKind, input_dim: int, output_dim: int | None, hidden_dim: int | None, where: str
) -> tuple[nn.Module, int]:
    """Return ``(head, embedding_dim)``; ``output_dim`` None keeps the pooled dimension.

    * ``linear``: a Linear only where the dimensions differ (the paper: speaker 1024 → 192), else identity;
    * ``mlp``: Linear → GELU → Linear through ``hidden_dim`` (default: the input dimension);
    * ``none``: identity, so ``output_dim`` must be None or equal the pooled dimension.
    """
    target = input_dim if output_dim is None else output_dim
    if hidden_dim is not None and kind != "mlp":
        raise ConfigError(f"{where}.head_hidden: only head 'mlp' has a hidden layer (head is {kind!r})")
    if hidden_dim is not None and (isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1):
        raise ConfigError(f"{where}.head_hidden: must be a positive integer, got {hidden_dim!r}")
    if kind == "linear":
        return (nn.Identity() if target == input_dim else nn.Linear(input_dim, target)), target
    if kind == "mlp":
        hidden = hidden_dim or input_dim
        return nn.Sequential(nn.Linear(input_dim, hidden), nn.GELU(), nn.Linear(hidden, target)), target
    if kind == "none":
        if target != input_dim:
            raise ConfigError(
                f"{where}.head: 'none' keeps the pooled dimension {input_dim}, but the attribute's dim is "
                f"{output_dim}; use head 'linear' or 'mlp'"
            )
        return nn.Identity(), input_dim
    raise ConfigError(f"{where}.head: unknown head {kind!r}; choices: linear, mlp, none")
