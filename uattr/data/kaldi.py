"""Kaldi-style data directories: reading, writing and the naming rules every data tool shares.

A data dir is a folder of ``<id> <value>`` tables (``wav.scp``, ``segments``, ``utt2spk``, ``text``, ...). Ids are
sorted in C-locale (byte) order, which for UTF-8 text is Python's ``sorted`` order. Loading is strict about
syntax (duplicate ids, unparsable numbers and malformed ``segments`` lines raise :class:`DataError` naming the
file and line); cross-file consistency is :mod:`uattr.data.validate`'s job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping, NamedTuple, Sequence

from uattr.errors import DataError
from uattr.fileio import iter_table, parse_float, read_table, write_table

KeyKind = Literal["utterance", "recording", "speaker"]

# Files whose values are free text and may be empty (an utterance with an empty transcript).
_FREE_TEXT = ("text",)
# Known per-recording and per-speaker files; every other ``utt2*``, ``text.*``, ``segments``, ``feats.scp`` and
# ``vad.scp`` is per-utterance (Kaldi's own conventions, see utils/fix_data_dir.sh in Kaldi).
_RECORDING_FILES = ("wav.scp", "reco2file_and_channel", "reco2dur", "reco2num_samples")
_SPEAKER_FILES = ("spk2utt", "spk2gender", "cmvn.scp")
_UTTERANCE_FILES = ("segments", "text", "feats.scp", "vad.scp")
# Files whose every value is one token, and what that token is.
ONE_TOKEN_FILES = {"utt2spk": "speaker", "utt2lang": "language"}


class Segment(NamedTuple):
    """One ``segments`` line: the utterance is ``recording[start:end]`` in seconds; ``end`` None = to the end."""

    recording: str
    start: float
    end: float | None


def key_kind(name: str) -> KeyKind | None:
    """What the ids of data-dir file ``name`` are, or None for files that are not id-keyed tables."""
    if name in _RECORDING_FILES or name.startswith("reco2"):
        return "recording"
    if name in _SPEAKER_FILES or name.startswith("spk2"):
        return "speaker"
    if name in _UTTERANCE_FILES or name.startswith("utt2") or name.startswith("text."):
        return "utterance"
    return None


def allows_empty_value(name: str) -> bool:
    """Whether lines of ``name`` may hold an id alone (transcripts and translations may be empty)."""
    return name in _FREE_TEXT or name.startswith("text.")


def table_files(path: str | os.PathLike) -> list[str]:
    """Names of the id-keyed tables present in data dir ``path`` (sorted; hidden and backup files excluded)."""
    path = Path(path)
    return sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and key_kind(p.name) and _present(p))


def _present(table: Path) -> bool:
    """Whether a table file is there. A symbolic link to a file that is gone (``utt2spk -> ../train/utt2spk``
    after ``train`` moved) is an error: taken for an absent table, it would drop the speakers without a word."""
    if table.is_symlink() and not table.exists():
        raise DataError(f"{table}: a broken symbolic link (to {os.readlink(table)})")
    return table.is_file()


def parse_segment(value: str, where: str) -> Segment:
    """Parse the value part of a ``segments`` line (``<recording> <start> <end>``); ``end`` -1 means the end."""
    fields = value.split()
    if len(fields) != 3:
        raise DataError(f"{where}: expected '<utt> <recording> <start> <end>', got {len(fields) + 1} fields")
    recording, start_text, end_text = fields
    start = parse_number(start_text, where, "start time")
    end = parse_number(end_text, where, "end time")
    if start < 0:
        raise DataError(f"{where}: start time {start_text} is negative")
    if end == -1:
        return Segment(recording, start, None)
    if end <= start:
        raise DataError(f"{where}: end time {end_text} is not after start time {start_text}")
    return Segment(recording, start, end)


def parse_number(text: str, where: str, what: str) -> float:
    """A finite float from a table field, or a DataError naming the place and the field."""
    try:
        value = parse_float(text)
    except ValueError:
        raise DataError(f"{where}: {what} '{text}' is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError(f"{where}: {what} '{text}' is not a finite number")
    return value


def format_number(value: float) -> str:
    """Shortest text for a time or duration, to the microsecond (``3.2``, not ``3.2000000000000002``)."""
    rounded = round(float(value), 6)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def format_value(value: object) -> str:
    """The text form of a table value: segments, lists (``spk2utt``), numbers and strings."""
    if isinstance(value, Segment):
        end = -1 if value.end is None else value.end
        return f"{value.recording} {format_number(value.start)} {format_number(end)}"
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(item) for item in value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert ``utt2spk``: speakers sorted, each speaker's utterances sorted."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return dict(sorted(spk2utt.items()))


def read_segments(path: str | os.PathLike) -> dict[str, Segment]:
    """Read a ``segments`` file; malformed lines and duplicate ids raise DataError naming file:line."""
    segments: dict[str, Segment] = {}
    for number, utt, value in _iter_unique(path):
        segments[utt] = parse_segment(value, f"{path}:{number}: id '{utt}'")
    return segments


def read_spk2utt(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``spk2utt`` (``<speaker> <utt> <utt> ...``)."""
    return {spk: value.split() for spk, value in read_table(path).items()}


def read_token_table(path: str | os.PathLike, what: str = "value") -> dict[str, str]:
    """Read a table whose values are one token each (``utt2spk``, ``utt2lang``): a second field would otherwise
    become part of the speaker or language (``spk1 extra``) and corrupt every table derived from it."""
    return {key: value for _, key, value in _iter_tokens(path, what)}


def read_durations(path: str | os.PathLike) -> dict[str, float]:
    """Read ``utt2dur``: every value must be one positive finite number (seconds)."""
    durations = {}
    for number, key, value in _iter_tokens(path, "number"):
        where = f"{path}:{number}: id '{key}'"
        durations[key] = parse_number(value, where, "value")
        if durations[key] <= 0:  # the batch samplers would take it as a batch slot of no audio
            raise DataError(f"{where}: duration {value} is not positive")
    return durations


def _iter_tokens(path: str | os.PathLike, what: str) -> Iterator[tuple[int, str, str]]:
    """:func:`_iter_unique` of a table whose values must be one field each."""
    for number, key, value in _iter_unique(path):
        if len(value.split()) != 1:
            raise DataError(f"{path}:{number}: id '{key}': expected one {what} after the id, got '{value}'")
        yield number, key, value


def _iter_unique(path: str | os.PathLike) -> Iterator[tuple[int, str, str]]:
    """``iter_table`` with the duplicate-id and missing-value checks of ``read_table``."""
    first_line: dict[str, int] = {}
    for number, key, value in iter_table(path):
        if key in first_line:
            raise DataError(f"{path}:{number}: duplicate id '{key}' (first seen on line {first_line[key]})")
        if not value:
            raise DataError(f"{path}:{number}: id '{key}' has no value")
        first_line[key] = number
        yield number, key, value


@dataclasses.dataclass
class DataDir:
    """The common tables of one data dir; any other table is read on demand with :meth:`table`."""

    path: Path
    utt_ids: list[str]
    wav_scp: dict[str, str]
    segments: dict[str, Segment] | None = None
    utt2spk: dict[str, str] | None = None
    spk2utt: dict[str, list[str]] | None = None
    text: dict[str, str] | None = None
    utt2lang: dict[str, str] | None = None
    utt2dur: dict[str, float] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, *, durations: bool = True) -> DataDir:
        """Read the data dir at ``path``; the other common tables are optional (``utt2dur`` is left unread without
        ``durations``).

        A speech data dir has ``wav.scp``; a text-only one (e.g. a retrieval gallery of sentences that a text
        teacher embeds) has ``text`` instead, and its ids come from there.
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: not a data directory")
        if not (path / "wav.scp").is_file() and not (path / "text").is_file():
            raise DataError(f"{path}/wav.scp: no such file (a data dir needs wav.scp, or text if it has no audio)")

        def optional(name: str, reader):
            return reader(path / name) if _present(path / name) else None

        wav_scp = optional("wav.scp", read_table) or {}
        segments = optional("segments", read_segments)
        text = optional("text", lambda p: read_table(p, allow_empty_value=True))
        ids = segments if segments is not None else wav_scp if (path / "wav.scp").is_file() else text
        return cls(
            path=path,
            utt_ids=sorted(ids),
            wav_scp=wav_scp,
            segments=segments,
            utt2spk=optional("utt2spk", lambda p: read_token_table(p, ONE_TOKEN_FILES["utt2spk"])),
            spk2utt=optional("spk2utt", read_spk2utt),
            text=text,
            utt2lang=optional("utt2lang", lambda p: read_token_table(p, ONE_TOKEN_FILES["utt2lang"])),
            utt2dur=optional("utt2dur", read_durations) if durations else None,
        )

    def require_utterances(self, task: str) -> None:
        """A DataError for a data dir without utterances: a stage would write a complete table of nothing."""
        if not self.utt_ids:
            has_audio = (self.path / "wav.scp").is_file()
            source = "segments" if self.segments is not None else "wav.scp" if has_audio else "text"
            raise DataError(f"{self.path}: no utterances (its {source} is empty): nothing to {task}")

    def require_audio(self) -> None:
        """A DataError for a data dir without audio (a text-only one: its ids come from ``text``)."""
        if not (self.path / "wav.scp").is_file():
            raise DataError(f"{self.path}: no wav.scp (a text-only data dir): its utterances have no audio")

    def locate(self, utt_id: str) -> tuple[str, float, float | None]:
        """``(wav.scp entry, start, end)`` of an utterance's audio (whole recording: ``0.0, None``)."""
        if self.segments is None:
            if utt_id not in self.wav_scp:
                self.require_audio()
                raise DataError(f"{self.path}/wav.scp: no utterance '{utt_id}'")
            return self.wav_scp[utt_id], 0.0, None
        segment = self.segments.get(utt_id)
        if segment is None:
            raise DataError(f"{self.path}/segments: no utterance '{utt_id}'")
        if segment.recording not in self.wav_scp:
            raise DataError(
                f"{self.path}/segments: utterance '{utt_id}' refers to recording '{segment.recording}', "
                f"which is not in wav.scp"
            )
        return self.wav_scp[segment.recording], segment.start, segment.end

    def inputs_digest(self, field: str | None = None, utt_ids: Sequence[str] | None = None) -> str:
        """SHA-256 of what vectors of the utterances (default: all) are made from: where each one's audio is
        (:meth:`locate`), or its value in the table ``field`` (a text or label teacher's input).

        Tables and checkpoints record it, so that data rebuilt under the same ids (audio pointed elsewhere,
        other text) is noticed. Audio rewritten in place under the same path is not: that would cost a
        ``stat`` of every recording at every check.
        """
        ids = self.utt_ids if utt_ids is None else utt_ids
        if field is None:
            return digest(f"{utt} {self.locate(utt)}".encode() for utt in ids)
        values = self.table(field)
        return digest(f"{utt} {values.get(utt, '')}".encode() for utt in ids)

    def has(self, name: str) -> bool:
        """Whether the file ``name`` (e.g. ``text.en``) exists in this data dir."""
        return (self.path / name).is_file()

    def table(self, name: str) -> dict[str, str]:
        """Any table of this data dir as ``{id: value}``; a missing file raises DataError naming it."""
        if not self.has(name):
            raise DataError(f"{self.path / name}: no such file in data dir {self.path}")
        return read_table(self.path / name, allow_empty_value=allows_empty_value(name))

    def save(self, path: str | os.PathLike) -> None:
        """Write the common tables to ``path`` (sorted, atomically); ``spk2utt`` is re-derived from ``utt2spk``."""
        write_data_dir(
            path,
            wav_scp=self.wav_scp,
            segments=self.segments,
            utt2spk=self.utt2spk,
            text=self.text,
            utt2lang=self.utt2lang,
            utt2dur=self.utt2dur,
        )


def digest(chunks: Iterable[bytes]) -> str:
    """SHA-256 of a sequence of byte strings, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(len(chunk).to_bytes(8, "little"))
        sha.update(chunk)
    return sha.hexdigest()


def file_name(keyword: str) -> str:
    """The file a :func:`write_data_dir` keyword names: ``wav_scp`` → ``wav.scp``, ``text_en`` → ``text.en``."""
    if keyword.endswith("_scp"):
        return keyword[: -len("_scp")] + ".scp"
    if keyword.startswith("text_"):
        return "text." + keyword[len("text_") :]
    return keyword


def write_data_dir(
    path: str | os.PathLike, tables: Mapping[str, Mapping[str, object]] | None = None, **named
) -> Path:
    """Write tables into data dir ``path``: ``tables`` by file name, ``named`` by keyword (see :func:`file_name`).

    Tables that are None are skipped; every file is sorted and written atomically. When ``utt2spk`` is written,
    ``spk2utt`` is derived from it (a ``spk2utt`` passed in is ignored, so the two can never disagree).
    """
    path = Path(path)
    everything = dict(tables or {})
    everything.update({file_name(keyword): table for keyword, table in named.items()})
    if everything.get("utt2spk") is not None:
        everything["spk2utt"] = utt2spk_to_spk2utt(everything["utt2spk"])
    for name, table in everything.items():
        if table is not None:
            write_table(path / name, {key: format_value(value) for key, value in table.items()})
    return path


def set_names(data_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """The set name of each data dir (its folder name), which names its output tables: they must differ."""
    names = [Path(data).name for data in data_dirs]
    if len(set(names)) != len(names):
        raise DataError(f"--data: two data dirs share a name: {' '.join(map(str, data_dirs))}")
    return names
