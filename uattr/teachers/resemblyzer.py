"""Resemblyzer speaker teacher: the pretrained GE2E voice encoder the ``resemblyzer`` wheel ships (256-d).

It runs offline, so the mini recipe and the tests have a real speaker teacher.
"""

from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np
import torch

from uattr.errors import BatchItemError, ConfigError, DataError
from uattr.teachers.base import OFFLINE_EXTRA_HINT, Teacher, register_teacher

logger = logging.getLogger(__name__)

RESEMBLYZER_DIM = 256


@register_teacher("resemblyzer")
class ResemblyzerTeacher(Teacher):
    """GE2E d-vectors; unit norm.

    resemblyzer's ``embed_utterance`` runs its LSTM once per utterance on that utterance's 1.6 s partial windows.
    On CPU that is slow (every new window count costs oneDNN a fresh set-up, ~1 s each on 2 cores), so
    :meth:`embed` does the same computation batched: the partial windows of every utterance of the batch go
    through the LSTM together, then each utterance's partial embeddings are averaged and L2-normalised exactly
    as ``embed_utterance`` does.
    """

    input = "audio"
    libraries = ("resemblyzer", "torch")
    dim = RESEMBLYZER_DIM
    normalized = True
    model = "resemblyzer:VoiceEncoder"

    def __init__(self, device: str = "cpu") -> None:
        with warnings.catch_warnings():
            # webrtcvad imports pkg_resources, which warns about its own deprecation on every import.
            warnings.simplefilter("ignore", UserWarning)
            try:
                from resemblyzer import VoiceEncoder, preprocess_wav
                from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
                from resemblyzer.hparams import audio_norm_target_dBFS
            except ImportError as error:  # an optional dependency: not in a plain install
                raise ConfigError(f"teacher 'resemblyzer': {error}; it comes with {OFFLINE_EXTRA_HINT}") from error

        self._preprocess = preprocess_wav
        self._mel = wav_to_mel_spectrogram
        self._normalize_volume = lambda wav: normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
        self._encoder = VoiceEncoder(device=device, verbose=False)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        partials = []
        for index, wav in enumerate(batch):
            try:
                partials.append(self._partial_mels(np.asarray(wav, dtype=np.float32)))
            except DataError as error:  # e.g. digital silence: name that utterance, not the whole batch
                raise BatchItemError(str(error), index) from None
        with torch.no_grad():
            mels = torch.from_numpy(np.concatenate(partials)).to(self._encoder.device)
            partial_embeddings = self._encoder(mels).cpu().numpy()
        bounds = np.cumsum([0] + [len(p) for p in partials])
        means = np.stack([partial_embeddings[start:end].mean(axis=0) for start, end in zip(bounds[:-1], bounds[1:])])
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def preprocess(self, wav: np.ndarray) -> np.ndarray:
        """Volume-normalised, long silences trimmed (resemblyzer's preprocess_wav)."""
        # 16 kHz is resemblyzer's own rate, so no source_sr.
        if not np.any(wav):  # resemblyzer's volume normalisation would turn it into NaN
            raise DataError("resemblyzer: the audio is digital silence (all zeros): it has no speaker to embed")
        processed = self._preprocess(wav)
        if len(processed) == 0:
            # The VAD found no voice (noise, music): embed the whole, volume-normalised waveform instead.
            logger.debug("resemblyzer: no voiced audio found; embedding the untrimmed waveform")
            processed = self._normalize_volume(wav)
        return processed

    def _partial_mels(self, wav: np.ndarray) -> np.ndarray:
        """The mel spectrograms of the utterance's partial windows (``[n_partials, frames, mels]``)."""
        processed = self.preprocess(wav)
        # As resemblyzer's embed_utterance (default rate 1.3 partials/s, min coverage 0.75).
        wav_slices, mel_slices = self._encoder.compute_partial_slices(len(processed), 1.3, 0.75)
        needed = wav_slices[-1].stop
        if needed >= len(processed):
            processed = np.pad(processed, (0, needed - len(processed)), "constant")
        mel = self._mel(processed)
        return np.array([mel[s] for s in mel_slices])
