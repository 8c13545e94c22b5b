"""Small, strict text-table (and JSON) I/O shared by every stage.

Kaldi-style tables are ``<id> <value...>`` lines. Every reader reports problems as ``file:line``, and every
writer goes through :func:`atomic_write`, so an interrupted stage never leaves a complete-looking half file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from uattr.errors import DataError

PathLike = str | os.PathLike
# UTF-8 that drops a byte-order mark at the start of the text (and only there).
_UTF8_MAYBE_BOM = "utf-8-sig"


@functools.cache
def _umask() -> int:
    """The process umask (read once: setting it to read it back is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(path: PathLike, directory: bool = False) -> None:
    """Give a temporary file (folder) the permissions of a new one under the umask: mkstemp and mkdtemp make them
    private (0600, 0700), which would hide every output from the other users of a shared cluster."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` for a writer that takes a file name; renamed over ``path`` only if the
    block succeeds, once its data is on disk."""
    path = Path(path)
    if path.is_dir():  # else the rename at the end fails, naming the temporary file
        raise DataError(f"{path}: is a directory; give the output a file name")
    _make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        _publish(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise DataError(f"{path}: cannot make its folder, {error.filename} is a file") from None


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it over ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
        yield handle


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to fill; it replaces ``path`` (whole) only if the block succeeds."""
    path = Path(path)
    _make_parent(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        yield staging
        _publish(staging, directory=True)
        try:
            if path.exists():  # moved aside, not deleted first, so that a failed swap loses nothing
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.replace(path, old / path.name)
            os.replace(staging, path)
        except BaseException:  # the new folder did not go in (an error, Ctrl-C): the earlier one goes back
            if old is not None and (old / path.name).exists() and not path.exists():
                os.replace(old / path.name, path)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old)


def require_replaceable(path: PathLike, marker: str, what: str) -> None:
    """An output that replaces the folder ``path`` whole (:func:`atomic_dir`) may replace an earlier one of its
    kind (which holds ``marker``) or an empty folder, nothing else: a mistyped output path must not delete data."""
    path = Path(path)
    if path.exists() and not (path.is_dir() and ((path / marker).is_file() or not any(path.iterdir()))):
        raise DataError(f"{path}: exists and is not a {what} (no {marker}); refusing to replace it")


def looks_local(source: str) -> bool:
    """A model given as a local folder (existing, or written as a path) rather than a hub id such as
    ``facebook/w2v-bert-2.0``, which libraries would fetch (or report as an invalid repo id)."""
    return Path(source).expanduser().exists() or source.startswith(("/", ".", "~")) or source.count("/") > 1


def read_text(path: PathLike, what: str = "file") -> str:
    """The whole text of an input file; a missing file or one that is not UTF-8 is a DataError naming it (and the
    line of the first bad byte)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error}") from error
    try:
        return data.decode(_UTF8_MAYBE_BOM)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x}); convert it to UTF-8"
        ) from error


def iter_lines(path: PathLike, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file, line ends kept; a missing file or a line that is not
    UTF-8 is a DataError naming the file (and the line). A byte-order mark at the start (as spreadsheet tools and
    some editors save) is no part of the text: it would stick to the first id, column name or transcript."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    with open(path, "rb") as handle:  # decoded line by line, so an encoding error can name its line
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(_UTF8_MAYBE_BOM if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: {describe_bad_utf8(raw, error)}; convert it to UTF-8") from error
            yield number, line


def describe_bad_utf8(line: bytes, error: UnicodeDecodeError) -> str:
    """``not UTF-8 text (byte 0xe9 at column 7)`` for a line that failed to decode (readers and the validator)."""
    return f"not UTF-8 text (byte {line[error.start]:#04x} at column {error.start + 1})"


def iter_table(path: PathLike) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line_number, id, rest)`` of a Kaldi table, skipping blank lines.

    ``rest`` is the remainder of the line after the first run of whitespace (possibly empty).
    """
    for number, line in iter_lines(path):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        yield number, parts[0], parts[1] if len(parts) > 1 else ""


def iter_fields(path: PathLike, what: str = "file") -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(line_number, stripped_line, fields)`` of each non-blank line of a list whose every field counts
    (trials, scores); a missing file is a DataError "no such <what>". The line is for messages."""
    for number, line in iter_lines(path, what):
        fields = line.split()
        if fields:
            yield number, line.strip(), fields


# A number as tools write them: ASCII digits, optional sign, point and exponent; or nan/inf, which the callers
# report as not finite. Python's float() and int() also take "1_0" and non-ASCII digits, corruption in a table.
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]+")


def parse_float(text: str) -> float:
    """``float(text)`` for plain decimal text only; anything else is a ValueError."""
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"not a plain decimal number: {text!r}")
    return float(text)


def parse_int(text: str) -> int:
    """``int(text)`` for plain ASCII digits (with a sign) only; anything else is a ValueError."""
    if not _INT.fullmatch(text):
        raise ValueError(f"not a plain integer: {text!r}")
    return int(text)


def read_table(path: PathLike, *, allow_empty_value: bool = False) -> dict[str, str]:
    """Read ``<id> <value>`` lines into an ordered dict; duplicate ids and missing values are errors."""
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, key, value in iter_table(path):
        if key in table:
            raise DataError(f"{path}:{number}: duplicate id '{key}' (first seen on line {first_line[key]})")
        if not value and not allow_empty_value:
            raise DataError(f"{path}:{number}: id '{key}' has no value")
        table[key] = value
        first_line[key] = number
    return table


def read_json(path: PathLike) -> Any:
    """Parse a JSON file given as input (metrics, metadata, layer weights): a missing, unreadable or malformed file
    is a DataError naming it, and the line and column of a syntax error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: invalid JSON: {error.msg} (column {error.colno})") from error


def write_table(path: PathLike, table: Mapping[str, object], *, sort: bool = True) -> None:
    """Write ``<id> <value>`` lines atomically (sorted by id unless told otherwise)."""
    keys = sorted(table) if sort else list(table)
    with atomic_write(path) as handle:
        for key in keys:
            value = table[key]
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            handle.write(f"{key} {value}\n" if str(value) != "" else f"{key}\n")
