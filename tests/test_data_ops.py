"""Data-dir operations: fix, subset, combine, split, spk2utt and durations (Python API and CLI)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import make_data_dir, read_ids, write_audio
from uattr.bin.main import main as uattr_main
from uattr.data.kaldi import DataDir, Segment, write_data_dir
from uattr.data.ops import (
    _balanced_runs,
    combine_data_dirs,
    compute_durations,
    fix_data_dir,
    split_data_dir,
    subset_data_dir,
)
from uattr.data.validate import validate_data_dir
from uattr.errors import ConfigError, DataError

UTTS = ["spkA-u1", "spkA-u2", "spkB-u1", "spkB-u2", "spkC-u1", "spkC-u2"]


@pytest.fixture
def data(tmp_path) -> Path:
    return make_data_dir(tmp_path)


# ------------------------------------------------------------------------------------------------------------ fix


def test_fix_keeps_the_intersection_and_sorts(data):
    (data / "text").write_text(  # unsorted, a repeated line, an utterance unknown to wav.scp, spkB-u2 missing
        "spkC-u2 c2\nspkA-u1 a1\nspkA-u1 a1\nspkZ-u9 ghost\nspkA-u2 a2\nspkB-u1 b1\nspkC-u1 c1\n"
    )
    (data / "utt2lang").write_text((data / "utt2lang").read_text().replace("spkC-u1 en\n", "spkC-u1\n"))
    (data / "spk2gender").write_text("spkB m\nspkA f\n")
    report = fix_data_dir(data)

    assert (report.kept, report.total) == (4, 7)
    assert report.missing_from == {
        "text": ["spkB-u2"],
        "utt2lang": ["spkC-u1", "spkZ-u9"],
        "wav.scp": ["spkZ-u9"],
        "utt2spk": ["spkZ-u9"],
        "utt2gender": ["spkZ-u9"],
        "text.en": ["spkZ-u9"],
    }
    assert report.duplicate_lines == {"text": 1} and report.malformed_lines == {"utt2lang": 1}
    assert "kept 4 of 7 utterances" in report.describe()
    kept = ["spkA-u1", "spkA-u2", "spkB-u1", "spkC-u2"]
    for name in ("wav.scp", "text", "text.en", "utt2spk", "utt2lang", "utt2gender"):
        assert read_ids(data / name) == kept, name
    assert (data / "spk2utt").read_text() == "spkA spkA-u1 spkA-u2\nspkB spkB-u1\nspkC spkC-u2\n"
    assert (data / "spk2gender").read_text() == "spkA f\nspkB m\n"
    assert validate_data_dir(data).ok
    assert "spkZ-u9 ghost" in (data / ".backup" / "text").read_text()

    again = fix_data_dir(data)  # idempotent; the backup of the first fix (the original files) is kept
    assert (again.kept, again.total, again.missing_from) == (4, 4, {})
    assert "spkZ-u9 ghost" in (data / ".backup" / "text").read_text()
    assert not [p.name for p in data.iterdir() if p.name.startswith(".") and p.name != ".backup"]


def test_fix_with_segments_drops_utterances_of_unknown_recordings(tmp_path):
    write_data_dir(tmp_path, wav_scp={"r1": "r1.wav", "r2": "r2.wav"},
                   segments={"a": Segment("r1", 0, 1), "b": Segment("r3", 0, 1)}, utt2spk={"a": "s", "b": "s"})
    report = fix_data_dir(tmp_path)
    assert report.missing_from == {"wav.scp": ["b"]}
    assert read_ids(tmp_path / "segments") == ["a"] and read_ids(tmp_path / "wav.scp") == ["r1"]
    assert (tmp_path / "spk2utt").read_text() == "s a\n"


def test_fix_rebuilds_utt2spk_from_spk2utt(tmp_path):
    (tmp_path / "wav.scp").write_text("a a.wav\nb b.wav\n")
    (tmp_path / "spk2utt").write_text("s1 b a\n")
    fix_data_dir(tmp_path)
    assert (tmp_path / "utt2spk").read_text() == "a s1\nb s1\n"


def test_fix_rebuilds_a_spk2utt_of_repeated_speakers_and_refuses_an_utterance_of_two(data, tmp_path):
    (data / "spk2utt").write_text((data / "spk2utt").read_text() + "spkA spkA-u1\n")  # cat a/spk2utt b/spk2utt
    fix_data_dir(data)
    assert (data / "spk2utt").read_text().count("spkA ") == 1 and validate_data_dir(data).ok
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "wav.scp").write_text("u1 u1.wav\nu2 u2.wav\n")
    (tmp_path / "only" / "spk2utt").write_text("s1 u1 u2\ns2 u2\n")
    with pytest.raises(DataError, match=r"spk2utt:2: utterance 'u2' is listed under speaker 's2' here and under "
                                         r"'s1' on line 1"):
        fix_data_dir(tmp_path / "only")
    with pytest.raises(DataError, match=r"only/utt2spk: no such file, but spk2utt exists; `uattr fix-data-dir"):
        subset_data_dir(tmp_path / "only", tmp_path / "sub", first=1)


def test_fix_refuses_to_empty_the_dir(data):
    """As Kaldi's fix_data_dir.sh: when no utterance is in every file, nothing is written or backed up."""
    text = (data / "text").read_text()
    (data / "text").write_text(text.upper())  # SPKA-U1 ...: no id of wav.scp
    before = {name: (data / name).read_text() for name in ("wav.scp", "utt2spk", "text")}
    with pytest.raises(DataError, match=r"no utterance is in every file \(6 not in text, e\.g\. 'spkA-u1'.*nothing changed"):
        fix_data_dir(data)
    assert {name: (data / name).read_text() for name in before} == before
    assert not (data / ".backup").exists()


def test_a_speaker_or_language_of_two_fields_is_refused(data, tmp_path, capsys):
    """"u1 spk1 extra" would make 'spk1 extra' a speaker, and spk2utt list 'extra' as an utterance."""
    (data / "utt2spk").write_text((data / "utt2spk").read_text().replace("spkB-u1 spkB", "spkB-u1 spkB extra"))
    for read in (lambda: DataDir.load(data), lambda: subset_data_dir(data, tmp_path / "s", first=1)):
        with pytest.raises(DataError, match=r"utt2spk:3: id 'spkB-u1': expected one speaker after the id, got"):
            read()
    assert uattr_main(["utt2spk-to-spk2utt", str(data / "utt2spk")]) == 1
    assert "utt2spk:3: id 'spkB-u1': expected one speaker" in capsys.readouterr().err
    report = fix_data_dir(data)  # fixing drops the line, and says so
    assert report.malformed_lines == {"utt2spk": 1} and report.kept == 5


def test_fix_refuses_conflicting_duplicates(data):
    (data / "utt2spk").write_text((data / "utt2spk").read_text() + "spkA-u1 spkB\n")
    with pytest.raises(DataError, match=r"utt2spk:7: id 'spkA-u1' has a different value on line 1"):
        fix_data_dir(data)


# --------------------------------------------------------------------------------------------------------- subset


def test_subset_filters(data, tmp_path):
    out = tmp_path / "sub"
    assert subset_data_dir(data, out / "1", first=2) == ["spkA-u1", "spkA-u2"]
    assert subset_data_dir(data, out / "2", per_speaker=1) == ["spkA-u1", "spkB-u1", "spkC-u1"]
    assert subset_data_dir(data, out / "3", per_language=2) == ["spkA-u1", "spkA-u2", "spkB-u1", "spkB-u2"]
    assert subset_data_dir(data, out / "4", languages=["fr"]) == ["spkA-u2", "spkB-u2", "spkC-u2"]
    assert subset_data_dir(data, out / "5", utt_list=["spkC-u2", "spkB-u1", "nobody"], per_speaker=1) == [
        "spkB-u1", "spkC-u2"]
    assert subset_data_dir(data, out / "6", languages=["en", "fr"], per_speaker=2, first=3) == UTTS[:3]
    sub = DataDir.load(out / "2")
    assert sub.utt_ids == ["spkA-u1", "spkB-u1", "spkC-u1"]
    assert sub.spk2utt == {"spkA": ["spkA-u1"], "spkB": ["spkB-u1"], "spkC": ["spkC-u1"]}
    assert sub.table("text.en") == {u: f"english words of {u}" for u in sub.utt_ids}
    assert validate_data_dir(out / "4").ok


def test_subset_errors(data, tmp_path):
    with pytest.raises(DataError, match=r"utt2lang: no utterance in language 'de'; languages: en fr"):
        subset_data_dir(data, tmp_path / "x", languages=["de"])
    with pytest.raises(DataError, match="the subset is empty"):
        subset_data_dir(data, tmp_path / "x", utt_list=["nobody"])
    with pytest.raises(DataError, match=r"subset: --first must be at least 1, got -1"):
        subset_data_dir(data, tmp_path / "x", first=-1)
    (data / "utt2lang").write_text("spkA-u1 en\nspkA-u2 fr\n")
    with pytest.raises(DataError, match=r"utt2lang: no entry for 4 utterance\(s\), e.g. 'spkB-u1'; `uattr fix-data"):
        subset_data_dir(data, tmp_path / "x", languages=["en"])
    (data / "utt2lang").unlink()
    with pytest.raises(DataError, match=r"utt2lang: no such file, needed by --per-lang"):
        subset_data_dir(data, tmp_path / "x", per_language=1)


def test_malformed_segments_are_refused_not_copied(tmp_path):
    write_data_dir(tmp_path / "d", wav_scp={"r1": "r1.wav"}, utt2spk={"a": "s", "b": "s"},
                   segments={"a": Segment("r1", 0, 1), "b": Segment("r1", 1, 2)})
    segments = tmp_path / "d" / "segments"
    segments.write_text(segments.read_text().replace("b r1 1", "b r1 3"))  # ends before it starts
    for operation in (lambda: fix_data_dir(tmp_path / "d"), lambda: split_data_dir(tmp_path / "d", 1),
                      lambda: subset_data_dir(tmp_path / "d", tmp_path / "x", first=1)):
        with pytest.raises(DataError, match=r"d/segments(:2)?: id 'b': end time 2(\.0)? is not after start time 3"):
            operation()


def test_operations_refuse_segments_of_recordings_not_in_wav_scp(tmp_path):
    write_data_dir(tmp_path / "data", wav_scp={"recA": "a.wav"}, utt2spk={"s-1": "s", "s-2": "s"},
                   segments={"s-1": Segment("recA", 0, 1), "s-2": Segment("recB", 0, 1)})
    with pytest.raises(DataError, match=r"segments: 1 utterance\(s\) of recordings not in wav.scp, e.g. 's-2' of "
                                         r"'recB'; `uattr fix-data-dir"):
        subset_data_dir(tmp_path / "data", tmp_path / "sub", first=2)
    fix_data_dir(tmp_path / "data")  # drops it
    subset_data_dir(tmp_path / "data", tmp_path / "sub", first=2)
    assert read_ids(tmp_path / "sub" / "segments") == ["s-1"]


def test_operations_refuse_utterances_without_a_speaker(data, tmp_path):
    """utt2spk must cover every utterance (Kaldi's rule): each operation names the file and an utterance."""
    (data / "utt2spk").write_text((data / "utt2spk").read_text().replace("spkC-u2 spkC\n", ""))
    for operation in (lambda: subset_data_dir(data, tmp_path / "x", first=1), lambda: split_data_dir(data, 2),
                      lambda: combine_data_dirs(tmp_path / "y", [data])):
        with pytest.raises(DataError, match=r"utt2spk: no entry for 1 utterance\(s\), e.g. 'spkC-u2'"):
            operation()


def test_subset_with_segments_keeps_only_used_recordings(tmp_path):
    write_data_dir(tmp_path / "d", wav_scp={"r1": "r1.wav", "r2": "r2.wav"}, reco2dur={"r1": 9.0, "r2": 8.0},
                   segments={"a": Segment("r1", 0, 1), "b": Segment("r2", 0, 1), "c": Segment("r2", 1, 2)})
    subset_data_dir(tmp_path / "d", tmp_path / "s", utt_list=["b", "c"])
    assert read_ids(tmp_path / "s" / "wav.scp") == ["r2"] and read_ids(tmp_path / "s" / "reco2dur") == ["r2"]
    assert (tmp_path / "s" / "segments").read_text() == "b r2 0 1\nc r2 1 2\n"


# -------------------------------------------------------------------------------------------------------- combine


def test_combine_is_the_union(data, tmp_path):
    subset_data_dir(data, tmp_path / "a", utt_list=UTTS[:3])
    subset_data_dir(data, tmp_path / "b", utt_list=UTTS[3:])
    combine_data_dirs(tmp_path / "all", [tmp_path / "b", tmp_path / "a"])
    for name in ("wav.scp", "utt2spk", "spk2utt", "text", "text.en", "utt2lang", "utt2gender"):
        assert (tmp_path / "all" / name).read_text() == (data / name).read_text(), name


def test_combine_leaves_out_entries_of_utterances_the_sources_do_not_have(data, tmp_path, caplog):
    subset_data_dir(data, tmp_path / "a", utt_list=UTTS[:3])
    subset_data_dir(data, tmp_path / "b", utt_list=UTTS[3:])
    with open(tmp_path / "b" / "utt2spk", "a") as handle:  # its wav.scp line was removed by hand
        handle.write("spkD-u9 spkD\n")
    with open(tmp_path / "b" / "text", "a") as handle:
        handle.write("spkD-u9 gone\n")
    with caplog.at_level(logging.WARNING):
        combine_data_dirs(tmp_path / "all", [tmp_path / "a", tmp_path / "b"])
    assert "not combining the entries of ids that no combined utterance uses: 1 of text, 1 of utt2spk" in caplog.text
    assert validate_data_dir(tmp_path / "all").ok
    assert (tmp_path / "all" / "spk2utt").read_text() == (data / "spk2utt").read_text()


def test_combine_rejects_duplicate_utterances(data, tmp_path):
    subset_data_dir(data, tmp_path / "a", utt_list=UTTS[:3])
    subset_data_dir(data, tmp_path / "b", utt_list=UTTS[2:])
    with pytest.raises(DataError, match=r"b/text: utterance 'spkB-u1' is also in .*a/text"):
        combine_data_dirs(tmp_path / "all", [tmp_path / "a", tmp_path / "b"])


def test_combine_rejects_an_utterance_in_two_sources_even_when_wav_scp_alone_lists_it(tmp_path):
    for name in ("a", "b"):
        write_data_dir(tmp_path / name, wav_scp={"u1": "same.wav", f"{name}2": f"{name}2.wav"})
    with pytest.raises(DataError, match=r"b/wav\.scp: utterance 'u1' is also in .*a/wav\.scp"):
        combine_data_dirs(tmp_path / "ab", [tmp_path / "a", tmp_path / "b"])


def test_combine_mixed_segments_and_partial_files(tmp_path, caplog):
    write_data_dir(tmp_path / "a", wav_scp={"r1": "r1.wav"}, segments={"a1": Segment("r1", 0, 1)},
                   text={"a1": "x"})
    write_data_dir(tmp_path / "b", wav_scp={"b1": "b1.wav"})
    with caplog.at_level(logging.WARNING):
        combine_data_dirs(tmp_path / "c", [tmp_path / "a", tmp_path / "b"])
    assert (tmp_path / "c" / "segments").read_text() == "a1 r1 0 1\nb1 b1 0 -1\n"
    assert (tmp_path / "c" / "wav.scp").read_text() == "b1 b1.wav\nr1 r1.wav\n"
    assert not (tmp_path / "c" / "text").exists()
    assert f"not combining text: missing from {tmp_path / 'b'}" in caplog.text


def test_combine_shared_recordings_must_agree(tmp_path):
    write_data_dir(tmp_path / "a", wav_scp={"r": "r.wav"}, segments={"a": Segment("r", 0, 1)})
    write_data_dir(tmp_path / "b", wav_scp={"r": "r.wav"}, segments={"b": Segment("r", 1, 2)})
    write_data_dir(tmp_path / "c", wav_scp={"r": "other.wav"}, segments={"c": Segment("r", 2, 3)})
    combine_data_dirs(tmp_path / "ab", [tmp_path / "a", tmp_path / "b"])
    assert read_ids(tmp_path / "ab" / "segments") == ["a", "b"]
    with pytest.raises(DataError, match=r"c/wav\.scp: id 'r' is also in .*a/wav\.scp, with another value"):
        combine_data_dirs(tmp_path / "ac", [tmp_path / "a", tmp_path / "c"])


def test_outputs_replace_an_earlier_data_dir_whole(data, tmp_path):
    """Writing into an existing data dir would keep its other tables (utt2dur, segments) of other utterances."""
    out = tmp_path / "out"
    subset_data_dir(data, out, first=4)
    compute_durations(out)
    (out / "split2").mkdir()
    (data / "utt2gender").unlink()
    subset_data_dir(data, tmp_path / "a", utt_list=UTTS[:2])
    subset_data_dir(data, tmp_path / "b", utt_list=UTTS[4:])
    for write in (lambda: combine_data_dirs(out, [tmp_path / "a", tmp_path / "b"]),
                  lambda: subset_data_dir(data, out, utt_list=UTTS[:2] + UTTS[4:])):
        write()
        assert sorted(path.name for path in out.iterdir()) == ["spk2utt", "text", "text.en", "utt2lang", "utt2spk",
                                                                 "wav.scp"]
        assert validate_data_dir(out).ok


def test_outputs_refuse_to_replace_an_input_or_what_is_not_a_data_dir(data, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"notes: exists and is not a data dir \(no wav\.scp\); refusing"):
        subset_data_dir(data, tmp_path / "notes", first=1)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="the output dir is also an input"):
        subset_data_dir(data, data, first=1)
    with pytest.raises(DataError, match="the output dir is also an input"):
        combine_data_dirs(data, [tmp_path / "x", data])
    assert read_ids(data / "wav.scp") == UTTS


# ---------------------------------------------------------------------------------------------------------- split


def test_split_by_speaker_keeps_speakers_whole(tmp_path):
    data = make_data_dir(tmp_path, speakers=("s1", "s2", "s3", "s4", "s5"), utts_per_speaker=3)
    parts = split_data_dir(data, 2)
    assert parts == [data / "split2" / "1", data / "split2" / "2"]
    speakers = [set(DataDir.load(part).spk2utt) for part in parts]
    assert speakers == [{"s1", "s2", "s3"}, {"s4", "s5"}]
    assert sorted(read_ids(parts[0] / "wav.scp") + read_ids(parts[1] / "wav.scp")) == read_ids(data / "wav.scp")
    assert all(validate_data_dir(part, check_audio=False).ok for part in parts)


def test_a_split_again_leaves_no_table_of_the_earlier_split(tmp_path):
    data = make_data_dir(tmp_path, speakers=("s1", "s2"), utts_per_speaker=2)
    compute_durations(data)
    split_data_dir(data, 2)
    (data / "utt2dur").unlink()
    (data / "utt2num_samples").unlink()
    for part in split_data_dir(data, 2):
        assert not (part / "utt2dur").exists()


def test_split_by_utterance(data):
    parts = split_data_dir(data, 4, per_utterance=True)
    assert [p.relative_to(data).as_posix() for p in parts] == [f"split4utt/{i}" for i in range(1, 5)]
    assert [len(read_ids(p / "utt2spk")) for p in parts] == [2, 1, 2, 1]
    assert [u for p in parts for u in read_ids(p / "utt2spk")] == UTTS


def test_a_recording_and_a_speaker_split_across_parts_are_in_each_of_them(tmp_path):
    """Per utterance, one recording's segments (and one speaker's utterances) land in several parts."""
    segments = {f"spk{s}-r{r}-{k}": f"rec{r} {k}.0 {k + 1}.0" for r in (1, 2) for k in range(3) for s in "AB"[r - 1]}
    tables = {
        "wav.scp": {"rec1": "/audio/rec1.wav", "rec2": "/audio/rec2.wav", "rec3": "/audio/unused.wav"},
        "segments": segments,
        "utt2spk": {utt: utt.split("-")[0] for utt in segments},
        "spk2gender": {"spkA": "f", "spkB": "m", "spkC": "f"},
    }
    data = write_data_dir(tmp_path / "data", tables=tables)
    parts = split_data_dir(data, 4, per_utterance=True)
    assert [read_ids(part / "segments") for part in parts] == [
        ["spkA-r1-0", "spkA-r1-1"], ["spkA-r1-2"], ["spkB-r2-0", "spkB-r2-1"], ["spkB-r2-2"]]
    assert [read_ids(part / "wav.scp") for part in parts] == [["rec1"], ["rec1"], ["rec2"], ["rec2"]]
    assert [(part / "spk2gender").read_text() for part in parts] == ["spkA f\n", "spkA f\n", "spkB m\n", "spkB m\n"]
    assert [(part / "spk2utt").read_text().split()[0] for part in parts] == ["spkA", "spkA", "spkB", "spkB"]


def test_split_errors(data):
    with pytest.raises(DataError, match="cannot split 3 speakers into 4 parts"):
        split_data_dir(data, 4)
    (data / "utt2spk").unlink()
    (data / "spk2utt").unlink()
    with pytest.raises(DataError, match=r"utt2spk: no such file, needed by a split by speaker \(use --per-utt\)"):
        split_data_dir(data, 2)


def test_balanced_runs_are_contiguous_non_empty_and_even():
    assert _balanced_runs([1] * 10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert _balanced_runs([10, 1, 1, 1], 3) == [(0, 1), (1, 2), (2, 4)]
    assert _balanced_runs([1, 1, 1, 10], 2) == [(0, 3), (3, 4)]
    assert _balanced_runs([5], 1) == [(0, 1)]


# ------------------------------------------------------------------------------------------------------ durations


def test_compute_durations_from_headers_and_segments(tmp_path):
    data = make_data_dir(tmp_path, seconds=0.5, rate=8000)
    durations = compute_durations(data)
    assert durations == dict.fromkeys(UTTS, 0.5)
    assert (data / "utt2dur").read_text() == "".join(f"{u} 0.5\n" for u in UTTS)
    assert (data / "utt2num_samples").read_text() == "".join(f"{u} 4000\n" for u in UTTS)

    rec = write_audio(tmp_path / "long.wav", np.zeros(16000, dtype=np.float32), 16000)
    seg = write_data_dir(tmp_path / "seg", wav_scp={"r": f"cat {rec} |"},
                         segments={"a": Segment("r", 0.25, 0.5), "b": Segment("r", 0.75, None)})
    assert compute_durations(seg) == {"a": 0.25, "b": 0.25}
    assert (seg / "utt2num_samples").read_text() == "a 4000\nb 4000\n"


def test_compute_durations_replaces_a_broken_utt2dur_and_checks_its_options(tmp_path):
    data = make_data_dir(tmp_path)
    (data / "utt2dur").write_text("spkA-u1 abc\nspkA-u1 1\n")  # its own output, broken: recomputed, not an error
    assert compute_durations(data) == dict.fromkeys(UTTS, 0.25)
    (data / "utt2dur").write_text("spkA-u1 abc\n")
    assert compute_durations(data, force=True) == dict.fromkeys(UTTS, 0.25)
    with pytest.raises(ConfigError, match="number of threads must be at least 1, got 0"):
        compute_durations(data, force=True, num_threads=0)


def test_compute_durations_skips_when_complete(tmp_path):
    data = make_data_dir(tmp_path)
    compute_durations(data)
    (data / "utt2dur").write_text("".join(f"{u} 7\n" for u in UTTS))  # must be kept, not recomputed
    assert compute_durations(data) == dict.fromkeys(UTTS, 7.0)
    assert compute_durations(data, force=True) == dict.fromkeys(UTTS, 0.25)


# ------------------------------------------------------------------------------------------------------------ CLI


def test_cli_commands(data, tmp_path, capsys):
    (tmp_path / "list").write_text("spkA-u2\nspkC-u1 extra fields are ignored\n")
    assert uattr_main(["subset-data-dir", "--utt-list", str(tmp_path / "list"), str(data), str(tmp_path / "s")]) == 0
    assert read_ids(tmp_path / "s" / "wav.scp") == ["spkA-u2", "spkC-u1"]
    assert uattr_main(["subset-data-dir", "--langs", "en", "--per-spk", "1", str(data), str(tmp_path / "en")]) == 0
    assert read_ids(tmp_path / "en" / "utt2lang") == ["spkA-u1", "spkB-u1", "spkC-u1"]
    assert uattr_main(["subset-data-dir", str(data), str(tmp_path / "none")]) == 1  # no filter given

    assert uattr_main(["combine-data", str(tmp_path / "c"), str(tmp_path / "s"), str(tmp_path / "en")]) == 1
    assert "utterance 'spkC-u1' is also in" in capsys.readouterr().err
    assert uattr_main(["split-data", "--per-utt", str(data), "3"]) == 0
    assert (data / "split3utt" / "3" / "wav.scp").is_file()
    assert uattr_main(["compute-durations", "--nj", "2", str(data)]) == 0
    assert (data / "utt2dur").is_file()

    assert uattr_main(["utt2spk-to-spk2utt", str(data / "utt2spk")]) == 0
    assert capsys.readouterr().out == (data / "spk2utt").read_text()
    assert uattr_main(["utt2spk-to-spk2utt", str(data / "utt2spk"), str(tmp_path / "spk2utt")]) == 0
    assert (tmp_path / "spk2utt").read_text() == (data / "spk2utt").read_text()

    (data / "text").write_text("spkA-u1 only one\n")
    assert uattr_main(["fix-data-dir", str(data)]) == 0
    assert "kept 1 of 6 utterances" in capsys.readouterr().out
