"""One attribute branch (the paper's Figure 1): select layers → project + mix → LayerNorm → pool → head → L2."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from uattr.branch.head import HeadKind, build_head
from uattr.errors import ConfigError
from uattr.registry import POOLINGS, PROJECTIONS, Registry


@dataclasses.dataclass
class BranchConfig:
    """How one attribute reads the encoder.

    Layers: an explicit ``layers`` list, or the inclusive range ``layer_start``..``layer_end``; by default all
    transformer layers 1..L-1 (the paper: 1..24), never index 0 (the pre-encoder output) unless asked.
    """

    layers: list[int] | None = None
    layer_start: int | None = None
    layer_end: int | None = None
    projection: str = "per_layer"
    layer_norm: bool = True
    pooling: str = "attention"
    head: HeadKind = "linear"
    head_hidden: int | None = None
    normalize: bool = True


def resolve_layers(config: BranchConfig, num_hidden_states: int, where: str) -> list[int]:
    """The selected hidden-state indices; errors name the offending key."""
    last = num_hidden_states - 1
    if config.layers is not None:
        if config.layer_start is not None or config.layer_end is not None:
            raise ConfigError(f"{where}: give either 'layers' or 'layer_start'/'layer_end', not both")
        if not config.layers:
            raise ConfigError(f"{where}.layers: the list is empty")
        duplicates = sorted({layer for layer in config.layers if config.layers.count(layer) > 1})
        if duplicates:
            raise ConfigError(f"{where}.layers: layer {duplicates[0]} is listed twice")
        for layer in config.layers:
            if not 0 <= layer <= last:
                raise ConfigError(f"{where}.layers: layer {layer} is out of range 0..{last} for this encoder")
        return list(config.layers)
    start = 1 if config.layer_start is None else config.layer_start
    end = last if config.layer_end is None else config.layer_end
    if not 0 <= start <= last:
        raise ConfigError(f"{where}.layer_start: {start} is out of range 0..{last} for this encoder")
    if not start <= end <= last:
        raise ConfigError(f"{where}.layer_end: {end} is out of range {start}..{last} for this encoder")
    return list(range(start, end + 1))


def _build(key: str, registry: Registry, name: str, where: str, **kwargs: int) -> nn.Module:
    """Instantiate a registered component; an unknown name names the config key and lists the choices."""
    return registry.get(name, where=f"{where}.{key}")(**kwargs)


class AttributeBranch(nn.Module):
    """Hidden states [L, B, T, D] + frame lengths [B] → one embedding [B, E] for one attribute."""

    def __init__(
        self, config: BranchConfig, num_hidden_states: int, hidden_size: int, output_dim: int | None, where: str
    ) -> None:
        super().__init__()
        self.layers = resolve_layers(config, num_hidden_states, where)
        self.layer_logits = nn.Parameter(torch.zeros(len(self.layers)))
        self.projection = _build(
            "projection", PROJECTIONS, config.projection, where, num_layers=len(self.layers), dim=hidden_size
        )
        self.layer_norm = nn.LayerNorm(hidden_size) if config.layer_norm else nn.Identity()
        self.pooling = _build("pooling", POOLINGS, config.pooling, where, dim=hidden_size)
        self.head, self.output_dim = build_head(
            config.head, self.pooling.output_dim, output_dim, config.head_hidden, where
        )
        self.normalize = config.normalize

    def layer_weights(self) -> torch.Tensor:
        """The mixing weights λ = softmax(logits), one per selected layer (they sum to 1)."""
        return self.layer_logits.softmax(dim=0)

    def forward(self, hidden: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        frames = self.layer_norm(self.projection(hidden, self.layers, self.layer_weights()))
        embedding = self.head(self.pooling(frames, frame_lens))
        return F.normalize(embedding, dim=-1) if self.normalize else embedding
