"""Small audio files and Kaldi data dirs generated in a test's tmp_path (no data files in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from uattr.data.kaldi import write_data_dir


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine wave."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def ramp(num_samples: int) -> np.ndarray:
    """float32 samples whose value tells their index (``i / num_samples``), to check which samples were cut."""
    return (np.arange(num_samples) / num_samples).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    """Write samples (``[frames]`` or ``[frames, channels]``) with soundfile; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return path


def make_data_dir(
    root: Path,
    *,
    speakers: tuple[str, ...] = ("spkA", "spkB", "spkC"),
    utts_per_speaker: int = 2,
    languages: tuple[str, ...] = ("en", "fr"),
    rate: int = 16000,
    seconds: float = 0.25,
) -> Path:
    """A clean data dir ``root/data`` with wav files under ``root/wav``.

    Utterance ``<spk>-u<k>`` is a tone of its own frequency; its language cycles through ``languages``; the
    dir has wav.scp, utt2spk, spk2utt, text, text.en, utt2lang and utt2gender.
    """
    wav_scp, utt2spk, text, text_en, utt2lang, utt2gender = {}, {}, {}, {}, {}, {}
    index = 0
    for speaker in speakers:
        for k in range(1, utts_per_speaker + 1):
            utt = f"{speaker}-u{k}"
            wav = write_audio(root / "wav" / f"{utt}.wav", tone(200 + 50 * index, seconds, rate), rate)
            wav_scp[utt] = str(wav)
            utt2spk[utt] = speaker
            text[utt] = f"words of {utt}"
            text_en[utt] = f"english words of {utt}"
            utt2lang[utt] = languages[index % len(languages)]
            utt2gender[utt] = "f" if index % 2 else "m"
            index += 1
    return write_data_dir(
        root / "data",
        tables={"text.en": text_en},
        wav_scp=wav_scp,
        utt2spk=utt2spk,
        text=text,
        utt2lang=utt2lang,
        utt2gender=utt2gender,
    )


def read_ids(path: Path) -> list[str]:
    """The first field of every line of a table, in file order."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
