"""Validation: a clean dir passes; each rule, broken on purpose, gives its precise FILE:LINE: id message."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from data_fixtures import make_data_dir, tone, write_audio
from uattr.bin.main import main as uattr_main
from uattr.data.audio import AudioSource
from uattr.data.kaldi import DataDir
from uattr.data.ops import read_tables
from uattr.data.validate import Problem, validate_data_dir
from uattr.errors import DataError


@pytest.fixture
def data(tmp_path) -> Path:
    return make_data_dir(tmp_path)  # spkA-u1 spkA-u2 spkB-u1 spkB-u2 spkC-u1 spkC-u2


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_clean_dir_passes_with_a_summary(data):
    report = validate_data_dir(data)
    assert report.problems == []
    assert report.summary() == (
        f"{data}: OK, 6 utterances, 6 recordings, 3 speakers, 2 languages, 0.00 hours; "
        "files: spk2utt text text.en utt2gender utt2lang utt2spk wav.scp"
    )


# Each case breaks the fixture and names the problem line it must produce (its start; "{d}" is the data dir).
BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "unsorted": (
        lambda d: edit(d / "utt2lang", "spkA-u1 en\nspkA-u2 fr\n", "spkA-u2 fr\nspkA-u1 en\n"),
        "{d}/utt2lang:2: id 'spkA-u1': not sorted: comes after 'spkA-u2' (sort with LC_ALL=C)",
    ),
    "duplicate": (
        lambda d: edit(d / "text", "spkB-u1 words of spkB-u1\n", "spkB-u1 words of spkB-u1\nspkB-u1 again\n"),
        "{d}/text:4: id 'spkB-u1': duplicate id (first on line 3)",
    ),
    "leading whitespace": (
        lambda d: edit(d / "utt2gender", "spkA-u2 f\n", " spkA-u2 f\n"),
        "{d}/utt2gender:2: line starts with whitespace (empty id)",
    ),
    "non-breaking space in id": (
        lambda d: edit(d / "utt2lang", "spkC-u2 fr", "spkC-u2\u00a0x fr"),
        "{d}/utt2lang:6: id 'spkC-u2\u00a0x': id contains the whitespace character U+00A0",
    ),
    "empty line": (lambda d: edit(d / "utt2spk", "spkB-u1 spkB\n", "\nspkB-u1 spkB\n"), "{d}/utt2spk:3: empty line"),
    "CR line ending": (
        lambda d: edit(d / "wav.scp", ".wav\n", ".wav\r\n"),
        "{d}/wav.scp:1: Windows line ending (CR); run dos2unix",
    ),
    "not UTF-8": (
        lambda d: (d / "text").write_bytes((d / "text").read_bytes().replace(b"words of spkB-u1", b"caf\xe9")),
        "{d}/text:3: not UTF-8 text (byte 0xe9 at column 12); convert the file to UTF-8",
    ),
    "speaker id with whitespace": (
        lambda d: edit(d / "utt2spk", "spkC-u1 spkC", "spkC-u1 spk C"),
        "{d}/utt2spk:5: id 'spkC-u1': expected 1 field(s) after the id, got 2",
    ),
    "spk2utt disagrees": (
        lambda d: edit(d / "spk2utt", "spkA spkA-u1 spkA-u2\nspkB spkB-u1", "spkA spkA-u1\nspkB spkA-u2 spkB-u1"),
        "{d}/spk2utt:2: id 'spkB': utterance 'spkA-u2' listed here, but utt2spk gives speaker 'spkA'",
    ),
    "spk2utt unsorted": (
        lambda d: edit(d / "spk2utt", "spkA spkA-u1 spkA-u2", "spkA spkA-u2 spkA-u1"),
        "{d}/spk2utt:1: id 'spkA': utterances not in sorted order",
    ),
    "utterance not in spk2utt": (
        lambda d: edit(d / "spk2utt", "spkC spkC-u1 spkC-u2", "spkC spkC-u1"),
        "{d}/utt2spk:6: id 'spkC-u2': not listed in spk2utt under speaker 'spkC'",
    ),
    "utterance ids not led by their speaker": (
        lambda d: edit(d / "utt2spk", "spkA-u2 spkA", "spkA-u2 spkZ"),
        "{d}/utt2spk:3: id 'spkB-u1': speaker 'spkB' sorts before 'spkZ' of the preceding utterance 'spkA-u2'",
    ),
    "spk2utt missing": (
        lambda d: (d / "spk2utt").unlink(),
        "{d}/spk2utt: missing (utt2spk exists); run utils/fix_data_dir.sh",
    ),
    "unknown utterance": (
        lambda d: edit(d / "text.en", "spkC-u2 english words of spkC-u2\n", "spkC-u2 x\nspkD-u1 y\n"),
        "{d}/text.en:7: id 'spkD-u1': not in wav.scp",
    ),
    "utterance missing from a file": (
        lambda d: edit(d / "text", "spkB-u2 words of spkB-u2\n", ""),
        "{d}/wav.scp:4: id 'spkB-u2': missing from text",
    ),
    "speaker file with unknown speaker": (
        lambda d: (d / "spk2gender").write_text("spkA f\nspkZ m\n"),
        "{d}/spk2gender:2: id 'spkZ': speaker not in utt2spk",
    ),
    "non-positive duration": (
        lambda d: (d / "utt2dur").write_text(
            "".join(f"{u} 0.25\n" for u in ["spkA-u1", "spkA-u2", "spkB-u1", "spkB-u2", "spkC-u1"]) + "spkC-u2 0\n"
        ),
        "{d}/utt2dur:6: id 'spkC-u2': duration '0' is not a positive number",
    ),
    "number of samples with a digit separator": (  # Python's int() reads "4_000" as 4000
        lambda d: (d / "utt2num_samples").write_text(
            "".join(f"{u} 4000\n" for u in ["spkA-u1", "spkA-u2", "spkB-u1", "spkB-u2", "spkC-u1"]) + "spkC-u2 4_000\n"
        ),
        "{d}/utt2num_samples:6: id 'spkC-u2': number of samples '4_000' is not a positive number",
    ),
    "missing audio": (
        lambda d: (d.parent / "wav" / "spkB-u2.wav").unlink(),
        "{d}/wav.scp:4: id 'spkB-u2': audio file {d.parent}/wav/spkB-u2.wav does not exist",
    ),
    "corrupt audio": (
        lambda d: (d.parent / "wav" / "spkA-u2.wav").write_bytes(b"not audio at all"),
        "{d}/wav.scp:2: id 'spkA-u2': cannot read audio header of {d.parent}/wav/spkA-u2.wav",
    ),
    "wrong sample rate": (
        lambda d: write_audio(d.parent / "wav" / "spkC-u1.wav", tone(100, 0.1, 8000), 8000),
        "{d}/wav.scp:5: id 'spkC-u1': sample rate is 8000 Hz, expected 16000 Hz",
    ),
    "no wav.scp": (lambda d: (d / "wav.scp").unlink(), "{d}/wav.scp: missing: every data dir needs wav.scp"),
    "empty": (
        lambda d: [(d / name).write_text("") for name in ("wav.scp", "utt2spk", "spk2utt", "text", "text.en",
                                                           "utt2lang", "utt2gender")],
        "{d}/wav.scp: no utterance: the data dir is empty",
    ),
    "byte-order mark": (
        lambda d: (d / "utt2spk").write_bytes(b"\xef\xbb\xbf" + (d / "utt2spk").read_bytes()),
        "{d}/utt2spk:1: starts with a UTF-8 byte-order mark; remove it",
    ),
    "speaker files without utt2spk": (
        lambda d: (d / "utt2spk").unlink(),
        "{d}/utt2spk: missing (spk2utt exists)",
    ),
}


def test_a_byte_order_mark_is_reported_once_not_as_a_foreign_id(data):
    BROKEN["byte-order mark"][0](data)
    assert [problem.message for problem in validate_data_dir(data).problems] == [
        "starts with a UTF-8 byte-order mark; remove it (Kaldi reads it as part of the first id)"
    ]


def test_a_table_that_is_a_broken_link_is_an_error_not_an_absent_table(data, tmp_path):
    """``utt2spk -> ../train/utt2spk`` after ``train`` moved: silently speakerless, the dir would validate."""
    (data / "utt2spk").rename(tmp_path / "elsewhere")
    (data / "utt2spk").symlink_to("../train/utt2spk")
    for read in (validate_data_dir, DataDir.load, read_tables):
        with pytest.raises(DataError, match=r"utt2spk: a broken symbolic link \(to \.\./train/utt2spk\)"):
            read(data)


def test_wav_scp_entries_are_probed_as_written(data):
    """Runs of spaces inside a path (or a command) are part of the entry, not field separators."""
    wav = data.parent / "wav"
    (wav / "spkA-u1.wav").rename(wav / "my  file.wav")
    edit(data / "wav.scp", f"{wav}/spkA-u1.wav", f"{wav}/my  file.wav")
    assert validate_data_dir(data).ok


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_rule_reports_file_line_and_id(data, case):
    breaker, expected = BROKEN[case]
    breaker(data)
    lines = [str(problem) for problem in validate_data_dir(data).problems]
    assert any(line.startswith(expected.format(d=data)) for line in lines), lines


def segment_dir(tmp_path: Path, segments: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    rec = write_audio(tmp_path / "rec.wav", np.zeros(16000, dtype=np.float32), 16000)
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"rec {rec}\n")
    (data / "segments").write_text(segments)
    utts = [line.split()[0] for line in segments.splitlines()]
    (data / "utt2spk").write_text("".join(f"{u} s\n" for u in utts))
    (data / "spk2utt").write_text(f"s {' '.join(utts)}\n")
    return data


def test_a_recording_no_segment_uses_is_a_problem_as_in_kaldi(tmp_path):
    data = segment_dir(tmp_path, "a rec 0 0.5\n")
    with open(data / "wav.scp", "a") as handle:
        handle.write(f"spare {tmp_path / 'rec.wav'}\n")
    assert [str(p) for p in validate_data_dir(data).problems] == [
        f"{data}/wav.scp:2: id 'spare': recording not used by any segment (utils/fix_data_dir.sh drops it)"
    ]


def test_segment_rules(tmp_path):
    """The rules loading applies: finite times, a known recording, samples within it (an end at most 0.5 s past)."""
    data = segment_dir(tmp_path, "a rec 0 0.5\nb nope 0 1\nc rec 0.5 0.2\nd rec -1 0.2\ne rec x 1\nf rec 0.2 3\n"
                                 "g rec 0.5 -1\nh rec 0.1\ni rec nan 1\nj rec 1.2 1.4\nk rec 0 0_5\n")
    assert [str(p) for p in validate_data_dir(data).problems] == [
        f"{data}/segments:8: id 'h': expected 3 field(s) after the id, got 2",
        f"{data}/segments:2: id 'b': recording 'nope' is not in wav.scp",
        f"{data}/segments:3: id 'c': end time 0.2 is not after start time 0.5",
        f"{data}/segments:4: id 'd': start time -1 is negative",
        f"{data}/segments:5: id 'e': start/end 'x 1' are not finite numbers",
        f"{data}/segments:9: id 'i': start/end 'nan 1' are not finite numbers",
        f"{data}/segments:11: id 'k': start/end '0 0_5' are not finite numbers",
        f"{data}/utt2spk:8: id 'h': not in segments",
        f"{data}/segments:6: id 'f': segment end 3 s is past the end of recording 'rec' (1.000 s long)",
        f"{data}/segments:10: id 'j': segment [1.2, 1.4] s is empty in recording 'rec' (1.000 s long)",
    ]
    source = AudioSource(segment_dir(tmp_path / "measured", "f rec 0.2 3\ng rec 0.5 -1\nj rec 1.2 1.4\n"))
    for utt in ("f", "j"):  # what compute-durations measures is what loading reads
        with pytest.raises(DataError, match=f"utterance '{utt}': segment"):
            source.measure(utt)
    assert source.measure("g") == (0.5, 8000)


def test_no_audio_skips_the_audio_checks(data):
    (data.parent / "wav" / "spkA-u1.wav").unlink()
    assert validate_data_dir(data, check_audio=False).ok
    assert validate_data_dir(data, sample_rate=None).problems[0].message.endswith("does not exist")


def test_problem_format():
    assert str(Problem(Path("d/text"), 3, "u1", "bad")) == "d/text:3: id 'u1': bad"
    assert str(Problem(Path("d/spk2utt"), None, None, "missing")) == "d/spk2utt: missing"


def test_cli_prints_first_n_problems_then_a_count(data, capsys):
    edit(data / "text", "spkA-u1 words of spkA-u1\nspkA-u2 words of spkA-u2\n", "")
    edit(data / "utt2lang", "spkA-u1 en\n", "")
    assert uattr_main(["validate-data-dir", str(data), "--no-audio", "--max-report", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{data}/wav.scp:1: id 'spkA-u1': missing from text",
        f"{data}/wav.scp:2: id 'spkA-u2': missing from text",
        "... and 1 more problems",
        f"{data}: 3 problem(s) found",
    ]


def test_cli_clean_dir_exits_zero(data, capsys):
    assert uattr_main(["validate-data-dir", str(data)]) == 0
    assert capsys.readouterr().out.startswith(f"{data}: OK, 6 utterances")
