"""Training-time augmentation: the SNR it promises, reverberation aligned on the direct path, noise windows read
from random offsets, reproducible draws per (seed, epoch, item), the clean audio kept for on-the-fly teachers,
and the errors of bad noise or RIR data dirs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_fixtures import ramp, tone, write_audio
from uattr.config import from_dict
from uattr.data.augment import AugmentConfig, Augmenter, NoiseBank, NoiseConfig, add_noise, reverberate
from uattr.data.collate import collate_batch
from uattr.data.dataset import UtteranceDataset
from uattr.data.kaldi import write_data_dir
from uattr.errors import ConfigError, DataError
from uattr.train.config import DataConfig

RATE = 16000


def noise_dir(root, recordings: dict[str, np.ndarray], rate: int = RATE):
    """A data dir of noise recordings (wav.scp only, as a MUSAN or RIR list needs)."""
    wav_scp = {name: str(write_audio(root / "wav" / f"{name}.wav", wav, rate)) for name, wav in recordings.items()}
    return write_data_dir(root / "data", wav_scp=wav_scp)


class ListAudio:
    """In-memory audio source for the dataset."""

    sample_rate = RATE

    def __init__(self, wavs: dict[str, np.ndarray]) -> None:
        self.wavs = wavs

    def load(self, utt_id: str) -> np.ndarray:
        return self.wavs[utt_id]


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    added = noisy - clean
    return float(10 * np.log10(np.dot(clean, clean) / np.dot(added, added)))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 13.5])
def test_noise_is_added_at_the_snr_asked_for(snr) -> None:
    rng = np.random.default_rng(0)
    clean = tone(300, 1.0, RATE)
    noisy = add_noise(clean, rng.normal(size=RATE).astype(np.float32) * 7, snr)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert snr_db(clean, noisy) == pytest.approx(snr, abs=1e-3)


def test_silent_speech_or_noise_is_left_as_it_is() -> None:
    silent, noise = np.zeros(800, np.float32), np.ones(800, np.float32)
    assert np.array_equal(add_noise(silent, noise, 5.0), silent)
    speech = tone(300, 0.05, RATE)
    assert np.array_equal(add_noise(speech, np.zeros(800, np.float32), 5.0), speech)


def test_reverberation_is_aligned_on_the_direct_path_and_keeps_the_energy() -> None:
    speech = tone(300, 0.5, RATE) * np.linspace(0, 1, RATE // 2, dtype=np.float32)
    delayed_impulse = np.zeros(400, np.float32)
    delayed_impulse[37] = 0.25
    assert np.allclose(reverberate(speech, delayed_impulse, "impulse"), speech, atol=1e-5)

    room = np.zeros(400, np.float32)
    room[10], room[60], room[200] = 1.0, 0.5, -0.3
    wet = reverberate(speech, room, "room")
    expected = np.convolve(speech, room)[10 : 10 + len(speech)]
    expected *= np.sqrt(np.dot(speech, speech) / np.dot(expected, expected))
    assert wet.shape == speech.shape and wet.dtype == np.float32
    assert np.allclose(wet, expected, atol=1e-4)
    assert np.dot(wet, wet) == pytest.approx(np.dot(speech, speech), rel=1e-4)
    with pytest.raises(DataError, match="impulse response data/rirs: r1 is silent"):
        reverberate(speech, np.zeros(10, np.float32), "data/rirs: r1")


def test_noise_windows_come_from_random_offsets_and_short_noises_repeat(tmp_path) -> None:
    long_noise = ramp(RATE)  # a sample's value tells where it was read
    data = noise_dir(tmp_path, {"long": long_noise, "short": np.array([0.1, 0.2, 0.3], np.float32)})
    bank = NoiseBank(NoiseConfig(data=str(data)), "data.augment.noise.noise", RATE)
    rng = np.random.default_rng(3)
    starts = set()
    for _ in range(20):
        window = bank._window("long", 4000, rng)
        assert window.shape == (4000,)
        start = int(round(window[0] * RATE))
        starts.add(start)
        assert np.allclose(window, long_noise[start : start + 4000], atol=1e-4)
    assert len(starts) > 10
    assert np.allclose(bank._window("short", 7, rng), [0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.1], atol=1e-4)

    constant = noise_dir(tmp_path / "constant", {"c": np.full(RATE, 0.125, np.float32)})
    babble = NoiseBank(NoiseConfig(data=str(constant), count=[3, 3]), "data.augment.noise.babble", RATE)
    assert np.allclose(babble.draw(500, rng), 0.375, atol=1e-4)  # three recordings summed


def test_each_kind_is_drawn_and_prob_is_the_share_augmented(tmp_path) -> None:
    noise = noise_dir(tmp_path / "noise", {"n1": np.random.default_rng(0).normal(size=RATE).astype(np.float32)})
    room = np.zeros(200, np.float32)
    room[0], room[150] = 1.0, 0.7
    rirs = noise_dir(tmp_path / "rirs", {"r1": room})
    config = AugmentConfig(prob=0.5, noise={"noise": NoiseConfig(data=str(noise), snr=[5, 5])}, rir=str(rirs))
    augmenter = Augmenter(config, RATE)
    assert augmenter.kinds == ["noise", "reverb"]
    clean = tone(300, 0.25, RATE)
    outcomes = {"clean": 0, "noise": 0, "reverb": 0}
    for seed in range(400):
        out = augmenter(clean, np.random.default_rng(seed))
        if np.array_equal(out, clean):
            outcomes["clean"] += 1
        elif abs(snr_db(clean, out) - 5.0) < 1e-2:
            outcomes["noise"] += 1
        else:
            assert np.allclose(out, reverberate(clean, room, "r1"), atol=1e-5)
            outcomes["reverb"] += 1
    assert 160 < outcomes["clean"] < 240
    assert 60 < outcomes["noise"] < 140 and 60 < outcomes["reverb"] < 140


def test_the_dataset_augments_reproducibly_and_keeps_crops_and_clean_audio(tmp_path) -> None:
    noise = noise_dir(tmp_path, {"n1": np.random.default_rng(0).normal(size=2 * RATE).astype(np.float32)})
    augmenter = Augmenter(AugmentConfig(prob=1.0, noise={"noise": NoiseConfig(data=str(noise))}), RATE)
    audio = ListAudio({f"u{i}": tone(200 + 40 * i, 0.5, RATE) for i in range(4)})
    ids = list(audio.wavs)

    def dataset(**options) -> UtteranceDataset:
        return UtteranceDataset(ids, audio, {}, max_seconds=0.2, seed=7, **options)

    plain = dataset()
    augmented = dataset(augment=augmenter, keep_clean=True)
    again = dataset(augment=augmenter)
    for index in range(len(ids)):
        item = augmented[index]
        assert torch.equal(item["clean_wav"], plain[index]["wav"])  # the same crop as without augmentation
        assert not torch.equal(item["wav"], item["clean_wav"])
        assert torch.equal(again[index]["wav"], item["wav"])  # a function of (seed, epoch, item) alone
        assert "clean_wav" not in again[index]
    uncropped = UtteranceDataset(ids, audio, {}, seed=7, augment=augmenter)
    first_epoch = uncropped[0]["wav"]
    uncropped.set_epoch(1)
    assert not torch.equal(uncropped[0]["wav"], first_epoch)  # fresh noise each epoch

    batch = collate_batch([augmented[0], augmented[1]])
    assert batch["clean_wavs"].shape == batch["wavs"].shape
    assert torch.equal(batch["clean_wavs"][1], augmented[1]["clean_wav"])


def test_the_on_the_fly_teacher_embeds_the_clean_audio() -> None:
    from uattr.teachers.base import Teacher
    from uattr.train.targets import OnTheFlyTargets

    class Peak(Teacher):
        input = "audio"
        normalized = False
        dim = 1

        def embed(self, batch) -> np.ndarray:
            return np.array([[np.abs(wav).max()] for wav in batch], np.float32)

    batch = {"ids": ["u1"], "wavs": torch.full((1, 800), 0.9), "clean_wavs": torch.full((1, 800), 0.2),
             "wav_lens": torch.tensor([800]), "targets": {}}
    targets = OnTheFlyTargets({"speaker": Peak()}, RATE)(batch)["targets"]
    assert targets["speaker"].tolist() == [[pytest.approx(0.2)]]


def test_config_errors_name_the_setting(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^augment: prob is 0.6 but there is nothing to add"):
        from_dict(DataConfig, {"augment": {"prob": 0.6}})
    with pytest.raises(ConfigError, match=r"^augment: prob must be within \[0, 1\], got 1.5"):
        from_dict(DataConfig, {"augment": {"prob": 1.5, "rir": "x"}})
    with pytest.raises(ConfigError, match=r"^augment.noise.babble: count must be \[low, high\] with 1 <= low"):
        from_dict(DataConfig, {"augment": {"prob": 1, "noise": {"babble": {"data": "x", "count": [0, 3]}}}})
    with pytest.raises(ConfigError, match=r"^augment.noise.music: snr must be \[low, high\] in dB"):
        from_dict(DataConfig, {"augment": {"prob": 1, "noise": {"music": {"data": "x", "snr": [5, float("inf")]}}}})
    with pytest.raises(ConfigError, match=r"^augment: noise: 'reverb' names reverberation"):
        from_dict(DataConfig, {"augment": {"prob": 1, "noise": {"reverb": {"data": "x"}}}})

    missing = AugmentConfig(prob=1.0, noise={"music": NoiseConfig(data=str(tmp_path / "nowhere"))})
    with pytest.raises(ConfigError, match=r"^data.augment.noise.music.data: .*nowhere: no such data directory"):
        Augmenter(missing, RATE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "wav.scp").write_text("")
    with pytest.raises(ConfigError, match=r"^data.augment.rir: .*empty: no recordings"):
        Augmenter(AugmentConfig(prob=1.0, rir=str(tmp_path / "empty")), RATE)
    broken = write_data_dir(tmp_path / "broken", wav_scp={"n1": str(tmp_path / "gone.wav")})
    with pytest.raises(DataError, match="n1"):
        Augmenter(AugmentConfig(prob=1.0, noise={"noise": NoiseConfig(data=str(broken))}), RATE)
