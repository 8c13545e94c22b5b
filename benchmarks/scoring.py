"""Benchmark of uattr's scoring against the usual alternatives (not a test: prints markdown tables).

Speaker verification: EER + minDCF (P_tar 0.01 and 0.05) of uattr.scoring.metrics on synthetic trials against
scikit-learn's roc_curve recipe (nearest-point EER, minDCF over the ROC points) and speechbrain's EER/minDCF
(quadratic in the number of trials: timed on capped sizes only). Retrieval: R@1/5/10 + MRR + xSIM (ratio
margin, k=4) of uattr.scoring.retrieval (query blocks) against a plain full-matrix numpy version, with time
and the peak of traced (numpy) memory; the full-matrix version is skipped where its matrices would not fit.

    .venv/bin/python benchmarks/scoring.py                      # the table in benchmarks/README.md
    .venv/bin/python benchmarks/scoring.py --sv-sizes 100000 --retrieval-sizes 5000   # a quick run
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import roc_curve
from speechbrain.utils.metric_stats import EER as speechbrain_eer
from speechbrain.utils.metric_stats import minDCF as speechbrain_min_dcf

from uattr.scoring.metrics import sv_metrics
from uattr.scoring.retrieval import evaluate_retrieval, relevance_from_groups, retrieval_metrics

P_TARGETS = (0.01, 0.05)


def timed(function: Callable, *args, repeat: int = 1, **kwargs) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs (the machine is shared: the minimum is the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def traced(function: Callable, *args, **kwargs) -> tuple[float, float, object]:
    """Seconds, peak traced memory (GB: numpy reports its buffers to tracemalloc) and the result."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        seconds, result = timed(function, *args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] / 1e9
    finally:
        tracemalloc.stop()
    return seconds, peak, result


def synthetic_trials(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """10% target trials with cosine-like float32 scores (targets ~ N(0.5, 0.1), nontargets ~ N(0.25, 0.1))."""
    labels = rng.random(n) < 0.1
    scores = (rng.normal(size=n) * 0.1 + 0.25 + 0.25 * labels).astype(np.float32).astype(np.float64)
    return scores, labels


def sklearn_sv(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The common recipe: ROC from roc_curve, EER at the point where |FNR − FPR| is smallest."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    best = np.nanargmin(np.abs(fnr - fpr))
    min_dcf = {}
    for p in P_TARGETS:
        cost = p * fnr + (1 - p) * fpr
        min_dcf[p] = cost.min() / min(p, 1 - p)
    return {"eer": 100 * (fpr[best] + fnr[best]) / 2, "min_dcf": min_dcf}


def speechbrain_sv(scores: np.ndarray, labels: np.ndarray) -> dict:
    positive = torch.from_numpy(scores[labels]).float()
    negative = torch.from_numpy(scores[~labels]).float()
    eer, _ = speechbrain_eer(positive, negative)
    min_dcf = {p: speechbrain_min_dcf(positive, negative, p_target=p)[0] / min(p, 1 - p) for p in P_TARGETS}
    return {"eer": 100 * eer, "min_dcf": min_dcf}


def speechbrain_eer_only(scores: np.ndarray, labels: np.ndarray) -> dict:
    positive = torch.from_numpy(scores[labels]).float()
    negative = torch.from_numpy(scores[~labels]).float()
    return {"eer": 100 * speechbrain_eer(positive, negative)[0]}


def bench_sv(
    sizes: list[int], sb_sizes: list[int], sb_dcf_max: int, repeat: int, rng: np.random.Generator
) -> list[str]:
    rows = [
        "| trials | uattr EER+minDCF (s) | sklearn roc_curve (s) | ratio | speechbrain (s) | ratio "
        "| uattr EER (%) | sklearn − uattr (pp) | speechbrain − uattr (pp) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted(set(sizes) | set(sb_sizes)):
        scores, labels = synthetic_trials(n, rng)
        ours_time, ours = timed(sv_metrics, scores, labels, P_TARGETS, repeat=repeat)
        sk_cells = ["–", "–", "–"]
        if n in sizes:
            sk_time, sk = timed(sklearn_sv, scores, labels, repeat=repeat)
            sk_cells = [f"{sk_time:.3f}", f"{sk_time / ours_time:.1f}×", f"{sk['eer'] - ours['eer']:+.4f}"]
        sb_cells = ["–", "–", "–"]
        if n in sb_sizes:
            function = speechbrain_sv if n <= sb_dcf_max else speechbrain_eer_only
            sb_time, sb = timed(function, scores, labels)
            what = "" if n <= sb_dcf_max else " (EER only)"
            sb_cells = [f"{sb_time:.2f}{what}", f"{sb_time / ours_time:.0f}×", f"{sb['eer'] - ours['eer']:+.4f}"]
            if "min_dcf" in sb:
                gaps = [abs(sb["min_dcf"][p] - ours["min_dcf"][repr(p)]) for p in P_TARGETS]
                sb_cells[2] += f" (minDCF gap {max(gaps):.1e})"
        rows.append(
            f"| {n:,} | {ours_time:.3f} | {sk_cells[0]} | {sk_cells[1]} | {sb_cells[0]} | {sb_cells[1]} "
            f"| {ours['eer']:.4f} | {sk_cells[2]} | {sb_cells[2]} |"
        )
    return rows


def retrieval_data(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    gallery = rng.normal(size=(n, dim)).astype(np.float32)
    queries = gallery + 3.3 * rng.normal(size=(n, dim)).astype(np.float32)  # cos ≈ 0.29: R@1 well below 100
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (queries, gallery)]
    return unit[0], unit[1]


def full_matrix_retrieval(queries: np.ndarray, gallery: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The plain version: the whole Q×G matrix (query i relevant to gallery item i), LASER's xSIM on it."""
    n = len(queries)
    rows = np.arange(n)
    scores = queries @ gallery.T
    best = scores[rows, rows]
    ties_before = ((scores == best[:, None]) & (rows[None, :] < rows[:, None])).sum(1)
    ranks = (scores > best[:, None]).sum(1) + ties_before + 1
    nearest = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    cosines = scores[rows[:, None], nearest]
    gallery_knn = np.partition(scores, n - k, axis=0)[n - k :].mean(0)
    margin = cosines / ((cosines.mean(1)[:, None] + gallery_knn[nearest]) / 2)
    return ranks, nearest[rows, margin.argmax(1)] != rows


def available_gb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 1e6
    return 0.0


def bench_retrieval(sizes: list[int], dim: int, rng: np.random.Generator) -> list[str]:
    rows = [
        "| queries × gallery | uattr (s) | uattr peak (GB) | full matrix (s) | full peak (GB) | speed ratio "
        "| R@1 (%) | xSIM error (%) | identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    warm_queries, warm_gallery = retrieval_data(500, dim, rng)  # BLAS start-up is not part of either timing
    evaluate_retrieval(warm_queries, warm_gallery, relevance_from_groups([[i] for i in range(500)]))
    full_matrix_retrieval(warm_queries, warm_gallery)
    for n in sizes:
        queries, gallery = retrieval_data(n, dim, rng)
        relevance = relevance_from_groups([[i] for i in range(n)])

        def ours() -> tuple:
            outcome = evaluate_retrieval(queries, gallery, relevance, "ratio", 4)
            return outcome, retrieval_metrics(outcome)

        ours_time, ours_peak, (outcome, metrics) = traced(ours)
        full_cells = ["not run", "–", "–", "–"]
        need = 16 * n * n / 1e9  # scores, argpartition's int64 indices, a partition copy, boolean temporaries
        if need < 0.7 * available_gb():
            full_time, full_peak, (ranks, wrong) = traced(full_matrix_retrieval, queries, gallery)
            same = np.array_equal(ranks, outcome.ranks) and np.array_equal(wrong, outcome.xsim_wrong)
            ratio = f"{full_time / ours_time:.2f}×"
            full_cells = [f"{full_time:.1f}", f"{full_peak:.2f}", ratio, "yes" if same else "NO"]
        else:
            full_cells[0] = f"not run (needs ≈{need:.0f} GB)"
        rows.append(
            f"| {n:,} × {n:,} | {ours_time:.1f} | {ours_peak:.2f} | {full_cells[0]} | {full_cells[1]} "
            f"| {full_cells[2]} | {metrics['r@1']:.2f} | {metrics['xsim']:.2f} | {full_cells[3]} |"
        )
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, {available_gb():.0f} GB available; Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sv-sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--speechbrain-sizes", type=int, nargs="*", default=[10_000, 30_000])
    parser.add_argument("--speechbrain-dcf-max", type=int, default=10_000, help="its minDCF needs O(n²) memory")
    parser.add_argument("--retrieval-sizes", type=int, nargs="*", default=[10_000, 20_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs for uattr and sklearn SV timings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}\n")
    if args.sv_sizes or args.speechbrain_sizes:
        rows = bench_sv(args.sv_sizes, args.speechbrain_sizes, args.speechbrain_dcf_max, args.repeat, rng)
        print("\n".join(rows), "\n", flush=True)
    if args.retrieval_sizes:
        print("\n".join(bench_retrieval(args.retrieval_sizes, args.dim, rng)))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
