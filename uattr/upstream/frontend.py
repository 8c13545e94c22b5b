"""w2v-BERT 2.0's fbank front end in torch, so it runs batched on the encoder's device.

Hugging Face's ``SeamlessM4TFeatureExtractor`` is numpy and runs one utterance at a time on the CPU. This module
computes the same features (checked against it numerically in the tests): Kaldi log-mel fbank per utterance
(``torchaudio.compliance.kaldi.fbank`` with the extractor's settings), mean/variance normalisation per utterance
and mel bin over the valid frames, padding, then stacking ``stride`` consecutive 10 ms frames into one 20 ms frame.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torchaudio.compliance import kaldi

# Fixed in SeamlessM4TFeatureExtractor._extract_fbank_features (samples, whatever the sampling rate).
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
INT16_SCALE = 2**15  # the extractor scales to 16-bit integer range, as Kaldi reads audio
VARIANCE_FLOOR = 1e-7


class StackedFbank(nn.Module):
    """Waveforms ``[B, S]`` → stacked normalised fbank ``[B, T, num_mel_bins * stride]``, mask and frame lengths."""

    def __init__(self, num_mel_bins: int = 80, stride: int = 2, sample_rate: int = 16000, padding_value: float = 0.0):
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.stride = stride
        self.sample_rate = sample_rate
        self.padding_value = padding_value

    @classmethod
    def from_feature_extractor(cls, extractor: object) -> "StackedFbank":
        """The front end with a ``SeamlessM4TFeatureExtractor``'s settings."""
        return cls(
            num_mel_bins=extractor.num_mel_bins,
            stride=extractor.stride,
            sample_rate=extractor.sampling_rate,
            padding_value=float(extractor.padding_value),
        )

    @property
    def output_dim(self) -> int:
        return self.num_mel_bins * self.stride

    @property
    def downsample_rate(self) -> int:
        """Input samples per output frame (320 at 16 kHz: 10 ms hop × stride 2)."""
        return HOP_SAMPLES * self.stride

    def num_fbank_frames(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Kaldi frames with ``snip_edges``: only whole 25 ms windows."""
        return torch.where(wav_lens >= WINDOW_SAMPLES, (wav_lens - WINDOW_SAMPLES) // HOP_SAMPLES + 1, 0)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Valid stacked frames: a stacked frame counts only if all its fbank frames are valid (as in HF)."""
        return self.num_fbank_frames(wav_lens) // self.stride

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(features [B, T, D], attention_mask [B, T] long, frame_lens [B])``.

        ``T`` is the longest utterance's fbank frame count rounded up to a multiple of ``stride`` then divided by
        it, as the HF extractor pads; utterances need at least ``stride`` fbank frames (see :meth:`frame_lengths`).
        """
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            features = [self._normalised_fbank(wav[: int(length)]) for wav, length in zip(wavs.float(), wav_lens)]
            padded = pad_sequence(features, batch_first=True, padding_value=self.padding_value)
            batch, frames, bins = padded.shape
            extra = -frames % self.stride
            padded = nn.functional.pad(padded, (0, 0, 0, extra), value=self.padding_value)
            stacked = padded.reshape(batch, (frames + extra) // self.stride, bins * self.stride)
        frame_lens = self.frame_lengths(wav_lens.to(wavs.device))
        mask = torch.arange(stacked.shape[1], device=wavs.device)[None, :] < frame_lens[:, None]
        return stacked, mask.long(), frame_lens

    def _normalised_fbank(self, wav: torch.Tensor) -> torch.Tensor:
        fbank = kaldi.fbank(
            wav[None] * INT16_SCALE,
            num_mel_bins=self.num_mel_bins,
            sample_frequency=self.sample_rate,
            frame_length=1000 * WINDOW_SAMPLES / self.sample_rate,
            frame_shift=1000 * HOP_SAMPLES / self.sample_rate,
            dither=0.0,
            window_type="povey",
            low_freq=20.0,
        )
        # Unbiased variance, as the extractor (numpy ddof=1).
        return (fbank - fbank.mean(0)) / torch.sqrt(fbank.var(0, unbiased=True) + VARIANCE_FLOOR)
