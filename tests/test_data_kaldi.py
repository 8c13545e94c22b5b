"""Kaldi data dirs: every file type round-trips; syntax errors name file, line and id."""

from __future__ import annotations

import pytest

from uattr.data.kaldi import (
    DataDir,
    Segment,
    file_name,
    format_number,
    key_kind,
    utt2spk_to_spk2utt,
    write_data_dir,
)
from uattr.errors import DataError


@pytest.fixture
def full_dir(tmp_path):
    return write_data_dir(
        tmp_path / "data",
        tables={"text.en": {"u2": "hello world", "u1": ""}, "utt2gender": {"u1": "f", "u2": "m"}},
        wav_scp={"rec1": "/audio/rec1.wav", "rec2": "sox in.flac -t wav - |", "rec3": "/arks/a.ark:1234"},
        segments={"u2": Segment("rec2", 0.5, None), "u1": Segment("rec1", 0.0, 3.2)},
        utt2spk={"u1": "spkA", "u2": "spkB"},
        text={"u1": "bonjour à tous", "u2": ""},
        utt2lang={"u1": "fr", "u2": "en"},
        utt2dur={"u1": 3.2, "u2": 1.25},
        utt2num_samples={"u1": 51200, "u2": 20000},
    )


def test_every_file_round_trips(full_dir, tmp_path):
    data = DataDir.load(full_dir)
    assert data.utt_ids == ["u1", "u2"]  # from segments, not wav.scp
    assert data.wav_scp["rec2"] == "sox in.flac -t wav - |"
    assert data.segments == {"u1": Segment("rec1", 0.0, 3.2), "u2": Segment("rec2", 0.5, None)}
    assert data.utt2spk == {"u1": "spkA", "u2": "spkB"}
    assert data.spk2utt == {"spkA": ["u1"], "spkB": ["u2"]}
    assert data.text == {"u1": "bonjour à tous", "u2": ""}
    assert data.utt2lang == {"u1": "fr", "u2": "en"}
    assert data.utt2dur == {"u1": 3.2, "u2": 1.25}
    assert data.table("text.en") == {"u1": "", "u2": "hello world"}
    assert data.table("utt2gender") == {"u1": "f", "u2": "m"}
    assert data.table("utt2num_samples") == {"u1": "51200", "u2": "20000"}
    assert (full_dir / "segments").read_text() == "u1 rec1 0 3.2\nu2 rec2 0.5 -1\n"

    data.save(tmp_path / "copy")
    for name in ("wav.scp", "segments", "utt2spk", "spk2utt", "text", "utt2lang", "utt2dur"):
        assert (tmp_path / "copy" / name).read_bytes() == (full_dir / name).read_bytes(), name
    assert DataDir.load(tmp_path / "copy") == DataDir(
        path=tmp_path / "copy", **{k: v for k, v in vars(data).items() if k != "path"}
    )


def test_optional_files_are_none_and_ids_come_from_wav_scp(tmp_path):
    write_data_dir(tmp_path, wav_scp={"b": "b.wav", "a": "a.wav"})
    data = DataDir.load(tmp_path)
    assert data.utt_ids == ["a", "b"]
    assert (data.segments, data.utt2spk, data.spk2utt, data.text, data.utt2lang, data.utt2dur) == (None,) * 6
    assert (tmp_path / "wav.scp").read_text() == "a a.wav\nb b.wav\n"  # written sorted
    assert data.has("wav.scp") and not data.has("text.de")


def test_missing_table_names_the_file(tmp_path):
    data = DataDir.load(write_data_dir(tmp_path, wav_scp={"a": "a.wav"}))
    with pytest.raises(DataError, match=r"text\.de: no such file"):
        data.table("text.de")


def test_missing_dir_or_wav_scp(tmp_path):
    with pytest.raises(DataError, match="not a data directory"):
        DataDir.load(tmp_path / "nope")
    with pytest.raises(DataError, match=r"wav\.scp: no such file"):
        DataDir.load(tmp_path)


def test_spk2utt_is_derived_from_utt2spk(tmp_path):
    write_data_dir(tmp_path, wav_scp={"a": "x", "b": "y", "c": "z"}, utt2spk={"c": "s1", "a": "s1", "b": "s0"},
                   spk2utt={"stale": ["a"]})
    assert (tmp_path / "spk2utt").read_text() == "s0 b\ns1 a c\n"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("utt2spk", "a s1\nb s2\na s3\n", r"utt2spk:3: duplicate id 'a' \(first seen on line 1\)"),
        ("utt2spk", "a s1\nb\n", r"utt2spk:2: id 'b' has no value"),
        ("segments", "a a 1.0 0.5\n", r"segments:1: id 'a': end time 0.5 is not after start time 1.0"),
        ("segments", "a a -1 2\n", r"segments:1: id 'a': start time -1 is negative"),
        ("segments", "a a 0\n", r"segments:1: id 'a': expected '<utt> <recording> <start> <end>', got 3 fields"),
        ("segments", "a a 0 x1\n", r"segments:1: id 'a': end time 'x1' is not a number"),
        ("segments", "a a 0 1_0\n", r"segments:1: id 'a': end time '1_0' is not a number"),  # float() takes it
        ("utt2dur", "a 1.5\nb ٣\n", r"utt2dur:2: id 'b': value '٣' is not a number"),  # an Arabic-Indic digit
        ("utt2dur", "a 1.5\nb nan\n", r"utt2dur:2: id 'b': value 'nan' is not a finite number"),
        ("utt2dur", "a 1.5\nb -0.25\n", r"utt2dur:2: id 'b': duration -0.25 is not positive"),  # batching
        ("utt2dur", "a 1.5 2\n", r"utt2dur:1: id 'a': expected one number after the id, got '1.5 2'"),
            ("utt2lang", "a en fr\n", r"utt2lang:1: id 'a': expected one language after the id, got 'en fr'"),
    ],
)
def test_syntax_errors_name_file_line_and_id(tmp_path, name, content, message):
    (tmp_path / "wav.scp").write_text("a a.wav\nb b.wav\n")
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        DataDir.load(tmp_path)


def test_key_kinds():
    assert [key_kind(n) for n in ("wav.scp", "reco2dur", "segments", "text", "text.en", "utt2gender")] == [
        "recording", "recording", "utterance", "utterance", "utterance", "utterance"]
    assert [key_kind(n) for n in ("spk2utt", "spk2gender", "trials", "README")] == ["speaker", "speaker", None, None]


def test_helpers():
    assert format_number(3.2000000000000002) == "3.2"
    assert format_number(2.0) == "2"
    assert format_number(1234.5678) == "1234.5678"
    assert file_name("wav_scp") == "wav.scp" and file_name("text_en") == "text.en" and file_name("utt2spk") == "utt2spk"
    assert utt2spk_to_spk2utt({"u3": "b", "u1": "b", "u2": "a"}) == {"a": ["u2"], "b": ["u1", "u3"]}
