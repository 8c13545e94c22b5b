"""Resemblyzer speaker teacher: the pretrained GE2E voice encoder the ``resemblyzer`` wheel ships (256-d).

It runs offline, so the mini recipe and the tests have a real speaker teacher.
"""

from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np

from uattr.teachers.base import Teacher, register_teacher

logger = logging.getLogger(__name__)

RESEMBLYZER_DIM = 256


@register_teacher("resemblyzer")
class ResemblyzerTeacher(Teacher):
    """GE2E d-vectors, one utterance at a time (resemblyzer has no batched API); unit norm."""

    input = "audio"
    libraries = ("resemblyzer", "torch")
    dim = RESEMBLYZER_DIM
    normalized = True
    model = "resemblyzer:VoiceEncoder"

    def __init__(self, device: str = "cpu") -> None:
        with warnings.catch_warnings():
            # webrtcvad imports pkg_resources, which warns about its own deprecation on every import.
            warnings.simplefilter("ignore", UserWarning)
            from resemblyzer import VoiceEncoder, preprocess_wav
            from resemblyzer.audio import normalize_volume
            from resemblyzer.hparams import audio_norm_target_dBFS

        self._preprocess = preprocess_wav
        self._normalize_volume = lambda wav: normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
        self._encoder = VoiceEncoder(device=device, verbose=False)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._embed_one(np.asarray(wav, dtype=np.float32)) for wav in batch]).astype(np.float32)

    def _embed_one(self, wav: np.ndarray) -> np.ndarray:
        # 16 kHz is resemblyzer's own rate, so no source_sr: preprocess_wav only normalises volume and trims
        # long silences.
        processed = self._preprocess(wav)
        if len(processed) == 0:
            # The VAD found no voice (noise, music): embed the whole, volume-normalised waveform instead.
            logger.debug("resemblyzer: no voiced audio found; embedding the untrimmed waveform")
            processed = self._normalize_volume(wav)
        return self._encoder.embed_utterance(processed)
