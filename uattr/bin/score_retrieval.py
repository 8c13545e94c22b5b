"""Score retrieval of query embeddings against a gallery: R@k, MRR and xSIM error.

Cosine similarity of L2-normalised embeddings. A query's relevant items: the gallery item with its id, or the
ids --query2ref lists ("qid gid1 gid2 ..."). R@k = % of queries whose best-ranked relevant item has rank ≤ k
(ties broken by gallery order), MRR = mean 1/rank; xSIM error = % of queries whose arg-max under the LASER
margin (ratio: cos / ((avg_k NN(x) + avg_k NN(y)) / 2); distance: cos − that mean; absolute: cos) is not
relevant. Queries are scored in blocks, so 100k × 100k fits in a few GB. The ratio margin needs a positive
denominator: where a k-NN mean cosine makes it ≤ 0 the order inverts, and a warning names the ids concerned.

With --utt2lang, each query language is also scored on its own (the gallery side of the xSIM margin then sees
only that language's queries, as in LASER), so a language's row does not depend on the others in the run.
Definitions: docs/METRICS.md.

--json prints {"r@1", "r@5", "r@10", "mrr", "xsim", "n_query", "n_gallery"} (+ "per_lang": {lang: the same})
with --utt2lang; --out writes it with a "meta" entry for `uattr results`.

Example:
  uattr score-retrieval --query exp/joint/emb/semantic/test_fr/emb.scp \\
      --gallery dump/teacher/semantic/test_en/emb.scp --query2ref data/test_fr/query2ref --json
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from uattr.errors import ConfigError, DataError
from uattr.fileio import read_table
from uattr.scoring.embeddings import EmbeddingSet, describe_ids, load_embedding_set
from uattr.scoring.results import add_metrics_output_arguments, write_metrics
from uattr.scoring.retrieval import (
    MARGINS,
    Relevance,
    evaluate_retrieval,
    relevance_by_id,
    relevance_from_map,
    retrieval_metrics,
    select_queries,
)

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", required=True, help="query embeddings (emb.scp)")
    parser.add_argument("--gallery", required=True, help="gallery embeddings (emb.scp)")
    parser.add_argument("--query2ref", help="'qid gid1 gid2 ...' lines (default: relevant = same id)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], help="cut-offs of R@k (default 1 5 10)")
    parser.add_argument(
        "--margin", choices=MARGINS, default="ratio",
        help="xSIM margin (default ratio; it warns where its k-NN denominator is ≤ 0, which inverts the order)",
    )
    parser.add_argument("--xsim-k", type=int, default=4, help="neighbours in the xSIM margin (default 4)")
    parser.add_argument("--utt2lang", help="query id → language: also score each query language on its own")
    parser.add_argument("--block-mb", type=int, default=1024,
                        help="memory for one block of scores, in MiB (default: 1024)")
    add_metrics_output_arguments(parser)


def _languages(path: str, query_ids: list[str]) -> np.ndarray:
    table = read_table(path)
    absent = [key for key in query_ids if key not in table]
    if absent:
        raise DataError(f"{path}: no language for {len(absent)} query id(s): {describe_ids(absent)}")
    return np.array([table[key] for key in query_ids])


def _metrics(
    query_ids: list[str], query_vectors: np.ndarray, gallery: EmbeddingSet, relevance: Relevance,
    args: argparse.Namespace,
) -> dict:
    """The metrics of these queries scored together (and only these: xSIM depends on the query set)."""
    outcome = evaluate_retrieval(
        query_vectors, gallery.vectors, relevance, args.margin, args.xsim_k, block_bytes=args.block_mb << 20,
        query_ids=query_ids, gallery_ids=gallery.ids,
    )
    metrics = retrieval_metrics(outcome, args.k)
    metrics["n_gallery"] = len(gallery)
    return metrics


def main(args: argparse.Namespace) -> None:
    if min(args.k) < 1:
        raise ConfigError(f"--k values must be at least 1, got {args.k}")
    if args.block_mb < 1:
        raise ConfigError(f"--block-mb must be positive, got {args.block_mb}")
    if args.xsim_k < 1:
        raise ConfigError(f"--xsim-k must be at least 1, got {args.xsim_k}")
    queries = load_embedding_set(args.query)
    gallery = load_embedding_set(args.gallery)
    if queries.vectors.shape[1] != gallery.vectors.shape[1]:
        raise DataError(
            f"{args.query}: {queries.vectors.shape[1]}-d queries, but {args.gallery} holds "
            f"{gallery.vectors.shape[1]}-d vectors; score embeddings of one space"
        )
    relevance = (
        relevance_from_map(args.query2ref, queries, gallery) if args.query2ref else relevance_by_id(queries, gallery)
    )
    languages = _languages(args.utt2lang, queries.ids) if args.utt2lang else None  # read before the long scoring
    metrics = _metrics(queries.ids, queries.vectors, gallery, relevance, args)
    if languages is not None:
        metrics["per_lang"] = {}
        for lang in sorted(set(languages)):
            rows = np.flatnonzero(languages == lang)
            if args.margin != "absolute" and rows.size < args.xsim_k:
                logger.warning(
                    "%s: language %s has %d query(s), fewer than --xsim-k %d: its xSIM margin averages each gallery"
                    " item's nearest neighbours over those %d only", args.utt2lang, lang, rows.size, args.xsim_k,
                    rows.size,
                )
            metrics["per_lang"][lang] = _metrics(
                [queries.ids[row] for row in rows], queries.vectors[rows], gallery, select_queries(relevance, rows),
                args,
            )
    if args.out:
        write_metrics(
            args.out, metrics, "retrieval", args,
            query=args.query, gallery=args.gallery, margin=args.margin, xsim_k=args.xsim_k,
        )
    if args.json:
        print(json.dumps(metrics))
        return
    summary = ", ".join(f"R@{k} {metrics[f'r@{k}']:.2f}%" for k in args.k)
    print(f"{summary}, MRR {metrics['mrr']:.4f}, xSIM ({args.margin}) error {metrics['xsim']:.2f}%")
    print(f"queries: {metrics['n_query']}, gallery: {metrics['n_gallery']}")
    for lang, values in metrics.get("per_lang", {}).items():
        first = f"r@{args.k[0]}"
        print(f"  {lang}: R@{args.k[0]} {values[first]:.2f}%, xSIM error {values['xsim']:.2f}% ({values['n_query']})")
