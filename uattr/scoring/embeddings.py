"""Embedding tables as L2-normalised matrices, the common input of SV scoring and retrieval.

A table (kaldiio ``emb.scp``, read by :func:`uattr.data.tables.read_embedding_table`) becomes an
:class:`EmbeddingSet`: ids in file order, a float32 ``[N, D]`` matrix whose rows have unit norm, and an id → row
index. Non-finite or zero vectors and inconsistent dimensions are :class:`~uattr.errors.DataError` naming the
table and the id, so a broken extraction never yields a plausible score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from uattr.data.tables import read_embedding_table
from uattr.errors import DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableMean:
    """The mean vector of a (training) table and the table it came from, for errors that name both files."""

    vector: np.ndarray
    source: str


def table_mean(scp: PathLike) -> TableMean:
    """Mean vector of a (training) table, accumulated in float64."""
    table = read_embedding_table(scp)
    if not table:
        raise DataError(f"{scp}: empty embedding table")
    total = np.zeros(next(iter(table.values())).shape, dtype=np.float64)
    for vector in table.values():
        total += vector
    return TableMean(total / len(table), str(scp))


@dataclass(frozen=True)
class EmbeddingSet:
    """Ids and their L2-normalised float32 vectors (row ``i`` belongs to ``ids[i]``)."""

    ids: list[str]
    vectors: np.ndarray
    source: str = ""
    # For a set of group means (enrolment models, cohort speakers): the utterance ids behind each entry.
    members: Mapping[str, Sequence[str]] | None = field(default=None, repr=False, compare=False)
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {key: row for row, key in enumerate(self.ids)})

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def utterances(self, rows: Iterable[int]) -> set[str]:
        """The utterance ids behind ``rows``: their members for group means, else their own ids."""
        keys = [self.ids[row] for row in rows]
        return {utt for key in keys for utt in self.members[key]} if self.members is not None else set(keys)

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


def load_embedding_set(scp: PathLike, mean: TableMean | None = None) -> EmbeddingSet:
    """Read a table, subtract ``mean`` (if given) from every raw vector, then L2-normalise."""
    table = read_embedding_table(scp)  # checks ids, dimensions and NaN/inf, naming file:line and id
    if not table:
        raise DataError(f"{scp}: empty embedding table")
    ids = list(table)
    matrix = np.stack([table[key] for key in ids]).astype(np.float64)
    if mean is not None:
        if mean.vector.size != matrix.shape[1]:
            raise DataError(
                f"{scp}: dimension {matrix.shape[1]} differs from that of the mean vector of {mean.source} "
                f"({mean.vector.size})"
            )
        matrix -= mean.vector
    logger.debug("%s: %d embeddings of dimension %d", scp, *matrix.shape)
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
    return EmbeddingSet(names, normalise_rows(means, names, source), source=source,
                        members={name: list(groups[name]) for name in names})


def describe_ids(ids: Sequence[str], limit: int = 10) -> str:
    """``'a', 'b', ... (and N more)``: the first ``limit`` of a list of offending ids, for error messages."""
    shown = ", ".join(f"'{key}'" for key in ids[:limit])
    return shown + (f" (and {len(ids) - limit} more)" if len(ids) > limit else "")
