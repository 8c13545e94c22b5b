"""Retrieval metrics of query embeddings against a gallery: R@k, MRR and xSIM (DESIGN.md §4).

Similarity is the cosine of L2-normalised embeddings. Each query has a set of relevant gallery items: by
default the item with the same id, or those a query→reference map names (``qid gid1 gid2 ...``: several
recordings of one sentence, FLEURS-style).

- rank(j) of gallery item j for a query = |{g : s_g > s_j}| + |{g < j : s_g = s_j}| + 1 (ties broken by gallery
  order); a query's rank is that of its best-ranked relevant item.
- R@k = % of queries whose rank ≤ k; MRR = mean of 1/rank.
- xSIM error (LASER): % of queries whose arg-max candidate under the margin score is not relevant, with
  m(i,j) = cos(x_i, y_j) / ((avg_k NN(x_i) + avg_k NN(y_j)) / 2) for the "ratio" margin, the difference
  cos − (…)/2 for "distance" and the plain cosine for "absolute"; avg_k NN(x_i) is the mean of x_i's k highest
  cosines over the gallery, avg_k NN(y_j) that of y_j over the queries. With the absolute margin and one
  relevant item per query, xSIM error = 100 − R@1.

The Q×G similarity matrix is never built: queries are processed in blocks sized to a memory budget. A first
pass collects both sides' k-NN averages (only for a margin that needs them), a second computes each query's
rank and margin arg-max. Exact ranks need every score of a row, so an approximate index (faiss) would not
help; BLAS matrix products do the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, iter_table
from uattr.scoring.embeddings import EmbeddingSet, describe_ids

logger = logging.getLogger(__name__)

Margin = Literal["ratio", "distance", "absolute"]
MARGINS: tuple[str, ...] = ("ratio", "distance", "absolute")
DEFAULT_BLOCK_BYTES = 1 << 30
_BYTES_PER_SCORE = 16  # a block's scores (float32) plus the margin matrix and boolean temporaries


@dataclass(frozen=True)
class Relevance:
    """Query q's relevant gallery rows are ``items[offsets[q]:offsets[q + 1]]`` (at least one each)."""

    offsets: np.ndarray
    items: np.ndarray


@dataclass(frozen=True)
class RetrievalOutcome:
    """Per query: the rank of its best-ranked relevant item (1-based) and whether xSIM picked a wrong one."""

    ranks: np.ndarray
    xsim_wrong: np.ndarray


def _relevance(groups: Sequence[Sequence[int]]) -> Relevance:
    counts = np.fromiter((len(group) for group in groups), dtype=np.int64, count=len(groups))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    items = np.fromiter((row for group in groups for row in group), dtype=np.int64, count=int(offsets[-1]))
    return Relevance(offsets, items)


def relevance_by_id(queries: EmbeddingSet, gallery: EmbeddingSet) -> Relevance:
    """Each query's relevant item is the gallery item with the same id (which must exist)."""
    rows = gallery.rows(queries.ids)
    absent = [queries.ids[i] for i in np.flatnonzero(rows < 0)]
    if absent:
        raise DataError(
            f"{len(absent)} query id(s) of {queries.source} are not in the gallery {gallery.source}: "
            f"{describe_ids(absent)}; give a --query2ref map when ids differ"
        )
    return Relevance(np.arange(len(queries) + 1), rows)


def relevance_from_map(path: PathLike, queries: EmbeddingSet, gallery: EmbeddingSet) -> Relevance:
    """Relevant items from ``qid gid1 gid2 ...`` lines; every query needs a line, every gid a gallery item."""
    mapped: dict[str, list[int]] = {}
    first_line: dict[str, int] = {}
    for number, query, rest in iter_table(path):
        if query in mapped:
            raise DataError(f"{path}:{number}: duplicate query id '{query}' (first seen on line {first_line[query]})")
        references = rest.split()
        if not references:
            raise DataError(f"{path}:{number}: query '{query}' has no reference id")
        rows = gallery.rows(references)
        if (rows < 0).any():
            unknown = [ref for ref, row in zip(references, rows) if row < 0]
            raise DataError(
                f"{path}:{number}: reference id(s) not in the gallery {gallery.source}: {describe_ids(unknown)}"
            )
        mapped[query] = rows.tolist()
        first_line[query] = number
    unmapped = [key for key in queries.ids if key not in mapped]
    if unmapped:
        raise DataError(
            f"{path}: no line for {len(unmapped)} query id(s) of {queries.source}: {describe_ids(unmapped)}"
        )
    unused = len(mapped) - len(queries)
    if unused:
        logger.info("%s: %d line(s) name queries absent from %s (ignored)", path, unused, queries.source)
    return _relevance([mapped[key] for key in queries.ids])


def _block_rows(n_gallery: int, block_bytes: int) -> int:
    return max(1, block_bytes // (_BYTES_PER_SCORE * max(n_gallery, 1)))


def knn_means(
    queries: np.ndarray, gallery: np.ndarray, k: int, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """avg_k NN of every query (over the gallery) and of every gallery item (over the queries), in one pass."""
    n_query, n_gallery = len(queries), len(gallery)
    k_query, k_gallery = min(k, n_gallery), min(k, n_query)
    query_means = np.empty(n_query)
    best_of_gallery = np.empty((0, n_gallery), dtype=np.float32)  # running top-k of each gallery column
    step = _block_rows(n_gallery, block_bytes)
    for start in range(0, n_query, step):
        scores = queries[start : start + step] @ gallery.T
        query_means[start : start + step] = np.partition(scores, n_gallery - k_query, axis=1)[
            :, n_gallery - k_query :
        ].mean(axis=1, dtype=np.float64)
        best_of_gallery = np.concatenate((best_of_gallery, scores))
        if len(best_of_gallery) > k_gallery:
            cut = len(best_of_gallery) - k_gallery
            best_of_gallery = np.partition(best_of_gallery, cut, axis=0)[cut:]
    return query_means, best_of_gallery.mean(axis=0, dtype=np.float64)


def evaluate_retrieval(
    queries: np.ndarray,
    gallery: np.ndarray,
    relevance: Relevance,
    margin: Margin = "ratio",
    xsim_k: int = 4,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> RetrievalOutcome:
    """Rank of the best relevant item and the xSIM decision of every query (unit-norm float32 rows in)."""
    if margin not in MARGINS:
        raise ConfigError(f"unknown margin '{margin}'; choices: {', '.join(MARGINS)}")
    if xsim_k < 1:
        raise ConfigError(f"xSIM k must be at least 1, got {xsim_k}")
    if queries.shape[1] != gallery.shape[1]:
        raise DataError(f"queries are {queries.shape[1]}-d but the gallery is {gallery.shape[1]}-d")
    n_query, n_gallery = len(queries), len(gallery)
    if margin != "absolute":
        query_means, gallery_means = knn_means(queries, gallery, xsim_k, block_bytes)
        gallery_halves = (gallery_means / 2).astype(np.float32)
    columns = np.arange(n_gallery)
    ranks = np.empty(n_query, dtype=np.int64)
    wrong = np.empty(n_query, dtype=bool)
    step = _block_rows(n_gallery, block_bytes)
    for start in range(0, n_query, step):
        stop = min(start + step, n_query)
        scores = queries[start:stop] @ gallery.T
        first, last = relevance.offsets[start], relevance.offsets[stop]
        items = relevance.items[first:last]
        owner = np.repeat(np.arange(stop - start), np.diff(relevance.offsets[start : stop + 1]))
        starts = relevance.offsets[start:stop] - first
        values = scores[owner, items]
        best = np.maximum.reduceat(values, starts)
        best_item = np.minimum.reduceat(np.where(values == best[owner], items, n_gallery), starts)
        higher = np.count_nonzero(scores > best[:, None], axis=1)
        tied_before = np.count_nonzero((scores == best[:, None]) & (columns < best_item[:, None]), axis=1)
        ranks[start:stop] = higher + tied_before + 1
        if margin != "absolute":
            half_means = (query_means[start:stop] / 2).astype(np.float32)
            denominators = half_means[:, None] + gallery_halves[None, :]
            if margin == "ratio":
                np.divide(scores, denominators, out=scores)
            else:
                np.subtract(scores, denominators, out=scores)
        choice = np.argmax(scores, axis=1)
        wrong[start:stop] = ~np.logical_or.reduceat(items == choice[owner], starts)
    return RetrievalOutcome(ranks, wrong)


def retrieval_metrics(
    outcome: RetrievalOutcome, ks: Sequence[int] = (1, 5, 10), select: np.ndarray | None = None
) -> dict:
    """``{"r@k": %, ..., "mrr": mean 1/rank, "xsim": % error, "n_query": n}`` over all or the selected queries."""
    ranks = outcome.ranks if select is None else outcome.ranks[select]
    wrong = outcome.xsim_wrong if select is None else outcome.xsim_wrong[select]
    if ranks.size == 0:
        raise DataError("no query to evaluate")
    metrics: dict = {f"r@{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    metrics["xsim"] = 100.0 * float(np.mean(wrong))
    metrics["n_query"] = int(ranks.size)
    return metrics
