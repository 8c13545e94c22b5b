"""Embedding tables as L2-normalised matrices, the common input of SV scoring and retrieval.

A table (kaldiio ``emb.scp``) becomes an :class:`EmbeddingSet`: ids in file order, a float32 ``[N, D]`` matrix
whose rows have unit norm, and an id → row index. Non-finite or zero vectors and inconsistent dimensions are
:class:`~uattr.errors.DataError` naming the table and the id, so a broken extraction never yields a plausible
score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import kaldiio
import numpy as np

from uattr.errors import DataError
from uattr.fileio import PathLike, read_table

logger = logging.getLogger(__name__)


def read_embedding_table(scp: PathLike) -> Mapping[str, np.ndarray]:
    """The lazy id → vector mapping of a kaldiio table, in file order.

    The one place that touches kaldiio here, so that it can switch to ``uattr.data.tables`` once that lands.
    kaldiio silently keeps the last of duplicate ids, so the scp is first checked as a Kaldi table.
    """
    scp = Path(scp)
    read_table(scp)  # missing file, duplicate ids, lines without a value: errors with file:line
    try:
        return kaldiio.load_scp(str(scp))
    except Exception as error:  # kaldiio raises bare ValueError/OSError on malformed scp lines
        raise DataError(f"{scp}: cannot read embedding table: {error}") from error


def _load_vector(table: Mapping[str, np.ndarray], key: str, source: str) -> np.ndarray:
    """One vector as float64, checked to be a finite 1-D array."""
    try:
        vector = np.asarray(table[key], dtype=np.float64)
    except Exception as error:  # missing or corrupt ark: kaldiio raises OSError/ValueError/EOFError
        raise DataError(f"{source}: cannot read the embedding of '{key}': {error}") from error
    if vector.ndim != 1 or vector.size == 0:
        raise DataError(f"{source}: the embedding of '{key}' has shape {vector.shape}, expected a non-empty vector")
    if not np.isfinite(vector).all():
        raise DataError(f"{source}: the embedding of '{key}' contains NaN or inf")
    return vector


def table_mean(scp: PathLike) -> np.ndarray:
    """Mean vector of a (training) table, accumulated one vector at a time so large tables fit in memory."""
    table = read_embedding_table(scp)
    total: np.ndarray | None = None
    for key in table:
        vector = _load_vector(table, key, str(scp))
        if total is None:
            total = np.zeros_like(vector)
        elif vector.shape != total.shape:
            raise DataError(f"{scp}: the embedding of '{key}' has dimension {vector.size}, expected {total.size}")
        total += vector
    if total is None:
        raise DataError(f"{scp}: empty embedding table")
    return total / len(table)


@dataclass(frozen=True)
class EmbeddingSet:
    """Ids and their L2-normalised float32 vectors (row ``i`` belongs to ``ids[i]``)."""

    ids: list[str]
    vectors: np.ndarray
    source: str = ""
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {key: row for row, key in enumerate(self.ids)})

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        """Row index of each id, -1 where the id has no embedding."""
        index = self.index
        return np.fromiter((index.get(key, -1) for key in ids), dtype=np.int64)


def normalise_rows(matrix: np.ndarray, ids: Sequence[str], source: str) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32; a zero row cannot be scored and is an error naming its id."""
    norms = np.linalg.norm(matrix, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise DataError(f"{source}: the embedding of '{ids[zero[0]]}' is all zeros ({zero.size} such vectors)")
    return (matrix / norms[:, None]).astype(np.float32)


def load_embedding_set(scp: PathLike, mean: np.ndarray | None = None) -> EmbeddingSet:
    """Read a table, subtract ``mean`` (if given) from every raw vector, then L2-normalise."""
    table = read_embedding_table(scp)
    ids = list(table)
    if not ids:
        raise DataError(f"{scp}: empty embedding table")
    first = _load_vector(table, ids[0], str(scp))
    matrix = np.empty((len(ids), first.size), dtype=np.float64)
    for row, key in enumerate(ids):
        vector = first if row == 0 else _load_vector(table, key, str(scp))
        if vector.size != first.size:
            raise DataError(f"{scp}: the embedding of '{key}' has dimension {vector.size}, expected {first.size}")
        matrix[row] = vector
    if mean is not None:
        if mean.size != first.size:
            raise DataError(f"{scp}: dimension {first.size} differs from the mean vector's {mean.size}")
        matrix -= mean
    logger.debug("%s: %d embeddings of dimension %d", scp, len(ids), first.size)
    return EmbeddingSet(ids, normalise_rows(matrix, ids, str(scp)), source=str(scp))


def average_groups(
    embeddings: EmbeddingSet, groups: Mapping[str, Sequence[str]], source: str
) -> EmbeddingSet:
    """One vector per group (enrolment model, cohort speaker): mean of its members' unit vectors, renormalised.

    Every member must be in ``embeddings``; callers drop unknown members first if the user allows that.
    """
    names = list(groups)
    means = np.empty((len(names), embeddings.dim), dtype=np.float64)
    for row, name in enumerate(names):
        members = embeddings.rows(groups[name])
        if members.size == 0 or (members < 0).any():
            raise DataError(f"{source}: group '{name}' has members without an embedding in {embeddings.source}")
        means[row] = embeddings.vectors[members].mean(axis=0, dtype=np.float64)
    return EmbeddingSet(names, normalise_rows(means, names, source), source=source)


def describe_ids(ids: Sequence[str], limit: int = 10) -> str:
    """``'a', 'b', ... (and N more)``: the first ``limit`` of a list of offending ids, for error messages."""
    shown = ", ".join(f"'{key}'" for key in ids[:limit])
    return shown + (f" (and {len(ids) - limit} more)" if len(ids) > limit else "")
