"""Scaling the gradient that the upper encoder layers send into the lower ones.

When branches read disjoint layers (e.g. speaker on hidden states 1–2 and semantic on 3–4, as in the mini
recipe), the upper branch's loss still trains the lower layers through the layers above them, and there it
competes with the branch that reads those lower layers. ``GradientScale(from_layer=3, scale=0.5)`` halves the
gradient that encoder layers 3 and above pass down into hidden state 2; hidden states 0–2 keep the full gradient
of every branch that reads them directly. ``scale`` 0 would cut the upper branches off from the lower layers; 1
is off. The mini recipe measured it against a heavier loss on the lower branch (egs/mini/uattr1/TUNING.md).
"""

from __future__ import annotations

import types
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
    """Scale the gradient of encoder layer ``config.from_layer``'s input (no-op when off)."""
    if config.from_layer == 0:
        if config.scale != 1.0:  # a scale with no layer to apply it at would do nothing
            raise ConfigError(f"{_WHERE}.scale: {config.scale} without {_WHERE}.from_layer scales nothing; set both")
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

    # The layer's own computation only, so its forward is wrapped rather than given a pre-hook: hooks see the
    # unscaled input, and the encoders that record a hidden state by hooking the layer it enters (transformers 5
    # does for hidden state 0) keep the unscaled tensor for the branches that read it. Every supported encoder
    # (HF wav2vec2/HuBERT/WavLM/w2v-BERT, s3prl) passes that input as the first argument. Every other input that
    # carries gradient is scaled too: WavLM's relative-position bias, computed by its first layer and passed up
    # as an argument, is a second path into the lower layers. A bound method, so a copied model's layer calls its
    # own forward.
    def scaled(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.requires_grad:
            return _ScaledGradient.apply(value, config.scale)
        return value

    def forward_with_scaled_input(layer: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if not args:
            raise RuntimeError(f"{_WHERE}: {upstream.name}'s layer {config.from_layer} got no positional input")
        return type(layer).forward(
            layer, *(scaled(arg) for arg in args), **{key: scaled(value) for key, value in kwargs.items()}
        )

    layer = layers[config.from_layer - 1]
    layer.forward = types.MethodType(forward_with_scaled_input, layer)
