"""Check a Kaldi data dir and report every problem as ``FILE:LINE: id 'X': what is wrong``.

Unlike :meth:`DataDir.load`, which stops at the first syntax error, validation reads each file leniently (fields
separated by spaces or tabs, as Kaldi does) and collects all problems: unsorted or duplicate ids, empty ids or
ids holding other whitespace, a byte-order mark, malformed lines, ``utt2spk``/``spk2utt`` disagreements (or speaker
files without ``utt2spk``), a ``utt2spk`` that is not also sorted by speaker (Kaldi's rule: utterance ids start
with their speaker's), ids missing from or unknown to the utterance list (``segments`` if present, else
``wav.scp``), segments that reference unknown recordings or hold no samples of them (the rule loading applies),
and unreadable audio or a wrong sample rate.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from uattr.data.audio import AudioError, AudioInfo, audio_info, segment_frames
from uattr.data.kaldi import allows_empty_value, key_kind, table_files
from uattr.fileio import describe_bad_utf8, parse_float, parse_int

_FIELD_SEPARATOR = re.compile(r"[ \t]+")
# Threads reading audio headers: the work waits on the disk (or on pipe commands), not on Python.
_HEADER_THREADS = 8


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem, printed as ``FILE:LINE: id 'X': message`` (line and id left out when not known)."""

    file: Path
    line: int | None
    id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        return f"{where}: id '{self.id}': {self.message}" if self.id is not None else f"{where}: {self.message}"


@dataclasses.dataclass
class Report:
    """What validation found: the problems (empty when the dir is clean) and a few counts for a summary."""

    path: Path
    problems: list[Problem]
    files: list[str]
    num_utterances: int
    num_recordings: int
    num_speakers: int | None
    num_languages: int | None
    hours: float | None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        parts = [f"{self.num_utterances} utterances", f"{self.num_recordings} recordings"]
        if self.num_speakers is not None:
            parts.append(f"{self.num_speakers} speakers")
        if self.num_languages is not None:
            parts.append(f"{self.num_languages} languages")
        if self.hours is not None:
            parts.append(f"{self.hours:.2f} hours")
        return f"{self.path}: OK, {', '.join(parts)}; files: {' '.join(self.files)}"


@dataclasses.dataclass
class _Table:
    """The lenient reading of one file: the first line of each id and its fields after the id."""

    path: Path
    rows: dict[str, tuple[int, list[str]]]
    values: dict[str, str]  # each id's value as written (a wav.scp entry may hold runs of spaces)

    def line(self, key: str) -> int:
        return self.rows[key][0]


# Valid segments as {utt: (recording, start, end or None)}.
_Segments = dict[str, tuple[str, float, float | None]]

# (fewest, most) fields after the id; None = no upper bound.
_FIELD_COUNTS: dict[str, tuple[int, int | None]] = {
    "segments": (3, 3),
    "utt2spk": (1, 1),
    "utt2lang": (1, 1),
    "utt2dur": (1, 1),
    "utt2num_samples": (1, 1),
    "reco2dur": (1, 1),
}


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, file: Path, line: int | None, key: str | None, message: str) -> None:
        self.problems.append(Problem(file, line, key, message))

    def read(self, name: str) -> _Table:
        """Read ``name`` line by line, reporting syntax problems and keeping the first line of each id."""
        path = self.path / name
        rows: dict[str, tuple[int, list[str]]] = {}
        values: dict[str, str] = {}
        fewest, most = _FIELD_COUNTS.get(name, (0 if allows_empty_value(name) else 1, None))
        previous: str | None = None
        with open(path, "rb") as handle:  # decoded line by line, so each line that is not UTF-8 is reported
            for number, raw_bytes in enumerate(handle, start=1):
                try:
                    raw = raw_bytes.decode("utf-8")
                except UnicodeDecodeError as error:
                    problem = describe_bad_utf8(raw_bytes, error)
                    self.add(path, number, None, f"{problem}; convert the file to UTF-8")
                    raw = raw_bytes.decode("utf-8", errors="replace")
                line = raw.rstrip("\n")
                if number == 1 and line.startswith("\ufeff"):
                    self.add(path, number, None, "starts with a UTF-8 byte-order mark; remove it (Kaldi reads it as "
                             "part of the first id)")
                    line = line[1:]
                if line.endswith("\r"):
                    self.add(path, number, None, "Windows line ending (CR); run dos2unix")
                    line = line.rstrip("\r")
                if not line.strip():
                    self.add(path, number, None, "empty line")
                    continue
                if line[0] in " \t":
                    self.add(path, number, None, "line starts with whitespace (empty id)")
                    continue
                content = line.rstrip(" \t")
                key, *fields = _FIELD_SEPARATOR.split(content)
                odd = next((char for char in key if char.isspace()), None)
                if odd is not None:
                    self.add(path, number, key, f"id contains the whitespace character U+{ord(odd):04X}")
                if key in rows:
                    self.add(path, number, key, f"duplicate id (first on line {rows[key][0]})")
                    continue
                if previous is not None and key < previous:
                    self.add(path, number, key, f"not sorted: comes after '{previous}' (sort with LC_ALL=C)")
                previous = key
                if len(fields) < fewest or (most is not None and len(fields) > most):
                    expected = str(fewest) if most == fewest else f"at least {fewest}"
                    self.add(path, number, key, f"expected {expected} field(s) after the id, got {len(fields)}")
                    continue
                rows[key] = (number, fields)
                values[key] = content[len(key) :].lstrip(" \t")
        return _Table(path, rows, values)

    def check_numbers(self, table: _Table, convert: Callable[[str], float], what: str) -> None:
        for key, (number, fields) in table.rows.items():
            try:
                value = convert(fields[0])
            except ValueError:
                value = None
            if value is None or not value > 0 or value == float("inf"):
                self.add(table.path, number, key, f"{what} '{fields[0]}' is not a positive number")

    def check_segments(self, segments: _Table, wav_scp: _Table) -> _Segments:
        """Segments with valid times and known recordings, as ``{utt: (recording, start, end)}``."""
        valid = {}
        for utt, (number, (recording, start_text, end_text)) in segments.rows.items():
            try:
                start, end = parse_float(start_text), parse_float(end_text)
            except ValueError:
                start = end = math.nan
            if not (math.isfinite(start) and math.isfinite(end)):
                self.add(segments.path, number, utt, f"start/end '{start_text} {end_text}' are not finite numbers")
                continue
            if recording not in wav_scp.rows:
                self.add(segments.path, number, utt, f"recording '{recording}' is not in wav.scp")
            elif start < 0:
                self.add(segments.path, number, utt, f"start time {start_text} is negative")
            elif end != -1 and end <= start:
                self.add(segments.path, number, utt, f"end time {end_text} is not after start time {start_text}")
            else:
                valid[utt] = (recording, start, None if end == -1 else end)
        # As Kaldi's validate_data_dir.sh: the recordings of the segments are those of wav.scp.
        used = {recording for _, (recording, _, _) in segments.rows.values()}
        for recording, (number, _) in wav_scp.rows.items():
            if recording not in used:
                self.add(wav_scp.path, number, recording, "recording not used by any segment (utils/fix_data_dir.sh "
                         "drops it)")
        return valid

    def check_keys(self, table: _Table, known: _Table, known_what: str, must_cover: bool) -> None:
        """Ids of ``table`` must be ids of ``known``; with ``must_cover``, every id of ``known`` must be in it."""
        for key, (number, _) in table.rows.items():
            if key not in known.rows:
                self.add(table.path, number, key, f"not in {known_what}")
        if must_cover:
            for key, (number, _) in known.rows.items():
                if key not in table.rows:
                    self.add(known.path, number, key, f"missing from {table.path.name}")

    def check_speakers(self, utt2spk: _Table, spk2utt: _Table) -> None:
        listed: dict[str, tuple[str, int]] = {}
        for speaker, (number, utts) in spk2utt.rows.items():
            if list(utts) != sorted(utts, key=str.encode):
                self.add(spk2utt.path, number, speaker, "utterances not in sorted order (Kaldi's spk2utt lists them "
                         "sorted; `uattr utt2spk-to-spk2utt` rebuilds it from utt2spk)")
            for utt in utts:
                if utt in listed:
                    self.add(spk2utt.path, number, speaker, f"utterance '{utt}' is listed twice (also under "
                             f"'{listed[utt][0]}' on line {listed[utt][1]})")
                    continue
                listed[utt] = (speaker, number)
                actual = utt2spk.rows.get(utt)
                if actual is None:
                    self.add(spk2utt.path, number, speaker, f"utterance '{utt}' is not in utt2spk")
                elif actual[1][0] != speaker:
                    self.add(spk2utt.path, number, speaker,
                             f"utterance '{utt}' listed here, but utt2spk gives speaker '{actual[1][0]}'")
        for utt, (number, (speaker,)) in utt2spk.rows.items():
            if utt not in listed:
                self.add(utt2spk.path, number, utt, f"not listed in spk2utt under speaker '{speaker}'")
        self.check_speaker_order(utt2spk)

    def check_speaker_order(self, utt2spk: _Table) -> None:
        """Kaldi's rule: utt2spk sorted by utterance is also sorted by speaker (as when every utterance id starts
        with its speaker id), so that per-speaker tools can stream it; reported once, at the first break."""
        previous: tuple[str, str] | None = None
        for utt, (number, (speaker,)) in sorted(utt2spk.rows.items(), key=lambda row: row[0].encode()):
            if previous is not None and speaker.encode() < previous[1].encode():
                self.add(utt2spk.path, number, utt,
                         f"speaker '{speaker}' sorts before '{previous[1]}' of the preceding utterance "
                         f"'{previous[0]}': sorted by utterance, utt2spk must also be sorted by speaker (Kaldi); "
                         f"start each utterance id with its speaker id")
                return
            previous = (utt, speaker)

    def check_audio(self, wav_scp: _Table, sample_rate: int | None) -> dict[str, AudioInfo]:
        """Read every recording's header; report unreadable audio and wrong sample rates."""

        def probe(recording: str) -> AudioInfo | AudioError:
            try:
                return audio_info(wav_scp.values[recording], utt_id=recording)
            except AudioError as error:
                return error

        recordings = list(wav_scp.rows)
        with ThreadPoolExecutor(_HEADER_THREADS) as pool:
            results = dict(zip(recordings, pool.map(probe, recordings)))
        infos = {}
        for recording, result in results.items():
            number = wav_scp.line(recording)
            if isinstance(result, AudioError):
                self.add(wav_scp.path, number, recording, result.reason)
                continue
            infos[recording] = result
            if sample_rate and result.sample_rate != sample_rate:
                self.add(wav_scp.path, number, recording,
                         f"sample rate is {result.sample_rate} Hz, expected {sample_rate} Hz")
        return infos

    def check_segment_ends(self, segment_table: _Table, segments: _Segments, infos: dict[str, AudioInfo]) -> None:
        """A segment must hold samples of its recording and end at most Kaldi's overshoot tolerance past its end:
        the rule loading applies."""
        for utt, (recording, start, end) in segments.items():
            if recording in infos:
                try:
                    segment_frames(infos[recording], start, end, f"recording '{recording}'", utt)
                except AudioError as error:
                    self.add(segment_table.path, segment_table.line(utt), utt, error.reason)


def validate_data_dir(path: str | os.PathLike, *, check_audio: bool = True, sample_rate: int | None = 16000) -> Report:
    """Validate the data dir at ``path``; ``sample_rate`` None (or 0) skips the rate check."""
    path = Path(path)
    validator = _Validator(path)
    if not path.is_dir():
        validator.add(path, None, None, "not a directory")
        return Report(path, validator.problems, [], 0, 0, None, None, None)
    files = table_files(path)
    if "wav.scp" not in files:
        validator.add(path / "wav.scp", None, None, "missing: every data dir needs wav.scp")
        return Report(path, validator.problems, files, 0, 0, None, None, None)
    tables = {name: validator.read(name) for name in files}
    wav_scp = tables["wav.scp"]
    segment_table = tables.get("segments")
    segments = validator.check_segments(segment_table, wav_scp) if segment_table else None
    utterances = segment_table or wav_scp
    if not utterances.rows:
        validator.add(utterances.path, None, None, "no utterance: the data dir is empty")

    for name, table in tables.items():
        kind = key_kind(name)
        if name in ("wav.scp", "segments", "spk2utt"):
            continue
        if kind == "utterance":
            validator.check_keys(table, utterances, utterances.path.name, must_cover=True)
        elif kind == "recording":
            validator.check_keys(table, wav_scp, "wav.scp", must_cover=False)
        elif kind == "speaker" and "utt2spk" in tables:
            speakers = {fields[0] for _, fields in tables["utt2spk"].rows.values()}
            for key, (number, _) in table.rows.items():
                if key not in speakers:
                    validator.add(table.path, number, key, "speaker not in utt2spk")
    speaker_tables = [name for name in tables if key_kind(name) == "speaker"]
    if speaker_tables and "utt2spk" not in tables:
        validator.add(path / "utt2spk", None, None, f"missing ({', '.join(speaker_tables)} exists); every speaker "
                      f"file is checked against it")
    if "utt2spk" in tables:
        if "spk2utt" in tables:
            validator.check_speakers(tables["utt2spk"], tables["spk2utt"])
        else:
            validator.add(path / "spk2utt", None, None, "missing (utt2spk exists); run utils/fix_data_dir.sh")
    for name in ("utt2dur", "reco2dur"):
        if name in tables:
            validator.check_numbers(tables[name], parse_float, "duration")
    if "utt2num_samples" in tables:
        validator.check_numbers(tables["utt2num_samples"], parse_int, "number of samples")

    infos = validator.check_audio(wav_scp, sample_rate or None) if check_audio else None
    if infos is not None and segment_table is not None and segments is not None:
        validator.check_segment_ends(segment_table, segments, infos)
    return Report(
        path=path,
        problems=validator.problems,
        files=files,
        num_utterances=len(utterances.rows),
        num_recordings=len(wav_scp.rows),
        num_speakers=len({f[0] for _, f in tables["utt2spk"].rows.values()}) if "utt2spk" in tables else None,
        num_languages=len({f[0] for _, f in tables["utt2lang"].rows.values()}) if "utt2lang" in tables else None,
        hours=_hours(infos, segments) if infos is not None else None,
    )


def _hours(infos: dict[str, AudioInfo], segments: _Segments | None) -> float:
    if segments is None:
        return sum(info.duration for info in infos.values()) / 3600
    seconds = 0.0
    for recording, start, end in segments.values():
        if recording in infos:
            seconds += max(min(end if end is not None else float("inf"), infos[recording].duration) - start, 0.0)
    return seconds / 3600
