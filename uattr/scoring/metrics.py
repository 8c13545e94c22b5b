"""Speaker-verification metrics: error-rate sweep, EER and normalised minDCF.

Definitions (docs/METRICS.md). A trial is rejected when its score s ≤ θ, and θ sweeps −∞ and every distinct score:

    P_miss(θ) = |{target ≤ θ}| / N_tar,    P_fa(θ) = |{nontarget > θ}| / N_non

- EER: the point where P_miss = P_fa, linearly interpolated between the two sweep points that bracket the
  crossing (reported in %). Tied scores move together (one sweep point per distinct score), so the result does
  not depend on the order of tied trials. Without ties it agrees with Kaldi's ``compute-eer`` within
  1/min(N_tar, N_non) (Kaldi's answer on tied scores depends on their order).
- minDCF: min_θ [C_miss·P_miss(θ)·P_tar + C_fa·P_fa(θ)·(1−P_tar)] / min(C_miss·P_tar, C_fa·(1−P_tar)),
  normalised to [0, 1] and always reported with its P_tar.

One sort of all scores (O(n log n)) gives every sweep point, so millions of trials take seconds. Written by hand
because no installed library computes these definitions: scikit-learn has no EER (``roc_curve`` recipes pick a
nearest point or interpolate on a thinned curve), speechbrain's EER is slow on large lists and its minDCF is not
normalised (comparison in benchmarks/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from uattr.errors import ConfigError, DataError


@dataclass(frozen=True)
class ErrorRates:
    """The sweep: ``p_miss[i]`` and ``p_fa[i]`` at threshold ``thresholds[i]`` (first −∞, then distinct scores)."""

    thresholds: np.ndarray
    p_miss: np.ndarray
    p_fa: np.ndarray
    n_target: int
    n_nontarget: int


def error_rates(scores: np.ndarray, labels: np.ndarray) -> ErrorRates:
    """P_miss and P_fa at −∞ and at every distinct score; both classes must be present."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise DataError(f"scores {scores.shape} and labels {labels.shape} must be 1-D arrays of the same length")
    if not np.isfinite(scores).all():
        raise DataError(f"{np.count_nonzero(~np.isfinite(scores))} score(s) are NaN or inf")
    n_target = int(np.count_nonzero(labels))
    n_nontarget = labels.size - n_target
    if n_target == 0 or n_nontarget == 0:
        raise DataError(
            f"EER/minDCF need both classes: {n_target} target and {n_nontarget} nontarget trial(s)"
        )
    # Each class sorted on its own, then merged (timsort merges two sorted runs in linear time): measured 2-3×
    # faster than an argsort of all trials on 10M trials.
    targets = np.sort(scores[labels])
    merged = np.sort(np.concatenate((targets, np.sort(scores[~labels]))), kind="stable")
    # The last trial of each run of equal scores: thresholds sit there, so ties move together.
    run_ends = np.flatnonzero(np.append(merged[1:] != merged[:-1], True))
    thresholds = merged[run_ends]
    targets_below = np.cumsum(np.bincount(np.searchsorted(thresholds, targets), minlength=thresholds.size))
    nontargets_below = run_ends + 1 - targets_below
    return ErrorRates(
        thresholds=np.concatenate(([-np.inf], thresholds)),
        p_miss=np.concatenate(([0.0], targets_below / n_target)),
        p_fa=np.concatenate(([1.0], (n_nontarget - nontargets_below) / n_nontarget)),
        n_target=n_target,
        n_nontarget=n_nontarget,
    )


def equal_error_rate(rates: ErrorRates) -> float:
    """EER as a fraction: P_miss − P_fa rises from −1 to +1; interpolate linearly where it crosses zero."""
    gap = rates.p_miss - rates.p_fa
    after = int(np.argmax(gap >= 0))  # ≥ 1: the first point is (P_miss, P_fa) = (0, 1)
    before = after - 1
    step = -gap[before] / (gap[after] - gap[before])
    return float(rates.p_miss[before] + step * (rates.p_miss[after] - rates.p_miss[before]))


def min_dcf(rates: ErrorRates, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost for one P_tar (see the module docstring)."""
    if not 0.0 < p_target < 1.0:
        raise ConfigError(f"P_target must lie strictly between 0 and 1, got {p_target}")
    if not (c_miss > 0 and c_fa > 0 and math.isfinite(c_miss) and math.isfinite(c_fa)):
        raise ConfigError(f"C_miss and C_fa must be positive, got {c_miss} and {c_fa}")
    cost = c_miss * p_target * rates.p_miss + c_fa * (1.0 - p_target) * rates.p_fa
    return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def format_p_target(p_target: float) -> str:
    """The key a P_tar is reported under (``0.01`` → ``"0.01"``), shortest exact form."""
    return repr(float(p_target))


def sv_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    p_targets: Sequence[float] = (0.01, 0.05),
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> dict:
    """``{"eer": percent, "min_dcf": {"<P_tar>": value}, "n_target": n, "n_nontarget": m}``."""
    rates = error_rates(scores, labels)
    return {
        "eer": 100.0 * equal_error_rate(rates),
        "min_dcf": {format_p_target(p): min_dcf(rates, p, c_miss, c_fa) for p in p_targets},
        "n_target": rates.n_target,
        "n_nontarget": rates.n_nontarget,
    }
