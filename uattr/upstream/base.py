"""The one interface every speech encoder ("upstream") presents to the attribute branches."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

FinetunePolicy = Literal["frozen", "frozen_frontend", "full", "top_n"]


@dataclasses.dataclass
class UpstreamConfig:
    """Which encoder to load and how much of it to train.

    ``name`` is ``hf:<model id or local folder>`` (transformers) or ``s3prl:<upstream name>`` (s3prl, with
    ``path`` for the local-checkpoint names such as ``hf_wav2vec2_custom``).
    """

    name: str
    path: str | None = None
    finetune: FinetunePolicy = "frozen_frontend"
    top_n: int = 0  # trainable top layers when finetune == "top_n"
    gradient_checkpointing: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to the loader


class Upstream(nn.Module):
    """Waveforms in, all hidden states out.

    ``forward(wavs [B, S] float at sample_rate, wav_lens [B])`` returns ``(hidden [L, B, T, D], frame_lens [B])``.
    Index 0 of ``L`` is the input to the first transformer/conformer layer (after the front end), index ``l``
    the output of layer ``l``; ``num_layers`` is ``L`` and never changes (layerdrop is forced off).
    Frames beyond ``frame_lens[b]`` are padding and must be ignored downstream.
    """

    sample_rate: int = 16000
    num_layers: int
    hidden_size: int
    downsample_rate: int  # input samples per output frame

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        return self.sample_rate / self.downsample_rate

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
