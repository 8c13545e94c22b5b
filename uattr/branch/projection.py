"""Layer projection + mixing: Σ_l λ_l (W_l h_l + b_l) over the selected hidden layers (the paper's Figure 1).

Registered in ``uattr.registry.PROJECTIONS``:

* ``per_layer`` — each layer its own D×D Linear with bias, identity-initialised (the paper);
* ``shared``    — one Linear for all layers applied after mixing, W·Σλh + b (L times cheaper; equal to
  ``per_layer`` with tied weights because Σλ = 1);
* ``none``      — plain mixing Σλh.

Every projection maps ``(hidden [L_all, B, T, D], layers, weights [len(layers)]) -> mixed [B, T, E]``: it gets
the encoder's whole stack of hidden states plus the branch's layer indices (and its softmax weights), so that
selection, projection and mixing are one operation whose backward writes the gradient of the stack directly.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from uattr.registry import PROJECTIONS


def project_and_mix_reference(
    hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The straightforward definition (select, project every layer, then mix); the fused path is checked and
    benchmarked against it. ``hidden`` [L_all, B, T, D], ``weight`` [L, E, D] (nn.Linear layout), ``bias`` [L, E].

    Autograd keeps the projected [L, B, T, E] tensor, allocates its gradient and the selected layers' gradient,
    and scatters that into a zero-filled gradient of the whole stack.
    """
    contiguous = list(layers) == list(range(layers[0], layers[0] + len(layers)))
    selected = hidden[layers[0] : layers[0] + len(layers)] if contiguous else hidden[list(layers)]
    projected = torch.einsum("lbtd,led->lbte", selected, weight) + bias[:, None, None, :]
    return torch.einsum("l,lbte->bte", weights, projected)


def _matmul_into(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> None:
    """out ← left @ right (broadcast over the batch), with no temporary when the dtypes allow it."""
    if out.dtype == left.dtype == right.dtype:
        torch.matmul(left, right, out=out)
    else:
        out.copy_(torch.matmul(left, right))


class _ProjectAndMix(torch.autograd.Function):
    """Σ_i λ_i (W_i h_{layers[i]} + b_i) over the stacked hidden states; without W, b: Σ_i λ_i h_{layers[i]}.

    Why a custom Function: every formulation costs the same 3 × 2·N·L·D·E FLOPs for forward + backward (one
    GEMM pass forward, one for ∂h, one for ∂W), so the difference is memory. Autograd through "select, project,
    then mix" keeps the projected [L, N, E] tensor for ∂λ and, in backward, allocates its [L, N, E] gradient,
    the selected layers' [L, N, D] gradient and a zero-filled gradient of the whole stack to scatter that into,
    per branch. One GEMM over a concatenated [N, L·D] input would need a permuted copy of the hidden states.
    Here:

    * forward indexes the layers (views), scales the small weights rather than the activations (λ_i W_i is
      [E, D]) and accumulates L GEMMs into the one [N, E] output; it saves nothing but its inputs;
    * backward computes G_i = gᵀ h_i straight into ∂W's buffer, then ∂λ_i = ⟨G_i, W_i⟩ + ⟨Σ_n g_n, b_i⟩ and
      ∂W_i = λ_i G_i in place, so projected activations are never stored nor recomputed; ∂h_i = λ_i g W_i goes
      straight into the gradient of the whole stack (zeros only for the unselected layers), the one full-size
      buffer autograd needs anyway, returned dense so that autograd sums the branches' gradients in place.

    GEMMs run in the autocast dtype when autocast is on (else in the hidden states' dtype) and accumulate in the
    parameters' dtype. Measured against the reference in benchmarks/branch.py (benchmarks/README.md). No double
    backward (use :func:`project_and_mix_reference` for that).
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,  # [L_all, B, T, D]
        layers: tuple[int, ...],
        weights: torch.Tensor,  # [L]
        weight: torch.Tensor | None,  # [L, E, D]
        bias: torch.Tensor | None,  # [L, E]
    ) -> torch.Tensor:
        # The stack is flattened here, not before apply(): a reshape node in the graph would hand autograd a
        # view as this branch's gradient, which it cannot sum in place with the other branches' (one more copy).
        stack, batch, frames, dim = hidden.shape
        flat = hidden.reshape(stack, batch * frames, dim)
        device_type = hidden.device.type
        compute_dtype = (
            torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        )
        with torch.autocast(device_type, enabled=False):
            if weight is None:
                out = hidden.new_zeros((batch, frames, dim), dtype=weights.dtype)
                for index, layer in enumerate(layers):
                    out.addcmul_(hidden[layer], weights[index])
            else:
                out = (weights @ bias).expand(batch, frames, -1).contiguous()
                accumulator = out.view(batch * frames, -1)
                for index, layer in enumerate(layers):
                    scaled = (weights[index] * weight[index]).to(compute_dtype)
                    product = (flat[layer].to(compute_dtype), scaled.t())
                    if out.dtype == compute_dtype:
                        accumulator.addmm_(*product)
                    else:
                        accumulator += torch.mm(*product)
        ctx.layers, ctx.compute_dtype = layers, compute_dtype
        ctx.save_for_backward(hidden, weights, weight, bias)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        stacked, weights, weight, bias = ctx.saved_tensors
        need_hidden, _, need_weights, need_weight, need_bias = ctx.needs_input_grad
        layers, compute_dtype = ctx.layers, ctx.compute_dtype
        stack, dim = stacked.shape[0], stacked.shape[-1]
        hidden = stacked.reshape(stack, -1, dim)
        grad_out = grad_out.reshape(hidden.shape[1], -1)
        grad_stack = grad_hidden = grad_weights = grad_weight = grad_bias = None
        with torch.autocast(hidden.device.type, enabled=False):
            if need_hidden:
                grad_stack = torch.empty_like(stacked, memory_format=torch.contiguous_format)  # returned as is
                grad_hidden = grad_stack.view(hidden.shape)
                for layer in sorted(set(range(stack)) - set(layers)):
                    grad_hidden[layer].zero_()
            if need_weights:
                grad_weights = torch.empty_like(weights)
            if weight is not None:
                grad = grad_out.to(compute_dtype)
                if need_weight:
                    grad_weight = torch.empty_like(weight)
            # Batched over each run of consecutive layers (the whole selection for a layer range): a batched GEMM
            # with the gradient broadcast (stride 0, not copied) keeps all cores busy where one GEMM per layer
            # does not (1.8× faster for the gᵀ h products on a 2-core CPU).
            for run, selected in _runs(layers):
                hidden_run = hidden[selected]
                if weight is None:
                    if need_weights:
                        grad_weights[run] = torch.mv(hidden_run.flatten(1), grad_out.flatten().to(hidden.dtype))
                    if need_hidden:
                        torch.mul(grad_out, weights[run, None, None], out=grad_hidden[selected])
                    continue
                if need_weights or need_weight:
                    # G_i = gᵀ h_i, computed into ∂W's buffer, then ∂λ_i = ⟨G_i, W_i⟩ and ∂W_i = λ_i G_i in place.
                    gram = grad_weight[run] if need_weight else torch.empty_like(weight[run])
                    _matmul_into(gram, grad.t(), hidden_run.to(compute_dtype))
                    if need_weights:
                        grad_weights[run] = torch.linalg.vecdot(gram.flatten(1), weight[run].flatten(1))
                    gram.mul_(weights[run, None, None])
                if need_hidden:
                    scaled = (weights[run, None, None] * weight[run]).to(compute_dtype)
                    _matmul_into(grad_hidden[selected], grad, scaled)
            if weight is not None:
                grad_sum = grad_out.sum(0).to(bias.dtype)
                if need_weights:
                    grad_weights += bias @ grad_sum
                if need_bias:
                    grad_bias = weights[:, None] * grad_sum
        return grad_stack, None, grad_weights, grad_weight, grad_bias


def _runs(layers: Sequence[int]) -> list[tuple[slice, slice]]:
    """Split the selection into runs of consecutive layers: (positions in ``layers``, layers in the stack)."""
    runs, start = [], 0
    for position in range(1, len(layers) + 1):
        if position == len(layers) or layers[position] != layers[position - 1] + 1:
            runs.append((slice(start, position), slice(layers[start], layers[position - 1] + 1)))
            start = position
    return runs


def mix_layers(hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
    """Σ_i λ_i h_{layers[i]} for hidden [L_all, B, T, D] → [B, T, D], without a weighted or selected copy."""
    return _ProjectAndMix.apply(hidden, tuple(layers), weights, None, None)


@PROJECTIONS.register("per_layer")
class PerLayerProjection(nn.Module):
    """One D×D Linear (with bias) per selected layer, identity-initialised, fused with selection and mixing."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim).repeat(num_layers, 1, 1))
        self.bias = nn.Parameter(torch.zeros(num_layers, dim))

    def forward(self, hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        return _ProjectAndMix.apply(hidden, tuple(layers), weights, self.weight, self.bias)


@PROJECTIONS.register("shared")
class SharedProjection(nn.Module):
    """One identity-initialised Linear for all layers, applied after mixing: W·Σλh + b."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        return self.linear(mix_layers(hidden, layers, weights))


@PROJECTIONS.register("none")
class NoProjection(nn.Module):
    """Plain learnable mixing Σλh (e.g. the untrained mean-over-layers baseline)."""

    def __init__(self, num_layers: int, dim: int) -> None:
        super().__init__()

    def forward(self, hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        return mix_layers(hidden, layers, weights)
