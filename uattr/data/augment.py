"""Training-time audio augmentation: additive noise (MUSAN-style noise, music, babble) and reverberation.

The student hears the augmented audio and learns the teacher's embedding of the clean utterance (cached tables
hold the clean one; an on-the-fly teacher is given the clean crop), so its embeddings learn to ignore the noise
and the room. Each augmented utterance gets one kind, drawn uniformly among the configured noise sources and
``reverb``, as WeSpeaker and the Kaldi x-vector recipes augment. Noises and impulse responses are Kaldi data
dirs (``wav.scp`` [+ ``segments``], any format and rate :mod:`uattr.data.audio` reads).

Every random choice comes from a generator the dataset seeds with (seed, epoch, item), so a resumed run and
any number of DataLoader workers augment exactly as the uninterrupted run. That is why this is written here on
torchaudio's ``add_noise`` and scipy's ``fftconvolve`` rather than with speechbrain's ``AddNoise``/``AddReverb``: those
draw from torch's global generator and read their own CSV manifests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.signal
import torch
import torchaudio

from uattr.data.audio import AudioSource, load_audio
from uattr.data.kaldi import DataDir
from uattr.errors import ConfigError, DataError

REVERB = "reverb"  # the kind name of reverberation, beside the names of the noise sources


@dataclasses.dataclass
class NoiseConfig:
    """One source of additive noise: a data dir of recordings, the SNR range (dB, drawn uniformly) and how many
    recordings are summed (babble: several speakers at once, e.g. ``count: [3, 7]``)."""

    data: str
    snr: list[float] = dataclasses.field(default_factory=lambda: [0.0, 15.0])
    count: list[int] = dataclasses.field(default_factory=lambda: [1, 1])

    def __post_init__(self) -> None:
        if len(self.snr) != 2 or not (np.isfinite(self.snr).all() and self.snr[0] <= self.snr[1]):
            raise ValueError(f"snr must be [low, high] in dB with low <= high, got {self.snr}")
        if len(self.count) != 2 or not 1 <= self.count[0] <= self.count[1]:
            raise ValueError(f"count must be [low, high] with 1 <= low <= high, got {self.count}")


@dataclasses.dataclass
class AugmentConfig:
    """``prob``: the chance that a training utterance is augmented (0: never; WeSpeaker uses 0.6). ``noise``:
    named noise sources (e.g. ``noise``, ``music``, ``babble`` from MUSAN); ``rir``: a data dir of room impulse
    responses (e.g. the simulated RIRs of Ko et al., 2017). Dev audio is never augmented."""

    prob: float = 0.0
    noise: dict[str, NoiseConfig] = dataclasses.field(default_factory=dict)
    rir: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob must be within [0, 1], got {self.prob}")
        if REVERB in self.noise:
            raise ValueError(f"noise: '{REVERB}' names reverberation (rir); call this noise source otherwise")
        if self.prob > 0 and not self.noise and self.rir is None:
            raise ValueError(f"prob is {self.prob} but there is nothing to add: give noise sources or rir")

    @property
    def enabled(self) -> bool:
        return self.prob > 0


def _source(path: str, key: str, sample_rate: int) -> AudioSource:
    """A noise or RIR data dir as audio; a missing, empty or audio-less one is a ConfigError naming ``key``."""
    if not Path(path).is_dir():
        raise ConfigError(f"{key}: {path}: no such data directory")
    data = DataDir.load(path)
    if not data.utt_ids:
        raise ConfigError(f"{key}: {data.path}: no recordings")
    try:
        data.require_audio()
    except DataError as error:
        raise ConfigError(f"{key}: {error}") from None
    return AudioSource(data, sample_rate)


class NoiseBank:
    """The recordings of one noise source; :meth:`draw` returns a window of a given length."""

    def __init__(self, config: NoiseConfig, key: str, sample_rate: int) -> None:
        self.config = config
        self.audio = _source(config.data, f"{key}.data", sample_rate)
        self.ids = self.audio.ids
        self.seconds = self.audio.durations()

    def draw(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """The sum of ``count`` random windows of ``num_samples``: a recording longer than that is read from a
        random offset (seeking: only the window is decoded), a shorter one is repeated."""
        count = int(rng.integers(self.config.count[0], self.config.count[1] + 1))
        total = np.zeros(num_samples, dtype=np.float32)
        for _ in range(count):
            total += self._window(self.ids[int(rng.integers(len(self.ids)))], num_samples, rng)
        return total

    def _window(self, utt_id: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        rate = self.audio.sample_rate
        seconds = num_samples / rate
        spare = self.seconds[utt_id] - seconds
        if spare <= 0:
            samples = self.audio.load(utt_id)
            if not samples.size:
                raise DataError(f"{self.audio.data.path}: noise recording '{utt_id}' has no samples")
            return np.resize(samples, num_samples)  # repeats a short recording
        entry, start, _ = self.audio.data.locate(utt_id)
        offset = start + float(rng.uniform(0.0, spare))
        samples = load_audio(entry, sample_rate=rate, start=offset, end=offset + seconds, utt_id=utt_id)
        return np.resize(samples, num_samples)  # the window's rounding can differ by a sample


class Augmenter:
    """Applies one randomly drawn kind of augmentation, with probability ``prob``, to an utterance."""

    def __init__(self, config: AugmentConfig, sample_rate: int) -> None:
        self.config = config
        self.noises = {
            name: NoiseBank(noise, f"data.augment.noise.{name}", sample_rate) for name, noise in config.noise.items()
        }
        self.rirs = None if config.rir is None else _source(config.rir, "data.augment.rir", sample_rate)
        self.kinds = list(self.noises) + ([REVERB] if self.rirs is not None else [])

    def fingerprint(self) -> dict[str, str]:
        """Digests of the noise and RIR data dirs (a resumed run must augment from the same recordings)."""
        sources = {name: bank.audio for name, bank in self.noises.items()}
        if self.rirs is not None:
            sources[REVERB] = self.rirs
        return {
            f"augmentation '{name}' (wav.scp, segments)": source.data.inputs_digest()
            for name, source in sources.items()
        }

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not wav.size or rng.random() >= self.config.prob:
            return wav
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        if kind == REVERB and self.rirs is not None:
            rir_id = self.rirs.ids[int(rng.integers(len(self.rirs.ids)))]
            return reverberate(wav, self.rirs.load(rir_id), f"{self.rirs.data.path}: {rir_id}")
        bank = self.noises[kind]
        snr = float(rng.uniform(*bank.config.snr))
        return add_noise(wav, bank.draw(len(wav), rng), snr)


def add_noise(wav: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wav`` plus ``noise`` scaled to ``snr_db`` below it (energies over the whole utterance). A silent
    utterance or noise window is left as it is (its SNR is undefined)."""
    if not (np.any(wav) and np.any(noise)):
        return wav
    mixed = torchaudio.functional.add_noise(
        torch.from_numpy(wav)[None], torch.from_numpy(noise)[None], torch.tensor([snr_db])
    )
    return mixed[0].numpy()


def reverberate(wav: np.ndarray, rir: np.ndarray, rir_name: str) -> np.ndarray:
    """``wav`` convolved with the impulse response ``rir``, aligned on its direct path (its peak, so the speech
    does not shift in time), cut to the utterance's length and scaled back to its energy."""
    if not np.any(rir):
        raise DataError(f"impulse response {rir_name} is silent")
    direct = int(np.argmax(np.abs(rir)))
    # scipy pads the transforms to fast lengths: 9× faster than torchaudio's fftconvolve on a 6 s utterance.
    wet = scipy.signal.fftconvolve(wav, rir.astype(np.float32))[direct : direct + len(wav)]
    energy = float(np.dot(wet, wet))
    if energy == 0.0:
        return wet.astype(np.float32)
    return (wet * np.sqrt(float(np.dot(wav, wav)) / energy)).astype(np.float32)
