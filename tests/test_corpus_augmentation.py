"""`uattr prepare-augmentation`: MUSAN and RIRS_NOISES in their public layouts → noise and RIR data dirs that
``data.augment`` reads."""

from __future__ import annotations

import numpy as np

from data_fixtures import tone, write_audio
from uattr.bin.main import main as uattr_main
from uattr.data.augment import AugmentConfig, Augmenter, NoiseConfig
from uattr.data.kaldi import DataDir

RATE = 16000


def musan(root):
    for kind, subset in (("noise", "free-sound"), ("noise", "sound-bible"), ("music", "jamendo"),
                         ("speech", "librivox")):
        for k in range(2):
            write_audio(root / kind / subset / f"{kind}-{subset}-{k:04d}.wav", tone(300 + 100 * k, 0.5, RATE), RATE)
    (root / "noise" / "free-sound" / "ANNOTATIONS").write_text("not audio\n")
    return root


def rirs(root):
    for size in ("smallroom", "largeroom"):
        for room in ("Room001", "Room002"):
            response = np.zeros(400, np.float32)
            response[5], response[120] = 1.0, 0.4
            write_audio(root / "simulated_rirs" / size / room / f"{room}-00001.wav", response, RATE)
    write_audio(root / "real_rirs_isotropic_noises" / "RVB2014_type1_rir.wav", np.zeros((40, 8), np.float32), RATE)
    return root


def test_musan_and_rirs_become_data_dirs_that_augmentation_reads(tmp_path) -> None:
    assert uattr_main(["prepare-augmentation", "--musan", str(musan(tmp_path / "musan")), "--rirs",
                       str(rirs(tmp_path / "RIRS_NOISES")), "--out", str(tmp_path / "data")]) == 0
    noise = DataDir.load(tmp_path / "data" / "musan_noise")
    assert noise.utt_ids == ["noise-free-sound-0000", "noise-free-sound-0001", "noise-sound-bible-0000",
                             "noise-sound-bible-0001"]
    assert DataDir.load(tmp_path / "data" / "musan_speech").utt_ids == ["speech-librivox-0000", "speech-librivox-0001"]
    assert DataDir.load(tmp_path / "data" / "rirs").utt_ids == [
        "largeroom-Room001-00001", "largeroom-Room002-00001", "smallroom-Room001-00001", "smallroom-Room002-00001"
    ]
    config = AugmentConfig(
        prob=1.0,
        noise={kind: NoiseConfig(data=str(tmp_path / "data" / f"musan_{kind}")) for kind in ("noise", "music")},
        rir=str(tmp_path / "data" / "rirs"),
    )
    augmenter = Augmenter(config, RATE)
    clean = tone(220, 1.0, RATE)
    assert all(not np.array_equal(augmenter(clean, np.random.default_rng(seed)), clean) for seed in range(8))


def test_a_missing_kind_or_nothing_to_do_is_named(tmp_path, capsys) -> None:
    root = musan(tmp_path / "musan")
    for path in (root / "music").rglob("*.wav"):
        path.unlink()
    assert uattr_main(["prepare-augmentation", "--musan", str(root), "--out", str(tmp_path / "data")]) != 0
    assert f"{root / 'music'}: no <subset>/*.wav files" in capsys.readouterr().err
    assert not (tmp_path / "data" / "musan_noise").exists()  # all kinds or none
    assert uattr_main(["prepare-augmentation", "--rirs", str(tmp_path), "--out", str(tmp_path / "data")]) != 0
    assert "simulated_rirs: no impulse responses" in capsys.readouterr().err
    assert uattr_main(["prepare-augmentation", "--out", str(tmp_path / "data")]) != 0
    assert "give --musan, --rirs or both" in capsys.readouterr().err


def test_the_same_file_name_in_two_subsets_is_refused(tmp_path, capsys) -> None:
    root = musan(tmp_path / "musan")
    write_audio(root / "noise" / "sound-bible" / "noise-free-sound-0000.wav", tone(500, 0.2, RATE), RATE)
    assert uattr_main(["prepare-augmentation", "--musan", str(root), "--out", str(tmp_path / "data")]) != 0
    assert "recording 'noise-free-sound-0000' is also at" in capsys.readouterr().err
