"""Layer projection + mixing: Σ_l λ_l (W_l h_l + b_l) over the selected hidden layers (the paper's Figure 1).

Registered in ``uattr.registry.PROJECTIONS``:

* ``per_layer`` — each layer its own D×D Linear with bias, identity-initialised (the paper);
* ``shared``    — one Linear for all layers applied after mixing, W·Σλh + b (L times cheaper; equal to
  ``per_layer`` with tied weights because Σλ = 1);
* ``none``      — plain mixing Σλh.

Every projection module maps ``(hidden [L, B, T, D], weights [L]) -> mixed [B, T, D]``; the mixing weights come
from the branch (softmax of its logits), so projection and mixing can be fused.
"""

from __future__ import annotations

import torch
from torch import nn

from uattr.registry import PROJECTIONS


def mix_layers(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_l λ_l h_l as one [1, L] × [L, B·T·D] product, so no weighted [L, B, T, D] copy is made."""
    return torch.tensordot(weights.to(hidden.dtype), hidden, dims=1)


def project_and_mix_reference(
    hidden: torch.Tensor, weights: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The straightforward definition (project every layer, then mix); the fused path is tested against it.

    ``hidden`` [L, B, T, D], ``weights`` [L], ``weight`` [L, E, D] (nn.Linear layout), ``bias`` [L, E].
    It materialises the projected [L, B, T, E] tensor and, in backward, its gradient.
    """
    projected = torch.einsum("lbtd,led->lbte", hidden, weight) + bias[:, None, None, :]
    return torch.einsum("l,lbte->bte", weights, projected)


class _FusedPerLayerProjection(torch.autograd.Function):
    """Σ_l λ_l (W_l h_l + b_l) without an [L, N, E] intermediate, forward or backward.

    Why a custom Function: every formulation costs the same 3 × 2·N·L·D·E FLOPs for forward + backward (one
    GEMM pass forward, one for ∂h, one for ∂W), so the choice is about memory traffic and peak memory. Autograd
    through "project, then mix" keeps the projected [L, N, E] tensor for ∂λ and allocates its [L, N, E]
    gradient in backward; one GEMM over a concatenated [N, L·D] input needs an [N, L·D] permuted copy of the
    hidden states (and its gradient). Here:

    * forward scales the weights instead of the activations (λ_l W_l is [E, D], far smaller than [N, D] when
      N = B·T is in the thousands) and accumulates L GEMMs into one [N, E] output;
    * backward needs nothing but the inputs autograd keeps alive anyway: with G_l = gᵀ h_l ([E, D]),
      ∂W_l = λ_l G_l and ∂λ_l = ⟨G_l, W_l⟩ + ⟨Σ_n g_n, b_l⟩, so the projected activations are never stored
      nor recomputed; ∂h_l = λ_l g W_l.

    GEMMs run in the autocast dtype when autocast is on (else in the hidden states' dtype) and accumulate in
    the parameters' dtype. Measured against the reference in benchmarks/branch.py. Double backward is not
    supported (use :func:`project_and_mix_reference` for that).
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,  # [L, N, D]
        weights: torch.Tensor,  # [L]
        weight: torch.Tensor,  # [L, E, D]
        bias: torch.Tensor,  # [L, E]
    ) -> torch.Tensor:
        device_type = hidden.device.type
        compute_dtype = (
            torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        )
        with torch.autocast(device_type, enabled=False):
            out = (weights @ bias).expand(hidden.shape[1], -1).clone()
            for layer in range(hidden.shape[0]):
                scaled = (weights[layer] * weight[layer]).to(compute_dtype)
                out += torch.mm(hidden[layer].to(compute_dtype), scaled.t())
        ctx.compute_dtype = compute_dtype
        ctx.save_for_backward(hidden, weights, weight, bias)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weights, weight, bias = ctx.saved_tensors
        need_hidden, need_weights, need_weight, need_bias = ctx.needs_input_grad
        grad = grad_out.to(ctx.compute_dtype)
        grad_sum = grad_out.sum(0).to(bias.dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        gram = torch.empty_like(weight) if need_weights or need_weight else None
        for layer in range(hidden.shape[0]):
            if gram is not None:
                gram[layer] = torch.mm(grad.t(), hidden[layer].to(ctx.compute_dtype))  # G_l = gᵀ h_l
            if grad_hidden is not None:
                grad_hidden[layer] = torch.mm(grad, (weights[layer] * weight[layer]).to(ctx.compute_dtype))
        grad_weight = weights[:, None, None] * gram if need_weight else None
        grad_weights = (
            torch.linalg.vecdot(gram.flatten(1), weight.flatten(1)) + bias @ grad_sum if need_weights else None
        )
        grad_bias = weights[:, None] * grad_sum if need_bias else None
        return grad_hidden, grad_weights, grad_weight, grad_bias


@PROJECTIONS.register("per_layer")
class PerLayerProjection(nn.Module):
    """One D×D Linear (with bias) per selected layer, identity-initialised, fused with the mixing."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim).repeat(num_layers, 1, 1))
        self.bias = nn.Parameter(torch.zeros(num_layers, dim))

    def forward(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        layers, batch, frames, dim = hidden.shape
        mixed = _FusedPerLayerProjection.apply(hidden.reshape(layers, batch * frames, dim), weights, self.weight, self.bias)
        return mixed.view(batch, frames, -1)


@PROJECTIONS.register("shared")
class SharedProjection(nn.Module):
    """One identity-initialised Linear for all layers, applied after mixing: W·Σλh + b."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.linear(mix_layers(hidden, weights))


@PROJECTIONS.register("none")
class NoProjection(nn.Module):
    """Plain learnable mixing Σλh (e.g. the untrained mean-over-layers baseline)."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()

    def forward(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return mix_layers(hidden, weights)
