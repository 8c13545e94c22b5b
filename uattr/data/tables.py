"""Embedding tables: kaldiio ``emb.ark`` + ``emb.scp`` (one float32 vector per utterance) plus ``meta.json``.

Teachers write them, the dataset reads teacher targets from them, extraction writes the student's, scoring
reads both. Paths inside ``emb.scp`` are written as given to the writer (Kaldi convention: relative paths are
relative to the directory the recipe runs in).

On-disk protocol of :class:`EmbeddingTableWriter` (``<dir>`` = the table directory)::

    <dir>/meta.json.part   the metadata the writing started with (a resume with other metadata is refused)
    <dir>/emb.ark          vectors, appended batch by batch (kaldiio.save_ark on a file opened for append)
    <dir>/emb.scp.part     "<id> <ark>:<offset>" lines of every vector in emb.ark, appended after the batch's
                           ark bytes are flushed to disk, so every line there points at complete data
    <dir>/emb.scp          final, sorted by id  ┐ written atomically by close(), meta.json last;
    <dir>/meta.json        final metadata       ┘ a table is complete exactly when both exist

A writer opened on a directory holding ``*.part`` files resumes: it keeps the complete scp lines (its
``done_ids``), cuts ``emb.ark`` back to the end of the last recorded vector (dropping bytes of an interrupted
batch) and appends from there. :func:`merge_tables` joins the tables of N split jobs into one ``emb.scp``
pointing at the jobs' arks (keep the split directories). Writers of tables call :func:`keep_current_table`
first: a complete table of other utterances than its data dir now holds is removed and written again, and so is
a complete or partial one made from other inputs (its ``made_by`` metadata, e.g. ``inputs_sha256``), so that no
resume mixes two versions of the data.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import kaldiio
import numpy as np

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, atomic_write, iter_table, read_json

logger = logging.getLogger(__name__)

ARK_NAME = "emb.ark"
SCP_NAME = "emb.scp"
META_NAME = "meta.json"
PART_SCP_NAME = "emb.scp.part"
PART_META_NAME = "meta.json.part"

# The metadata key that counts a table's vectors: it differs between split jobs, so merging sums it.
_COUNT_KEY = "num_utterances"
_PROVENANCE_KEY = "provenance"  # the writer's keys that say where inputs were found, not what the vectors are


def table_is_complete(table_dir: PathLike) -> bool:
    """True once :meth:`EmbeddingTableWriter.close` (or :func:`merge_tables`) has finished ``table_dir``."""
    table_dir = Path(table_dir)
    return (table_dir / SCP_NAME).is_file() and (table_dir / META_NAME).is_file()


# What a change of one of these metadata keys means, for the warning that a table is written again.
_CHANGE_MEANS = {
    "inputs_sha256": "another version of the data dir: utterances, audio entries or texts",
    "model_files_sha256": "the model folder's files were added, removed or rewritten",
}


def keep_current_table(
    table_dir: PathLike,
    utt_ids: Iterable[str],
    made_by: Mapping[str, Any] | None = None,
    merged_dir: PathLike | None = None,
) -> bool:
    """Keep a complete table of exactly ``utt_ids`` (True: nothing to write); remove one of other utterances.

    A complete table of other utterances was written for an earlier version of its data (e.g. a corpus rebuilt
    with other options): it is removed, with a warning, so that the caller writes it again rather than leaving
    stale vectors that look complete. With ``made_by`` (metadata such as the digest of the model's weights or
    of the data dir's inputs), a table, complete or partial, whose metadata differs on those keys was made by
    something else (a model retrained into the same folder, audio pointed elsewhere under the same ids): it is
    removed too, so no resume mixes the vectors of two models or two versions of the data.

    ``merged_dir``: for a split job's table, the merged table that points into it. Whenever the job's table is
    not kept (it is about to be written), the merged table stops being complete first, before anything of the
    job's is removed: else it would look complete while naming an ark that is gone or being rewritten.
    """
    table_dir = Path(table_dir)
    complete = table_is_complete(table_dir)
    stale = _stale_reason(table_dir, complete, utt_ids, made_by or {})
    if complete and stale is None:
        return True
    if merged_dir is not None:
        # It points into the arks the job rewrites; a table one unsplit job wrote there has an ark of its own,
        # which nothing would read again. Either goes until merge_split joins the jobs.
        _remove_table(Path(merged_dir))
    if stale is not None:
        logger.warning("%s: %s; writing it again", table_dir, stale)
        _remove_table(table_dir)
    return False


def _stale_reason(
    table_dir: Path, complete: bool, utt_ids: Iterable[str], made_by: Mapping[str, Any]
) -> str | None:
    """Why the table (complete or partial) must be written again, or None."""
    if complete:
        held = set(table_ids(table_dir))
        wanted = set(utt_ids)
        if held != wanted:
            missing, extra = sorted(wanted - held), sorted(held - wanted)
            return (f"written for other utterances ({len(missing)} missing, {len(extra)} no longer wanted; e.g. "
                    + ", ".join(f"'{key}'" for key in (missing[:1] + extra[:1])) + ")")
    differing = _differing_metadata(table_dir, made_by)
    if len(differing) > 1 and "inputs_sha256" in differing:
        differing.remove("inputs_sha256")  # follows from the other change (e.g. another input field)
    if not differing:
        return None
    reason = ", ".join(differing)
    if len(differing) == 1 and differing[0] in _CHANGE_MEANS:
        reason += f" ({_CHANGE_MEANS[differing[0]]})"
    return f"made with other {reason}"


def _differing_metadata(table_dir: Path, made_by: Mapping[str, Any]) -> list[str]:
    """The keys of ``made_by`` on which the metadata of the table (or of its partial table) differs."""
    if not made_by:
        return []
    for name in (META_NAME, PART_META_NAME):
        if (table_dir / name).is_file():
            meta = read_json(table_dir / name)
            return sorted(key for key, value in _plain_json(made_by).items() if meta.get(key) != value)
    return []


def _remove_table(table_dir: Path) -> None:
    # meta.json first: from then on the table is not complete. The part files go too: close() drops them only
    # after meta.json is written, and a writer would otherwise resume from them into an ark that is gone.
    for name in (META_NAME, SCP_NAME, ARK_NAME, PART_META_NAME, PART_SCP_NAME):
        (table_dir / name).unlink(missing_ok=True)



def table_ids(table_dir: PathLike) -> list[str]:
    """The utterance ids of a complete table, in its ``emb.scp`` order."""
    return [key for _, key, _ in _read_scp_lines(Path(table_dir) / SCP_NAME)]


def read_embedding_table(scp: PathLike) -> dict[str, np.ndarray]:
    """Load every vector of an ``emb.scp`` into memory, checking ids, shapes and values.

    Raises DataError naming ``file:line`` for a missing file, a malformed or duplicate line, an unreadable
    ark entry, a vector of another dimension, or NaN/inf values (named with the utterance id).
    """
    scp = Path(scp)
    table: dict[str, np.ndarray] = {}
    first_dim: tuple[str, int] | None = None
    # Lines are parsed here (not by kaldiio.load_scp) so every error can name its line; kaldiio.load_mat is
    # what load_scp's lazy loader calls for each entry.
    for number, key, location in _read_scp_lines(scp):
        where = f"{scp}:{number}"
        try:
            vector = np.asarray(kaldiio.load_mat(location), dtype=np.float32)
        except Exception as error:  # kaldiio raises OSError, ValueError, AssertionError, ... on a bad entry
            reason = str(error) or type(error).__name__
            if isinstance(error, AssertionError) and not str(error):  # kaldiio's check of the bytes at the offset
                reason += " (past the end of the ark, or not a Kaldi matrix there)"
            raise DataError(f"{where}: cannot read the embedding of '{key}' from {location}: {reason}") from error
        if vector.ndim != 1 or vector.size == 0:
            raise DataError(f"{where}: the entry of '{key}' is not a non-empty vector (shape {vector.shape})")
        if first_dim is None:
            first_dim = (key, vector.shape[0])
        elif vector.shape[0] != first_dim[1]:
            raise DataError(
                f"{where}: the embedding of '{key}' has dimension {vector.shape[0]}, "
                f"but '{first_dim[0]}' has {first_dim[1]}"
            )
        if not np.isfinite(vector).all():
            raise DataError(f"{where}: the embedding of '{key}' has NaN or infinite values")
        table[key] = vector
    return table


def read_table_meta(table_dir: PathLike) -> dict[str, Any]:
    """Read a table's ``meta.json``; ``table_dir`` may also be the ``meta.json`` file itself."""
    path = Path(table_dir)
    if path.is_dir() or path.name != META_NAME:
        path = path / META_NAME
    if not path.is_file():
        raise DataError(f"{path}: no such file (is the table complete?)")
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


class EmbeddingTableWriter:
    """Resumable writer of one embedding table (see the module docstring for the on-disk protocol).

    ``meta`` describes how the vectors are made (teacher, model, input field, ...); ``close()`` adds ``dim``
    and ``num_utterances``. ``done_ids`` are the utterances already on disk: callers skip them.
    """

    def __init__(self, out_dir: PathLike, *, meta: Mapping[str, Any], provenance: Sequence[str] = ("data",)) -> None:
        self.out_dir = Path(out_dir)
        # Keys that say where the inputs were found, not what the vectors are: a resume may differ on them (the
        # data dir given as 'data/dev/' or as an absolute path), and the new run's values are recorded.
        self.provenance = frozenset(provenance)
        self.ark_path = self.out_dir / ARK_NAME
        self._part_scp = self.out_dir / PART_SCP_NAME
        self._part_meta = self.out_dir / PART_META_NAME
        self.meta = _plain_json({**meta, _PROVENANCE_KEY: sorted(self.provenance)})  # merge_tables reads it too
        if table_is_complete(self.out_dir):
            raise DataError(f"{self.out_dir}: the table is already complete; remove it to write it again")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._offsets: dict[str, int] = {}
        self._dim: int | None = self.meta.get("dim")
        if self._part_meta.is_file():
            self._resume()
        else:
            self._start()

    @property
    def done_ids(self) -> frozenset[str]:
        """Utterances whose vectors are safely on disk."""
        return frozenset(self._offsets)

    def write(self, ids: str | Sequence[str], vectors: np.ndarray | Sequence[np.ndarray]) -> None:
        """Append one batch (ids + ``[B, dim]``) or one utterance (an id + its vector).

        The vectors are on disk (and in ``done_ids``) when this returns.
        """
        if isinstance(ids, str):
            ids, vectors = [ids], [vectors]
        ids = list(ids)
        vectors = np.asarray(vectors, dtype=np.float32)
        self._check_batch(ids, vectors)
        scp_buffer = io.StringIO()
        # save_ark reports where each vector starts by writing scp lines; they go to the part file only after
        # the ark bytes are flushed, so a line there never points at data an interruption could have lost.
        with open(self.ark_path, "ab") as ark:
            kaldiio.save_ark(ark, dict(zip(ids, vectors)), scp=scp_buffer)
            ark.flush()
            os.fsync(ark.fileno())
        with open(self._part_scp, "a", encoding="utf-8") as part:
            part.write(scp_buffer.getvalue())
            part.flush()
            os.fsync(part.fileno())
        for line in scp_buffer.getvalue().splitlines():
            key, offset = _split_scp_line(line)
            self._offsets[key] = offset

    def close(self) -> None:
        """Write the final sorted ``emb.scp`` and ``meta.json`` (atomically, meta last) and drop the part files."""
        with atomic_write(self.out_dir / SCP_NAME) as handle:
            for key in sorted(self._offsets):
                handle.write(f"{key} {self.ark_path}:{self._offsets[key]}\n")
        final_meta = {**self.meta, "dim": self._dim, _COUNT_KEY: len(self._offsets)}
        _write_json(self.out_dir / META_NAME, final_meta)
        self._part_scp.unlink()
        self._part_meta.unlink()

    def __enter__(self) -> "EmbeddingTableWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # On an error the part files stay behind for a later resume; nothing is held open between batches.
        if exc_type is None:
            self.close()

    def _start(self) -> None:
        """Fresh table: leftovers of a run that died before its first batch are cleared."""
        with contextlib.suppress(FileNotFoundError):
            self.ark_path.unlink()
        self._part_scp.write_text("", encoding="utf-8")
        _write_json(self._part_meta, self.meta)

    def _resume(self) -> None:
        """Pick up an interrupted table: keep complete scp lines, cut the ark back to the last recorded vector."""
        previous = json.loads(self._part_meta.read_text(encoding="utf-8"))
        differing = sorted(
            key for key in set(previous) | set(self.meta)
            if key not in self.provenance | {_PROVENANCE_KEY} and previous.get(key) != self.meta.get(key)
        )
        if differing:
            raise DataError(
                f"{self.out_dir}: holds a partial table made with other settings (differing: "
                f"{', '.join(differing)}); remove the directory or rerun with the same settings"
            )
        with open(self._part_scp, "a+b") as part:
            part.seek(0)
            raw = part.read()
            complete = raw[: raw.rfind(b"\n") + 1]  # an interrupted append can leave half a line
            part.truncate(len(complete))
        for line in complete.decode("utf-8").splitlines():
            key, offset = _split_scp_line(line)
            self._offsets[key] = offset
        end = self._end_of_last_vector()
        with open(self.ark_path, "ab") as ark:
            ark.truncate(end)
        if self._offsets and self._dim is None:
            self._dim = int(kaldiio.load_mat(f"{self.ark_path}:{min(self._offsets.values())}").shape[0])

    def _end_of_last_vector(self) -> int:
        if not self._offsets:
            return 0
        last = max(self._offsets.values())
        try:
            with open(self.ark_path, "rb") as ark:
                ark.seek(last)
                kaldiio.matio.read_kaldi(ark)
                return ark.tell()
        except Exception as error:  # a damaged ark under a recorded line: the protocol was broken from outside
            raise DataError(
                f"{self.ark_path}: cannot read the vector recorded at offset {last} ({error}); "
                f"the partial table is damaged, remove {self.out_dir}"
            ) from error

    def _check_batch(self, ids: list[str], vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"expected a [{len(ids)}, dim] array for {len(ids)} ids, got shape {vectors.shape}")
        seen: set[str] = set()
        for key in ids:
            if key in self._offsets or key in seen:
                raise DataError(f"{self.out_dir}: utterance '{key}' is written twice")
            if not key or any(c.isspace() for c in key):
                raise DataError(f"{self.out_dir}: utterance id {key!r} is empty or contains whitespace")
            seen.add(key)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise DataError(f"{self.out_dir}: got {vectors.shape[1]}-d vectors for a {self._dim}-d table")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            names = ", ".join(f"'{ids[i]}'" for i in np.flatnonzero(bad))
            raise DataError(f"{self.out_dir}: NaN or infinite embedding for utterance(s) {names}")


def _require_complete(parts: Sequence[Path]) -> None:
    unfinished = [part for part in parts if not table_is_complete(part)]
    if unfinished:
        raise DataError(
            f"{unfinished[0]}: table is not complete (no {SCP_NAME} + {META_NAME}); did its job finish? "
            f"({len(unfinished)} of {len(parts)} job tables are not)"
        )


def merge_tables(parts: Iterable[PathLike], out_dir: PathLike) -> None:
    """Join complete tables of split jobs into ``out_dir`` (one sorted ``emb.scp`` + ``meta.json``).

    The parts must share their metadata (apart from counts) and have disjoint ids; the merged scp points at
    the parts' arks.
    """
    parts = [Path(part) for part in parts]
    if not parts:
        raise ConfigError(f"{out_dir}: no tables to merge")
    _require_complete(parts)
    lines: dict[str, tuple[str, str]] = {}  # id -> (location, where first seen)
    reference_meta: dict[str, Any] | None = None
    merged_meta: dict[str, Any] = {}  # the first job's, provenance included
    total = 0
    for part in parts:
        meta = read_table_meta(part)
        total += int(meta.get(_COUNT_KEY, 0))
        comparable = _made_as(meta)
        if reference_meta is None:
            reference_meta, merged_meta = comparable, meta
        elif comparable != reference_meta:
            differing = sorted(
                k for k in set(comparable) | set(reference_meta) if comparable.get(k) != reference_meta.get(k)
            )
            hint = (
                ": the jobs read different versions of the data dir; run them all again on the current one"
                if "inputs_sha256" in differing
                else ""
            )
            raise DataError(f"{part}: metadata differs from {parts[0]} ({', '.join(differing)}); cannot merge{hint}")
        scp = part / SCP_NAME
        for number, key, location in _read_scp_lines(scp):
            if key in lines:
                raise DataError(f"{scp}:{number}: id '{key}' is also in {lines[key][1]}")
            lines[key] = (location, f"{scp}:{number}")
    with atomic_write(Path(out_dir) / SCP_NAME) as handle:
        for key in sorted(lines):
            handle.write(f"{key} {lines[key][0]}\n")
    _write_json(Path(out_dir) / META_NAME, {**merged_meta, _COUNT_KEY: total})


def _made_as(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a table's metadata says of how its vectors were made: all but its count and the keys that say where
    its job found the inputs (written differently by two jobs: data/dev/ or an absolute path)."""
    ignored = {_COUNT_KEY, *meta.get(_PROVENANCE_KEY, ())}
    return {key: value for key, value in meta.items() if key not in ignored}


def _read_scp_lines(scp: Path) -> list[tuple[int, str, str]]:
    """``(line, id, location)`` of every scp line; missing values and duplicate ids name ``file:line``."""
    lines: list[tuple[int, str, str]] = []
    first_line: dict[str, int] = {}
    for number, key, location in iter_table(scp):
        if not location:
            raise DataError(f"{scp}:{number}: id '{key}' has no ark location")
        if key in first_line:
            raise DataError(f"{scp}:{number}: duplicate id '{key}' (first seen on line {first_line[key]})")
        first_line[key] = number
        lines.append((number, key, location))
    return lines


def _split_scp_line(line: str) -> tuple[str, int]:
    key, location = line.split(maxsplit=1)
    return key, int(location.rsplit(":", 1)[1])


def _plain_json(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip, so stored and in-memory metadata compare equal (tuples become lists, ...)."""
    try:
        return json.loads(json.dumps(dict(meta)))
    except TypeError as error:
        raise ConfigError(f"table metadata must be JSON-serialisable: {error}") from error


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


# Split work (job i of N, 1-based as in JOB=1:N): shared by teacher extraction and embedding extraction.


def is_split(job: int | None, num_jobs: int | None) -> bool:
    """Whether ``--job``/``--num-jobs`` split the work; a pair that does not make sense is an error."""
    if job is None and num_jobs is None:
        return False
    if job is None or num_jobs is None or not 1 <= job <= num_jobs:
        raise ConfigError(f"job {job} of {num_jobs}: give both, with 1 <= job <= num_jobs")
    return True


def job_dir(out_dir: PathLike, job: int | None = None, num_jobs: int | None = None) -> Path:
    """Where job ``job`` of ``num_jobs`` writes (``out_dir`` itself when the work is not split)."""
    return Path(out_dir) / f"split{num_jobs}" / str(job) if is_split(job, num_jobs) else Path(out_dir)


def split_ids(utt_ids: Sequence[str], job: int | None = None, num_jobs: int | None = None) -> list[str]:
    """The ``job``-th (1-based) of ``num_jobs`` contiguous, near-equal chunks of ``utt_ids`` (all when not split)."""
    if not is_split(job, num_jobs):
        return list(utt_ids)
    chunks = np.array_split(np.arange(len(utt_ids)), num_jobs)
    return [utt_ids[i] for i in chunks[job - 1]]


def merge_split(out_dir: PathLike, num_jobs: int) -> Path:
    """Join the tables of jobs ``1..num_jobs`` (``<out>/split<N>/<i>``) into ``out_dir``."""
    if num_jobs < 1:  # no parts would pass the completeness check, and the merged table would be discarded
        raise ConfigError(f"--merge {num_jobs}: the number of split jobs must be at least 1")
    out_dir = Path(out_dir)
    parts = [job_dir(out_dir, job, num_jobs) for job in range(1, num_jobs + 1)]
    _require_complete(parts)  # before anything is compared with the merged table: a wrong N must not discard it
    part_ids = [key for part in parts for key in table_ids(part)]
    # Current only if made as the parts were: a table of one earlier job over the whole set (another precision,
    # say) has the same ids.
    if keep_current_table(out_dir, part_ids, _made_as(read_table_meta(parts[0]))):
        logger.info("%s: merged table already complete; nothing to do", out_dir)
        return out_dir
    merge_tables(parts, out_dir)
    logger.info("%s: merged %d job tables", out_dir, num_jobs)
    return out_dir
