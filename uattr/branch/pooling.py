"""Masked pooling over time: frames [B, T, D] + frame lengths [B] -> one vector per utterance.

Registered in ``uattr.registry.POOLINGS``: ``attention`` (the paper), ``mean``, ``attentive_stats``. Every
pooling sees only the valid frames of each utterance: padded frames get zero attention weight *and* are
zeroed, so even non-finite padding cannot leak into the result (the reference implementation pooled over
padding). Frame lengths must be ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn

from uattr.registry import POOLINGS


def frame_mask(frame_lens: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Bool [B, T]: True on the valid frames of each utterance."""
    return torch.arange(num_frames, device=frame_lens.device) < frame_lens[:, None]


def _masked(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return frames.masked_fill(~mask[..., None], 0.0)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def _weighted_sum(weights: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Σ_t w[b, t] · x[b, t, :] as a batched GEMM."""
    return torch.bmm(weights[:, None, :].to(frames.dtype), frames).squeeze(1)


@POOLINGS.register("mean")
class MeanPooling(nn.Module):
    """Average of the valid frames."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lens, frames.shape[1])
        return _masked(frames, mask).sum(dim=1) / frame_lens[:, None].to(frames.dtype)


@POOLINGS.register("attention")
class AttentionPooling(nn.Module):
    """Softmax over valid frames of a Linear(D→1) score, then the weighted sum of the frames (the paper)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim
        self.score = nn.Linear(dim, 1)

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lens, frames.shape[1])
        frames = _masked(frames, mask)
        weights = _masked_softmax(self.score(frames).squeeze(-1), mask)
        return _weighted_sum(weights, frames)


@POOLINGS.register("attentive_stats")
class AttentiveStatsPooling(nn.Module):
    """Attention-weighted mean and standard deviation, concatenated (output 2·D).

    Written here rather than taken from speechbrain because speechbrain's version batch-normalises the
    attention features over all frames (padding included, so the result depends on the batch in training) and
    takes relative lengths that round to whole frames.
    """

    def __init__(self, dim: int, attention_dim: int = 128, eps: float = 1e-6) -> None:
        super().__init__()
        self.output_dim = 2 * dim
        self.eps = eps
        self.score = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))

    def forward(self, frames: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lens, frames.shape[1])
        frames = _masked(frames, mask)
        weights = _masked_softmax(self.score(frames).squeeze(-1), mask)
        autocast = torch.is_autocast_enabled(frames.device.type)
        dtype = frames.dtype
        # The statistics in fp32 and in two passes, outside autocast: E[x²] − μ² cancels to nothing in bf16 (and
        # overflows in fp16) wherever a dimension's mean is large next to its spread, as in raw SSL features.
        with torch.autocast(frames.device.type, enabled=False):
            frames, weights = frames.float(), weights.float()
            mean = _weighted_sum(weights, frames)
            variance = _weighted_sum(weights, _masked(frames - mean[:, None, :], mask).square())
        statistics = torch.cat([mean, variance.clamp(min=self.eps).sqrt()], dim=-1)
        # Under autocast the head takes fp32; a model cast to half precision as a whole takes its own dtype.
        return statistics if autocast else statistics.to(dtype)
