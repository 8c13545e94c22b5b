"""Retrieval metrics of query embeddings against a gallery: R@k, MRR and xSIM (definitions: docs/METRICS.md).

Similarity is the cosine of L2-normalised embeddings. Each query has a set of relevant gallery items: by
default the item with the same id, or those a query→reference map names (``qid gid1 gid2 ...``: several
recordings of one sentence, FLEURS-style).

- rank(j) of gallery item j for a query = |{g : s_g > s_j}| + |{g < j : s_g = s_j}| + 1 (ties broken by gallery
  order); a query's rank is that of its best-ranked relevant item.
- R@k = % of queries whose rank ≤ k; MRR = mean of 1/rank.
- xSIM error (LASER): % of queries whose arg-max candidate under the margin score is not relevant, with
  m(i,j) = cos(x_i, y_j) / ((avg_k NN(x_i) + avg_k NN(y_j)) / 2) for the "ratio" margin, the difference
  cos − (…)/2 for "distance" and the plain cosine for "absolute"; avg_k NN(x_i) is the mean of x_i's k highest
  cosines over the gallery, avg_k NN(y_j) that of y_j over the queries. As in LASER's ``xsim.py``, the
  candidates are the query's k nearest gallery items by cosine (ties in gallery order) and the absolute margin
  takes the nearest item, so with one relevant item per query xSIM error (absolute) = 100 − R@1.
- The ratio margin assumes a positive denominator (k-NN bias). Where it is ≤ 0 (neighbours of negative mean
  cosine), cos / bias inverts the order of the candidates: a warning names the queries and gallery items
  concerned, and a 0/0 margin never wins (the distance margin has no such case).
- The gallery side's avg_k NN is taken over the queries of the call, so a per-language result must come from a
  call with only that language's queries (as LASER scores each language pair on its own).

The Q×G similarity matrix is never built: queries are processed in blocks sized to a memory budget. A first
pass (only for a margin that needs it) collects both sides' k-NN averages and each query's k nearest items,
which settle the xSIM decision; a second pass computes each query's rank. Exact ranks need every score of a
row, so an approximate index (faiss) would not help; BLAS matrix products do the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import numpy as np

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, iter_table
from uattr.scoring.embeddings import EmbeddingSet, describe_ids

logger = logging.getLogger(__name__)

Margin = Literal["ratio", "distance", "absolute"]
MARGINS: tuple[str, ...] = ("ratio", "distance", "absolute")
DEFAULT_BLOCK_BYTES = 1 << 30
_BYTES_PER_SCORE = 9  # per block element: scores and work matrix (float32), flags (bool)


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


def relevance_from_groups(groups: Sequence[Sequence[int]]) -> Relevance:
    """Relevance from each query's list of relevant gallery rows (at least one each)."""
    counts = np.fromiter((len(group) for group in groups), dtype=np.int64, count=len(groups))
    if not counts.all():
        empty = np.flatnonzero(counts == 0)
        raise DataError(f"{empty.size} query(s) without a relevant gallery item ({describe_ids(_labels(None, empty))})"
                        ": a rank needs one")
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
    """Relevant items from ``qid gid1 gid2 ...`` lines; every query needs a line, every gid of a query in
    ``queries`` a gallery item (lines of other queries are ignored, so one map can serve several subsets)."""
    mapped: dict[str, list[int]] = {}
    first_line: dict[str, int] = {}
    for number, query, rest in iter_table(path):
        if query in first_line:
            raise DataError(f"{path}:{number}: duplicate query id '{query}' (first seen on line {first_line[query]})")
        first_line[query] = number
        references = rest.split()
        if not references:
            raise DataError(f"{path}:{number}: query '{query}' has no reference id")
        if query not in queries.index:
            continue
        rows = gallery.rows(references)
        if (rows < 0).any():
            unknown = [ref for ref, row in zip(references, rows) if row < 0]
            raise DataError(
                f"{path}:{number}: reference id(s) not in the gallery {gallery.source}: {describe_ids(unknown)}"
            )
        mapped[query] = rows.tolist()
    unmapped = [key for key in queries.ids if key not in mapped]
    if unmapped:
        raise DataError(
            f"{path}: no line for {len(unmapped)} query id(s) of {queries.source}: {describe_ids(unmapped)}"
        )
    unused = len(first_line) - len(mapped)
    if unused:
        logger.info("%s: %d line(s) name queries absent from %s (ignored)", path, unused, queries.source)
    return relevance_from_groups([mapped[key] for key in queries.ids])


def select_queries(relevance: Relevance, rows: np.ndarray) -> Relevance:
    """The relevance of queries ``rows`` only, in that order (to score a subset, e.g. one language, alone)."""
    counts = np.diff(relevance.offsets)[rows]
    offsets = np.concatenate(([0], np.cumsum(counts)))
    positions = np.repeat(relevance.offsets[rows] - offsets[:-1], counts) + np.arange(offsets[-1])
    return Relevance(offsets, relevance.items[positions])


class _ScoreBlocks:
    """Q×G, one block of query rows at a time, computed into reused buffers.

    Fresh block-sized arrays would page-fault on every block (measured: matmul 2.4× slower), so the scores and
    a work matrix of the same shape are allocated once. With a single block the scores are computed only once
    for both passes.

    Identical gallery vectors (one sentence under two ids, a collapsed model) must score exactly alike for ties
    to go to the earlier item, but a float32 matrix product can give them cosines one ulp apart, depending on
    their column and on the block's shape. Each distinct vector is therefore scored once and its score copied
    to its duplicates.
    """

    def __init__(self, queries: np.ndarray, gallery: np.ndarray, block_bytes: int) -> None:
        self.queries, self.gallery = queries, gallery
        self.distinct, self.copies = _distinct_rows(gallery)
        bytes_per_score = _BYTES_PER_SCORE + (4 if self.copies is not None else 0)
        self.step = max(1, block_bytes // (bytes_per_score * max(len(gallery), 1)))
        rows = min(self.step, len(queries))
        self.scores = np.empty((rows, len(gallery)), dtype=np.float32)
        self.work = np.empty((rows, len(gallery)), dtype=np.float32)
        self.flags = np.empty((rows, len(gallery)), dtype=bool)
        self._distinct_scores = None if self.copies is None else np.empty((rows, len(self.distinct)), np.float32)
        self._filled: int | None = None  # start row of the block now in ``scores``

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, scores)`` of each block; ``scores`` is a view valid until the next block."""
        for start in range(0, len(self.queries), self.step):
            stop = min(start + self.step, len(self.queries))
            scores = self.scores[: stop - start]
            if self._filled != start:
                # ``distinct`` is the gallery itself when no vector repeats; else its scores are spread to the copies.
                product = scores if self._distinct_scores is None else self._distinct_scores[: stop - start]
                np.matmul(self.queries[start:stop], self.distinct.T, out=product)
                if self.copies is not None:
                    np.take(product, self.copies, axis=1, out=scores)
                self._filled = start
            yield start, stop, scores


def _distinct_rows(gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct rows of the gallery and, if some repeat, each row's index among them (else None)."""
    if len(gallery) < 2:
        return gallery, None
    distinct, copies = np.unique(gallery, axis=0, return_inverse=True)
    if len(distinct) == len(gallery):
        return gallery, None
    return np.ascontiguousarray(distinct), copies.reshape(-1)


def _insert_rows(top: np.ndarray, rows: np.ndarray, carry: np.ndarray, spare: np.ndarray) -> None:
    """Keep in ``top`` (k × G, each column sorted descending) the k largest values per column seen so far.

    Each row bubbles down the k levels with element-wise max/min. By hand because numpy's partition along axis 0
    of a C-ordered block is strided and measured ~7× slower for k = 4 (and it needs a block-sized copy).
    """
    for row in rows:
        np.copyto(carry, row)
        for level in top:
            np.minimum(level, carry, out=spare)
            np.maximum(level, carry, out=level)
            carry, spare = spare, carry


@dataclass(frozen=True)
class _Neighbourhoods:
    """First-pass results: avg_k NN of each query and gallery item, and each query's k nearest gallery items
    (``candidates[q]``, by decreasing cosine ``cosines[q]``, ties in gallery order)."""

    query_means: np.ndarray
    gallery_means: np.ndarray
    candidates: np.ndarray
    cosines: np.ndarray


def _nearest(
    scores: np.ndarray, kth_values: np.ndarray, flags: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosines of each row's k highest scores (``kth_values``: each row's k-th highest), by
    decreasing cosine, ties in gallery order.

    Exactly k flags per row are set before any index array is made, so that a row whose k-th score is shared by
    many items (a collapsed model: all of them) costs no more memory than any other.
    """
    kth = kth_values[:, None]
    np.greater_equal(scores, kth, out=flags)
    for row in np.flatnonzero(np.count_nonzero(flags, axis=1) > k):  # ties at the k-th score: the first ones
        np.greater(scores[row], kth[row], out=flags[row])
        needed = k - np.count_nonzero(flags[row])
        flags[row, np.flatnonzero(scores[row] == kth[row])[:needed]] = True
    rows, cols = np.nonzero(flags)
    cols = cols.reshape(-1, k)
    values = scores[rows.reshape(-1, k), cols]
    order = np.lexsort((cols, -values))  # within each row: decreasing score, then gallery order
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)


def _neighbourhoods(blocks: _ScoreBlocks, k: int) -> _Neighbourhoods:
    n_query, n_gallery = len(blocks.queries), len(blocks.gallery)
    k_query, k_gallery = min(k, n_gallery), min(k, n_query)
    query_means = np.empty(n_query)
    candidates = np.empty((n_query, k_query), dtype=np.int64)
    cosines = np.empty((n_query, k_query), dtype=np.float32)
    gallery_top = np.full((k_gallery, n_gallery), -np.inf, dtype=np.float32)
    carry, spare = np.empty(n_gallery, dtype=np.float32), np.empty(n_gallery, dtype=np.float32)
    for start, stop, scores in blocks:
        work = blocks.work[: stop - start]
        np.copyto(work, scores)
        work.partition(n_gallery - k_query, axis=1)  # in place: no block-sized copy
        top = work[:, n_gallery - k_query :]
        query_means[start:stop] = top.mean(axis=1, dtype=np.float64)
        candidates[start:stop], cosines[start:stop] = _nearest(
            scores, top.min(axis=1), blocks.flags[: stop - start], k_query
        )
        _insert_rows(gallery_top, scores, carry, spare)
    return _Neighbourhoods(query_means, gallery_top.mean(axis=0, dtype=np.float64), candidates, cosines)


def knn_means(
    queries: np.ndarray, gallery: np.ndarray, k: int, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """avg_k NN of every query (over the gallery) and of every gallery item (over the queries), in one pass."""
    hood = _neighbourhoods(_ScoreBlocks(queries, gallery, block_bytes), k)
    return hood.query_means, hood.gallery_means


def _labels(ids: Sequence[str] | None, rows: np.ndarray) -> list[str]:
    """Ids of some rows for a message, or ``row N`` when the caller gave no ids."""
    return [f"row {row}" for row in rows] if ids is None else [ids[row] for row in rows]


def _warn_nonpositive_bias(
    bias: np.ndarray, candidates: np.ndarray, query_ids: Sequence[str] | None, gallery_ids: Sequence[str] | None
) -> None:
    """Say which queries and gallery items a ratio margin with a denominator ≤ 0 makes meaningless."""
    bad = bias <= 0
    if not bad.any():
        return
    queries = np.flatnonzero(bad.any(axis=1))
    items = np.unique(candidates[bad])
    logger.warning(
        "xSIM ratio margin: the k-NN bias (avg_k NN(x) + avg_k NN(y)) / 2 is ≤ 0 for %d query(s) (%s) against "
        "%d gallery item(s) (%s): cos / bias inverts their candidates' order (0/0 never wins); "
        "the distance margin has no such case",
        queries.size, describe_ids(_labels(query_ids, queries), 5),
        items.size, describe_ids(_labels(gallery_ids, items), 5),
    )


def _margin_choice(
    hood: _Neighbourhoods, margin: Margin, query_ids: Sequence[str] | None, gallery_ids: Sequence[str] | None
) -> np.ndarray:
    """LASER's xSIM decision: of each query's k nearest gallery items, the one with the highest margin."""
    bias = (hood.query_means[:, None] + hood.gallery_means[hood.candidates]) / 2
    if margin == "distance":
        margins = hood.cosines - bias
    else:
        _warn_nonpositive_bias(bias, hood.candidates, query_ids, gallery_ids)
        with np.errstate(divide="ignore", invalid="ignore"):  # reported above
            margins = hood.cosines / bias
        margins[np.isnan(margins)] = -np.inf
    return hood.candidates[np.arange(len(margins)), np.argmax(margins, axis=1)]


def _block_relevance(relevance: Relevance, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevant items of queries start..stop, the block row owning each, and each row's first position."""
    first = relevance.offsets[start]
    items = relevance.items[first : relevance.offsets[stop]]
    owner = np.repeat(np.arange(stop - start), np.diff(relevance.offsets[start : stop + 1]))
    return items, owner, relevance.offsets[start:stop] - first


def _ranks(
    scores: np.ndarray, flags: np.ndarray, items: np.ndarray, owner: np.ndarray, segments: np.ndarray
) -> np.ndarray:
    """Rank of each block query's best relevant item (definition in the module docstring)."""
    values = scores[owner, items]
    best = np.maximum.reduceat(values, segments)
    best_item = np.minimum.reduceat(np.where(values == best[owner], items, scores.shape[1]), segments)
    ranks = np.count_nonzero(np.greater(scores, best[:, None], out=flags), axis=1) + 1
    ties = np.count_nonzero(np.equal(scores, best[:, None], out=flags), axis=1)
    for row in np.flatnonzero(ties > 1):  # only rows with a tie need the items before the best one
        ranks[row] += np.count_nonzero(flags[row, : best_item[row]])
    return ranks


def evaluate_retrieval(
    queries: np.ndarray,
    gallery: np.ndarray,
    relevance: Relevance,
    margin: Margin = "ratio",
    xsim_k: int = 4,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    query_ids: Sequence[str] | None = None,
    gallery_ids: Sequence[str] | None = None,
) -> RetrievalOutcome:
    """Rank of the best relevant item and the xSIM decision of every query (unit-norm float32 rows in).

    The ids only name rows in warnings (default: row numbers).
    """
    if margin not in MARGINS:
        raise ConfigError(f"unknown margin '{margin}'; choices: {', '.join(MARGINS)}")
    if xsim_k < 1:
        raise ConfigError(f"xSIM k must be at least 1, got {xsim_k}")
    if queries.shape[1] != gallery.shape[1]:
        raise DataError(f"queries are {queries.shape[1]}-d but the gallery is {gallery.shape[1]}-d")
    blocks = _ScoreBlocks(queries, gallery, block_bytes)
    choice = np.empty(len(queries), dtype=np.int64)
    if margin != "absolute":
        choice = _margin_choice(_neighbourhoods(blocks, xsim_k), margin, query_ids, gallery_ids)
    ranks = np.empty(len(queries), dtype=np.int64)
    for start, stop, scores in blocks:
        ranks[start:stop] = _ranks(scores, blocks.flags[: stop - start], *_block_relevance(relevance, start, stop))
        if margin == "absolute":
            choice[start:stop] = np.argmax(scores, axis=1)
    items, owner, segments = _block_relevance(relevance, 0, len(queries))
    wrong = ~np.logical_or.reduceat(items == choice[owner], segments)
    return RetrievalOutcome(ranks, wrong)


def retrieval_metrics(outcome: RetrievalOutcome, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``{"r@k": %, ..., "mrr": mean 1/rank, "xsim": % error, "n_query": n}`` over the outcome's queries.

    No subset selection: xSIM depends on which queries were scored together (module docstring).
    """
    ranks, wrong = outcome.ranks, outcome.xsim_wrong
    if ranks.size == 0:
        raise DataError("no query to evaluate")
    metrics: dict = {f"r@{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    metrics["xsim"] = 100.0 * float(np.mean(wrong))
    metrics["n_query"] = int(ranks.size)
    return metrics
