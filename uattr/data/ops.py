"""Data-dir operations (Kaldi's utils/ scripts, in Python): fix, subset, combine, split, durations.

Every operation works on all id-keyed tables of a dir, whatever their name (``text.en``, ``utt2gender``, ...),
by what their ids are (see :func:`uattr.data.kaldi.key_kind`): selecting utterances also selects their
recordings (through ``segments``) and speakers (through ``utt2spk``). ``spk2utt`` is always re-derived from
``utt2spk``. Values are copied as text, so nothing is reformatted on the way. Subset, combine and split write a
new dir that replaces an earlier one whole, once complete; fix rewrites its dir in place, each file atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from uattr.data.kaldi import (
    ONE_TOKEN_FILES,
    DataDir,
    allows_empty_value,
    format_number,
    key_kind,
    parse_segment,
    read_durations,
    read_segments,
    read_token_table,
    table_files,
    write_data_dir,
)
from uattr.errors import ConfigError, DataError
from uattr.fileio import atomic_dir, iter_table, read_table, require_replaceable

logger = logging.getLogger(__name__)

Tables = dict[str, dict[str, str]]

BACKUP_DIR = ".backup"


def read_tables(path: str | os.PathLike) -> Tables:
    """Every id-keyed table of data dir ``path``, strictly read (duplicate ids and missing values are errors)."""
    path = _data_dir(path)
    tables = {name: _read_strictly(path / name) for name in table_files(path)}
    if "spk2utt" in tables and "utt2spk" not in tables:  # spk2utt is re-derived from utt2spk: it would be lost
        raise DataError(f"{path}/utt2spk: no such file, but spk2utt exists; `uattr fix-data-dir {path}` writes it")
    if "utt2spk" in tables:  # every operation looks speakers up through it
        _check_covers(tables, "utt2spk", path)
    if "segments" in tables:  # values are copied as text: a malformed line would reach every output dir
        unknown = [(utt, segment.recording) for utt, segment in read_segments(path / "segments").items()
                   if segment.recording not in tables["wav.scp"]]
        if unknown:
            raise DataError(
                f"{path}/segments: {len(unknown)} utterance(s) of recordings not in wav.scp, e.g. '{unknown[0][0]}' "
                f"of '{unknown[0][1]}'; `uattr fix-data-dir {path}` keeps only the utterances that every file lists"
            )
    return tables


def _read_strictly(path: Path) -> dict[str, str]:
    if path.name in ONE_TOKEN_FILES:
        return read_token_table(path, ONE_TOKEN_FILES[path.name])
    return read_table(path, allow_empty_value=allows_empty_value(path.name))


def _check_segments(tables: Tables, path: str | os.PathLike) -> None:
    """A wrong time in ``segments`` (read leniently by :func:`fix_data_dir`) cannot be fixed automatically."""
    for utt, value in tables.get("segments", {}).items():
        parse_segment(value, f"{path}/segments: id '{utt}'")


def _check_covers(tables: Tables, name: str, path: str | os.PathLike) -> None:
    """A per-utterance table that operations look every utterance up in must have them all."""
    missing = [utt for utt in utterances_of(tables) if utt not in tables[name]]
    if missing:
        raise DataError(
            f"{path}/{name}: no entry for {len(missing)} utterance(s), e.g. '{missing[0]}'; "
            f"`uattr fix-data-dir {path}` keeps only the utterances that every file lists"
        )


def _data_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not (path / "wav.scp").is_file():
        raise DataError(f"{path}: not a data dir (no wav.scp)")
    return path


def utterances_of(tables: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The utterance ids of a dir: ``segments`` ids if present, else ``wav.scp`` ids (sorted)."""
    return sorted(tables["segments"] if "segments" in tables else tables["wav.scp"])


def select(tables: Mapping[str, Mapping[str, str]], utts: Iterable[str]) -> Tables:
    """The tables restricted to ``utts`` and to the recordings and speakers those utterances use."""
    return partition(tables, [utts])[0]


def partition(tables: Mapping[str, Mapping[str, str]], parts: Sequence[Iterable[str]]) -> list[Tables]:
    """:func:`select` of each part's utterances, in one pass over each table (one per part would make splitting
    N utterances into P parts cost N × P). A recording or speaker whose utterances fall into several parts is in
    each of them."""
    owners: dict[str, dict[str, list[int]]] = {"utterance": {}, "recording": {}, "speaker": {}}

    def own(kind: str, key: str, index: int) -> None:
        holders = owners[kind].setdefault(key, [])
        if not holders or holders[-1] != index:
            holders.append(index)

    for index, utts in enumerate(parts):
        for utt in utts:
            own("utterance", utt, index)
            own("recording", tables["segments"][utt].split()[0] if "segments" in tables else utt, index)
            if "utt2spk" in tables:
                own("speaker", tables["utt2spk"][utt], index)
    selected: list[Tables] = [{} for _ in parts]
    for name, table in tables.items():
        if name == "spk2utt":
            continue
        for part in selected:
            part[name] = {}
        holders_of = owners[key_kind(name)]
        for key, value in table.items():
            for index in holders_of.get(key, ()):
                selected[index][name][key] = value
    return selected


def write_tables(path: str | os.PathLike, tables: Mapping[str, Mapping[str, str]]) -> Path:
    """Write the tables into a data dir (``spk2utt`` derived from ``utt2spk``), each file atomically."""
    return write_data_dir(path, tables={name: table for name, table in tables.items() if name != "spk2utt"})


def write_new_data_dir(path: str | os.PathLike, tables: Mapping[str, Mapping[str, str]]) -> Path:
    """Write the tables as the whole data dir ``path``, swapped in only when complete.

    A data dir already at ``path`` is replaced, not written into: its other tables (an ``utt2dur``, a
    ``segments``) would describe other utterances, as Kaldi's combine_data.sh avoids by removing it first. Anything
    else at ``path`` (a file, a folder that is not a data dir) is refused rather than replaced.
    """
    require_replaceable(path, "wav.scp", "data dir")
    with atomic_dir(path) as staging:
        write_tables(staging, tables)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------- fix


@dataclasses.dataclass
class FixReport:
    """What :func:`fix_data_dir` did: utterances kept, and per file the utterances it lacked (why others went)."""

    kept: int
    total: int
    missing_from: dict[str, list[str]]
    duplicate_lines: dict[str, int]
    malformed_lines: dict[str, int]

    def describe(self) -> str:
        lines = [f"kept {self.kept} of {self.total} utterances"]
        for name, ids in sorted(self.missing_from.items()):
            examples = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
            lines.append(f"  {len(ids)} utterance(s) not in {name}, dropped: {examples}")
        for name, count in sorted(self.duplicate_lines.items()):
            lines.append(f"  {name}: removed {count} repeated line(s)")
        for name, count in sorted(self.malformed_lines.items()):
            lines.append(f"  {name}: removed {count} line(s) without a value (or with more than one)")
        return "\n".join(lines)


def fix_data_dir(path: str | os.PathLike) -> FixReport:
    """Make a data dir consistent in place, as Kaldi's fix_data_dir.sh does.

    Keeps the utterances present in every per-utterance file (and whose recording is in ``wav.scp``), the
    recordings and speakers they use; sorts every file; re-derives ``spk2utt``; drops repeated identical lines
    and lines without a value. Two lines with one id and different values cannot be fixed automatically and
    raise DataError. The original files are copied to ``DIR/.backup/`` first, unless an earlier fix left one
    there (re-running after an interruption must not back up half-fixed files over the originals; remove
    ``.backup`` to back up the current files). Fixing is idempotent, so a re-run completes an interrupted fix.
    """
    path = _data_dir(path)
    names = table_files(path)
    tables: Tables = {}
    duplicates: dict[str, int] = {}
    malformed: dict[str, int] = {}
    for name in names:
        if name == "spk2utt" and "utt2spk" in names:
            continue  # rebuilt from utt2spk, as Kaldi's fix_data_dir.sh does: its lines need not be fixable
        tables[name], duplicates[name], malformed[name] = _read_leniently(path / name)
    if "utt2spk" not in tables and "spk2utt" in tables:
        tables["utt2spk"] = _utt2spk_from_spk2utt(path / "spk2utt")
    _check_segments(tables, path)  # a wrong time cannot be fixed automatically

    utterance_tables = {
        name: table
        for name, table in tables.items()
        if key_kind(name) == "utterance" or (name == "wav.scp" and "segments" not in tables)
    }
    everyone = set().union(*utterance_tables.values())
    missing_from = {name: sorted(everyone - set(table)) for name, table in utterance_tables.items()}
    if "segments" in tables:
        missing_from["wav.scp"] = sorted(
            utt for utt, value in tables["segments"].items() if value.split()[0] not in tables["wav.scp"]
        )
    kept = everyone.difference(*missing_from.values())
    if not kept:  # as Kaldi's fix_data_dir.sh: emptying the dir would fix nothing
        lacking = "; ".join(f"{len(ids)} not in {name}, e.g. '{ids[0]}'" for name, ids in sorted(missing_from.items())
                            if ids)
        raise DataError(f"{path}: no utterance is in every file ({lacking}); nothing changed")

    backup = path / BACKUP_DIR
    if backup.is_dir():  # an earlier (perhaps interrupted) fix: its backup holds the files as they first were
        logger.info("%s: keeping the backup of an earlier fix", backup)
    else:
        with atomic_dir(backup) as staging:
            for name in names:
                shutil.copy2(path / name, staging / name)
    write_tables(path, select(tables, kept))
    report = FixReport(
        kept=len(kept),
        total=len(everyone),
        missing_from={name: ids for name, ids in missing_from.items() if ids},
        duplicate_lines={name: n for name, n in duplicates.items() if n},
        malformed_lines={name: n for name, n in malformed.items() if n},
    )
    logger.info("fixed %s: %s", path, report.describe())
    return report


def _utt2spk_from_spk2utt(path: Path) -> dict[str, str]:
    """utt2spk of a dir that has only spk2utt; an utterance listed under two speakers cannot be fixed."""
    utt2spk: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for number, speaker, utts in iter_table(path):
        for utt in utts.split():
            if utt2spk.get(utt, speaker) != speaker:
                raise DataError(f"{path}:{number}: utterance '{utt}' is listed under speaker '{speaker}' here and "
                                f"under '{utt2spk[utt]}' on line {line_of[utt]}; remove one by hand")
            utt2spk[utt], line_of[utt] = speaker, number
    return utt2spk


def _read_leniently(path: Path) -> tuple[dict[str, str], int, int]:
    """Read a table tolerating repeated identical lines and lines without a value, or with more than one where one
    token belongs (counted, not kept)."""
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    duplicates = malformed = 0
    needs_value = not allows_empty_value(path.name)
    one_token = path.name in ONE_TOKEN_FILES
    for number, key, value in iter_table(path):
        if (needs_value and not value) or (one_token and len(value.split()) > 1):
            malformed += 1
        elif key in table:
            if table[key] != value:
                raise DataError(
                    f"{path}:{number}: id '{key}' has a different value on line {first_line[key]}; "
                    f"fix_data_dir cannot choose between them, remove one by hand"
                )
            duplicates += 1
        else:
            table[key] = value
            first_line[key] = number
    return table, duplicates, malformed


# -------------------------------------------------------------------------------------------------------- subset


def subset_data_dir(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    utt_list: Iterable[str] | None = None,
    languages: Sequence[str] | None = None,
    per_language: int | None = None,
    per_speaker: int | None = None,
    first: int | None = None,
) -> list[str]:
    """Write the utterances of ``src`` that pass every given filter to ``dst``; returns them.

    Filters apply in this order: ids in ``utt_list``; language in ``languages``; the first ``per_language``
    utterances of each language; the first ``per_speaker`` of each speaker; the first ``first`` overall
    ("first" in sorted id order, so the result is deterministic).
    """
    for option, count in (("--per-lang", per_language), ("--per-spk", per_speaker), ("--first", first)):
        if count is not None and count < 1:
            raise DataError(f"subset: {option} must be at least 1, got {count}")
    _require_other_dir(dst, [src])
    tables = read_tables(src)
    utts = utterances_of(tables)
    if utt_list is not None:
        wanted = set(utt_list)
        unknown = sorted(wanted.difference(utts))
        if unknown:
            logger.warning("%d listed id(s) are not utterances of %s, e.g. '%s'", len(unknown), src, unknown[0])
        utts = [utt for utt in utts if utt in wanted]
    if languages is not None:
        utt2lang = _required(tables, "utt2lang", src, "--langs")
        known = set(utt2lang.values())
        absent = [lang for lang in languages if lang not in known]
        if absent:
            raise DataError(
                f"{src}/utt2lang: no utterance in language '{absent[0]}'; languages: {' '.join(sorted(known))}"
            )
        wanted_languages = set(languages)
        utts = [utt for utt in utts if utt2lang[utt] in wanted_languages]
    if per_language is not None:
        utts = _first_per_group(utts, _required(tables, "utt2lang", src, "--per-lang"), per_language)
    if per_speaker is not None:
        utts = _first_per_group(utts, _required(tables, "utt2spk", src, "--per-spk"), per_speaker)
    if first is not None:
        utts = utts[:first]
    if not utts:
        raise DataError(f"{src}: the subset is empty; nothing written to {dst}")
    write_new_data_dir(dst, select(tables, utts))
    logger.info("wrote %d of %d utterances of %s to %s", len(utts), len(utterances_of(tables)), src, dst)
    return utts


def _require_other_dir(dst: str | os.PathLike, srcs: Sequence[str | os.PathLike]) -> None:
    """The output replaces ``dst`` whole: it must not be one of the inputs."""
    for src in srcs:
        if Path(dst).resolve() == Path(src).resolve():
            raise DataError(f"{dst}: the output dir is also an input; write to another dir")


def _required(tables: Tables, name: str, src: str | os.PathLike, option: str) -> dict[str, str]:
    if name not in tables:
        raise DataError(f"{src}/{name}: no such file, needed by {option}")
    _check_covers(tables, name, src)
    return tables[name]


def _first_per_group(utts: list[str], utt2group: Mapping[str, str], limit: int) -> list[str]:
    counts: dict[str, int] = {}
    chosen = []
    for utt in utts:
        group = utt2group[utt]
        if counts.get(group, 0) < limit:
            counts[group] = counts.get(group, 0) + 1
            chosen.append(utt)
    return chosen


# ------------------------------------------------------------------------------------------------------- combine


def combine_data_dirs(dst: str | os.PathLike, srcs: Sequence[str | os.PathLike]) -> Path:
    """Write the union of ``srcs`` to ``dst``; an utterance id in two sources is an error.

    Recording and speaker tables may repeat an id with the same value (two subsets of one corpus share
    recordings), not with a different one. Entries of utterances, recordings or speakers that no combined
    utterance uses are left out, with a warning. A file missing from some sources is left out, with a warning; when
    only some sources have ``segments``, the others get whole-recording segments (``utt utt 0 -1``), as Kaldi's
    combine_data.sh does.
    """
    if not srcs:
        raise DataError("combine: no source data dirs given")
    _require_other_dir(dst, srcs)
    sources = [(Path(src), read_tables(src)) for src in srcs]
    if any("segments" in tables for _, tables in sources):
        for _, tables in sources:
            tables.setdefault("segments", {utt: f"{utt} 0 -1" for utt in tables["wav.scp"]})
    names = sorted(set().union(*(tables for _, tables in sources)) - {"spk2utt"})
    # Without segments, wav.scp's ids are the utterances: one in two sources is an utterance listed twice.
    utterance_keyed = {name for name in names if key_kind(name) == "utterance"}
    if "segments" not in names:
        utterance_keyed.add("wav.scp")
    combined: Tables = {}
    for name in names:
        lacking = [str(src) for src, tables in sources if name not in tables]
        if lacking:
            logger.warning("not combining %s: missing from %s", name, ", ".join(lacking))
            continue
        merged: dict[str, str] = {}
        origin: dict[str, Path] = {}
        for src, tables in sources:
            for key, value in tables[name].items():
                if key in merged and name in utterance_keyed:
                    raise DataError(
                        f"{src}/{name}: utterance '{key}' is also in {origin[key]}/{name}; "
                        f"utterance ids must be unique across the combined dirs"
                    )
                if key in merged and merged[key] != value:
                    raise DataError(f"{src}/{name}: id '{key}' is also in {origin[key]}/{name}, with another value")
                merged[key] = value
                origin[key] = src
        combined[name] = merged
    # As Kaldi's combine_data.sh ends with fix_data_dir.sh: a source table's entries of utterances it does not
    # have (a utt2spk line whose wav.scp line was removed) would make the combined dir fail validation.
    used = select(combined, utterances_of(combined))
    unused = {name: len(combined[name]) - len(used[name]) for name in used if len(used[name]) < len(combined[name])}
    if unused:
        logger.warning("not combining the entries of ids that no combined utterance uses: %s",
                       ", ".join(f"{count} of {name}" for name, count in sorted(unused.items())))
    write_new_data_dir(dst, used)
    logger.info("combined %d data dirs into %s (%d utterances)", len(srcs), dst, len(utterances_of(combined)))
    return Path(dst)


# --------------------------------------------------------------------------------------------------------- split


def split_dir_name(num_parts: int, per_utterance: bool) -> str:
    """Kaldi's name for the split folder: ``split4`` (by speaker) or ``split4utt`` (by utterance)."""
    return f"split{num_parts}{'utt' if per_utterance else ''}"


def split_data_dir(src: str | os.PathLike, num_parts: int, *, per_utterance: bool = False) -> list[Path]:
    """Split ``src`` into ``src/split{N}[utt]/{1..N}/`` for N parallel jobs; returns the part dirs.

    By speaker (the default) every speaker's utterances stay in one part, as per-speaker processing needs; parts
    are contiguous runs of speakers (or utterances) balanced by number of utterances.
    """
    if num_parts < 1:
        raise DataError(f"split: the number of parts must be at least 1, got {num_parts}")
    src = Path(src)
    tables = read_tables(src)
    utts = utterances_of(tables)
    if per_utterance:
        groups = [[utt] for utt in utts]
    else:
        utt2spk = _required(tables, "utt2spk", src, "a split by speaker (use --per-utt)")
        by_speaker: dict[str, list[str]] = {}
        for utt in utts:
            by_speaker.setdefault(utt2spk[utt], []).append(utt)
        groups = [by_speaker[speaker] for speaker in sorted(by_speaker)]
    if num_parts > len(groups):
        unit = "utterances" if per_utterance else "speakers"
        raise DataError(f"{src}: cannot split {len(groups)} {unit} into {num_parts} parts")
    runs = _balanced_runs([len(group) for group in groups], num_parts)
    contents = partition(tables, [[utt for group in groups[begin:end] for utt in group] for begin, end in runs])
    parts = []
    for index, content in enumerate(contents, start=1):
        part = src / split_dir_name(num_parts, per_utterance) / str(index)
        write_new_data_dir(part, content)
        parts.append(part)
    logger.info("split %s into %d parts under %s", src, num_parts, parts[0].parent)
    return parts


def _balanced_runs(sizes: Sequence[int], num_parts: int) -> list[tuple[int, int]]:
    """Cut ``sizes`` into ``num_parts`` non-empty contiguous runs whose sums are close to equal (ties: earlier)."""
    total = sum(sizes)
    runs = []
    begin = 0
    done = 0
    for part in range(1, num_parts + 1):
        end = begin + 1
        done += sizes[begin]
        target = total * part / num_parts
        must_leave = num_parts - part  # one group for each later part
        while end < len(sizes) - must_leave and (
            part == num_parts or abs(done + sizes[end] - target) <= abs(done - target)
        ):
            done += sizes[end]
            end += 1
        runs.append((begin, end))
        begin = end
    return runs


# ----------------------------------------------------------------------------------------------------- durations


def compute_durations(path: str | os.PathLike, *, force: bool = False, num_threads: int = 8) -> dict[str, float]:
    """Write ``utt2dur`` (seconds) and ``utt2num_samples`` (at the audio's own rate) from the audio headers.

    Plain files are only opened for their header; archive and pipe entries must be decoded. When both files
    exist and list exactly the dir's utterances, nothing is recomputed unless ``force``.
    """
    from uattr.data.audio import AudioSource

    if num_threads < 1:
        raise ConfigError(f"compute-durations: the number of threads must be at least 1, got {num_threads}")
    path = _data_dir(path)
    # Without utt2dur: it is this tool's output, which --force must be able to replace when it is broken.
    source = AudioSource(DataDir.load(path, durations=False))
    if not force and _covers(path / "utt2dur", source.ids) and _covers(path / "utt2num_samples", source.ids):
        logger.info("%s/utt2dur and utt2num_samples are complete; skipping (--force recomputes)", path)
        return read_durations(path / "utt2dur")
    measured = source.measure_all(num_threads)
    write_data_dir(
        path,
        utt2dur={utt: format_number(duration) for utt, (duration, _) in measured.items()},
        utt2num_samples={utt: samples for utt, (_, samples) in measured.items()},
    )
    durations = {utt: duration for utt, (duration, _) in measured.items()}
    logger.info("wrote %s/utt2dur: %d utterances, %.2f hours", path, len(durations), sum(durations.values()) / 3600)
    return durations


def _covers(path: Path, ids: Sequence[str]) -> bool:
    """Whether the numeric table ``path`` holds exactly ``ids`` (a malformed one does not: it is recomputed)."""
    try:
        return path.is_file() and sorted(read_durations(path)) == sorted(ids)
    except DataError:
        return False
