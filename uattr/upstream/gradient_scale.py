"""Scaling the gradient that the upper encoder layers send into the lower ones.

When branches read disjoint layers (e.g. speaker on hidden states 1–2 and semantic on 3–4, as in the mini
recipe), the upper branch's loss still trains the lower layers through the layers above them, and there it
competes with the branch that reads those lower layers. ``GradientScale(from_layer=3, scale=0.5)`` halves the
gradient that encoder layers 3 and above pass down into hidden state 2; hidden states 0–2 keep the full gradient
of every branch that reads them directly. ``scale`` 0 would cut the upper branches off from the lower layers; 1
is off. The mini recipe measured it against a heavier loss on the lower branch (egs/mini/uattr1/TUNING.md).
"""

from __future__ import annotations

from typing import Any

import torch

from uattr.errors import ConfigError
from uattr.upstream.base import GradientScale, Upstream


class _ScaledGradient(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the incoming gradient by a constant."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


_WHERE = "upstream.gradient_scale"


def apply_gradient_scale(upstream: Upstream, config: GradientScale) -> None:
    """Hook the input of encoder layer ``config.from_layer`` so its gradient is scaled (no-op when off)."""
    if config.from_layer == 0:
        return
    if config.scale < 0:
        raise ConfigError(f"{_WHERE}.scale: must be ≥ 0, got {config.scale}")
    if upstream.frozen:
        raise ConfigError(f"{_WHERE}: the encoder is frozen, so no gradient reaches it; remove the option")
    layers = upstream.encoder_layers()
    if not 1 <= config.from_layer <= len(layers):
        raise ConfigError(
            f"{_WHERE}.from_layer: {config.from_layer} is not between 1 and the {len(layers)} layers of {upstream.name}"
        )

    def scale_input(_module: torch.nn.Module, args: tuple) -> tuple:
        # The layer's own input only: the hidden-state list the branches read keeps the unscaled tensor. Every
        # supported encoder (HF wav2vec2/HuBERT/WavLM/w2v-BERT, s3prl) passes that input as the first argument.
        if not args:
            raise RuntimeError(f"{_WHERE}: {upstream.name}'s layer {config.from_layer} got no positional input")
        return (_ScaledGradient.apply(args[0], config.scale), *args[1:])

    layers[config.from_layer - 1].register_forward_pre_hook(scale_input)
