"""What preparing any public corpus release shares: its list files, ids, retrieval maps and a final check.

Each corpus module (commonvoice, voxceleb, fleurs, mtedx, voxpopuli) reads the lists a public release ships,
in the layout the release (or its official preparation script) leaves on disk, and writes Kaldi data dirs.
Problems in those lists raise :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Mapping, Sequence

from uattr.data.validate import validate_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike, atomic_write, iter_lines, write_table

_WHITESPACE = re.compile(r"\s+")
# Problems quoted in the error of check_data_dir (the full list comes from `uattr validate-data-dir`).
_SHOWN_PROBLEMS = 5


@dataclasses.dataclass(frozen=True)
class Row:
    """One data line of a list file: its line number (for messages) and its fields by column name."""

    line: int
    fields: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.fields[column]


def iter_tsv(
    path: PathLike, *, required: Sequence[str] = (), columns: Sequence[str] | None = None
) -> Iterator[Row]:
    """Rows of a tab-separated list, one at a time (Common Voice's lists hold millions of rows).

    The first line is the header unless ``columns`` names the columns. Quotes are ordinary characters (no CSV
    quoting): Common Voice and FLEURS sentences contain unbalanced ones. Blank lines are skipped. A missing
    ``required`` column, a row with the wrong number of fields or bytes that are not UTF-8 raise DataError naming
    file:line.
    """
    rows = ((number, line.rstrip("\r\n").split("\t")) for number, line in iter_lines(path))
    names = list(columns) if columns is not None else next(rows, (1, []))[1]
    missing = [name for name in required if name not in names]
    if missing:
        raise DataError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header has: {', '.join(names) or '(nothing)'}"
        )
    for number, fields in rows:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(names):
            raise DataError(
                f"{path}:{number}: expected {len(names)} tab-separated fields ({', '.join(names)}), "
                f"got {len(fields)}"
            )
        yield Row(number, dict(zip(names, fields)))


def read_tsv(path: PathLike, *, required: Sequence[str] = (), columns: Sequence[str] | None = None) -> list[Row]:
    """All rows of :func:`iter_tsv`."""
    return list(iter_tsv(path, required=required, columns=columns))


def require_file(path: PathLike, layout: str) -> Path:
    """``path`` if it is a file; otherwise a DataError that says where the public release puts it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (expected as the public release lays it out: {layout})")
    return path


def make_id(*parts: str) -> str:
    """An id from ``parts`` joined by '-', with any whitespace inside a part turned into '_'."""
    cleaned = [_WHITESPACE.sub("_", part.strip()) for part in parts]
    if not all(cleaned):
        raise DataError(f"cannot make an id from {parts!r}: a part is empty")
    return "-".join(cleaned)


def parse_pair(pair: str) -> tuple[str, str]:
    """A language pair ``it-en`` → ``("it", "en")``."""
    parts = pair.split("-")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"language pair '{pair}' must look like <src>-<tgt>, e.g. it-en")
    return parts[0], parts[1]


def absolute(path: PathLike) -> str:
    """An absolute path for wav.scp (recipes run from their own folder; symlinks are kept as the user made them)."""
    return os.path.abspath(path)


def clean_text(text: str) -> str:
    """A transcript on one line with single spaces (Kaldi ``text`` values are whitespace-separated)."""
    return _WHITESPACE.sub(" ", text).strip()


def relevant_by_text(texts: Mapping[str, Hashable]) -> dict[str, list[str]]:
    """Each id → every id with the same text (itself included), sorted; a text may be a tuple (language, text).

    For speech→text retrieval whose gallery is the texts of the queries themselves: identical sentences
    ("Thank you.") are equally right answers, so all of them are relevant.
    """
    groups: dict[Hashable, list[str]] = {}
    for key in sorted(texts):
        groups.setdefault(texts[key], []).append(key)
    return {key: groups[texts[key]] for key in sorted(texts)}


def write_query2ref(path: PathLike, query2ref: Mapping[str, Sequence[str]]) -> None:
    """``<query> <relevant gallery id> ...`` lines (sorted by query), the map `uattr score-retrieval` reads."""
    empty = [query for query, refs in query2ref.items() if not refs]
    if empty:
        raise DataError(f"{path}: query '{empty[0]}' has no relevant gallery item ({len(empty)} such queries)")
    write_table(path, {query: sorted(refs) for query, refs in query2ref.items()})


@dataclasses.dataclass(frozen=True)
class RetrievalTask:
    """One line of the recipe's retrieval task list (see egs/TEMPLATE/uattr1/uattr.sh, stage 5).

    ``gallery_kind`` "teacher": the gallery is the teacher's embeddings of ``gallery_set`` (e.g. its texts);
    "speech": the scored system's own embeddings of ``gallery_set``.
    """

    name: str
    attr: str
    query_set: str
    gallery_kind: str
    gallery_set: str
    query2ref: str

    def line(self) -> str:
        return " ".join(dataclasses.astuple(self))


def write_retrieval_tasks(path: PathLike, tasks: Iterable[RetrievalTask]) -> None:
    """Write the task list (one task per line, after a header comment naming the fields)."""
    with atomic_write(path) as handle:
        handle.write("# <name> <attr> <query_set> <teacher|speech> <gallery_set> <query2ref>\n")
        handle.writelines(task.line() + "\n" for task in tasks)


def prepare_pair_splits(
    out: PathLike, pairs: Sequence[str], splits: Sequence[str],
    prepare_split: Callable[[Path, str, str, str], RetrievalTask],
) -> list[RetrievalTask]:
    """Run ``prepare_split(out, src, tgt, split)`` for every language pair (``it-en``) and split, pair by pair,
    then write ``out/retrieval_tasks`` with the task each returned: the frame of the corpora released per pair."""
    out = Path(out)
    tasks = []
    for pair in pairs:
        src, tgt = parse_pair(pair)
        tasks.extend(prepare_split(out, src, tgt, split) for split in splits)
    write_retrieval_tasks(out / "retrieval_tasks", tasks)
    return tasks


def check_data_dir(path: PathLike) -> None:
    """Structural validation of a freshly written data dir (audio headers are checked by recipe stage 1)."""
    report = validate_data_dir(path, check_audio=False)
    if not report.ok:
        shown = "\n  ".join(str(problem) for problem in report.problems[:_SHOWN_PROBLEMS])
        raise DataError(f"{path}: the prepared data dir has {len(report.problems)} problem(s):\n  {shown}")
