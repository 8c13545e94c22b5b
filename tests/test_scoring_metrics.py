"""EER and minDCF against brute force (every threshold), Kaldi's compute-eer, and edge cases."""

import numpy as np
import pytest

from uattr.errors import ConfigError, DataError
from uattr.scoring.metrics import equal_error_rate, error_rates, min_dcf, sv_metrics


def brute_force_points(scores, labels):
    """(P_miss, P_fa) at −∞ and at every distinct score, counted directly for each threshold."""
    targets, nontargets = scores[labels], scores[~labels]
    points = []
    for threshold in np.concatenate(([-np.inf], np.unique(scores))):
        points.append((np.mean(targets <= threshold), np.mean(nontargets > threshold)))
    return np.array(points)


def brute_force_eer(scores, labels):
    """Walk the threshold list until P_miss ≥ P_fa, then intersect that segment with P_miss = P_fa."""
    points = brute_force_points(scores, labels)
    for (miss0, fa0), (miss1, fa1) in zip(points[:-1], points[1:]):
        if miss1 >= fa1:
            # Segment (miss0, fa0) → (miss1, fa1) crosses the diagonal at fraction t.
            t = (fa0 - miss0) / ((miss1 - miss0) - (fa1 - fa0))
            return miss0 + t * (miss1 - miss0)
    raise AssertionError("no crossing")


def brute_force_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    points = brute_force_points(scores, labels)
    costs = [c_miss * p_target * miss + c_fa * (1 - p_target) * fa for miss, fa in points]
    return min(costs) / min(c_miss * p_target, c_fa * (1 - p_target))


def kaldi_compute_eer(target_scores, nontarget_scores):
    """Kaldi's ivectorbin/compute-eer.cc ComputeEer, line by line (returns a fraction)."""
    target = sorted(target_scores)
    nontarget = sorted(nontarget_scores)
    target_size, nontarget_size = len(target), len(nontarget)
    target_position = 0
    while target_position + 1 < target_size:
        nontarget_n = int(nontarget_size * target_position * 1.0 / target_size)
        nontarget_position = max(nontarget_size - 1 - nontarget_n, 0)
        if nontarget[nontarget_position] < target[target_position]:
            break
        target_position += 1
    return target_position / target_size


def random_trials(rng, n_target, n_nontarget, separation=1.5, decimals=None):
    scores = np.concatenate((rng.normal(separation, 1, n_target), rng.normal(0, 1, n_nontarget)))
    if decimals is not None:
        scores = np.round(scores, decimals)
    labels = np.concatenate((np.ones(n_target, bool), np.zeros(n_nontarget, bool)))
    order = rng.permutation(scores.size)
    return scores[order], labels[order]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [None, 1, 0])  # continuous, heavily tied, very heavily tied
def test_eer_and_min_dcf_match_brute_force(seed, decimals):
    rng = np.random.default_rng(seed)
    scores, labels = random_trials(rng, rng.integers(20, 300), rng.integers(50, 700), decimals=decimals)
    rates = error_rates(scores, labels)
    assert equal_error_rate(rates) == pytest.approx(brute_force_eer(scores, labels), abs=1e-12)
    for p_target in (0.01, 0.05, 0.5):
        assert min_dcf(rates, p_target) == pytest.approx(brute_force_min_dcf(scores, labels, p_target), abs=1e-12)
    assert min_dcf(rates, 0.05, c_miss=10, c_fa=1) == pytest.approx(
        brute_force_min_dcf(scores, labels, 0.05, c_miss=10, c_fa=1), abs=1e-12
    )


def test_ties_move_together_whatever_the_trial_order():
    rng = np.random.default_rng(7)
    scores, labels = random_trials(rng, 200, 800, separation=0.8, decimals=0)
    reference = sv_metrics(scores, labels)
    for _ in range(5):
        order = rng.permutation(scores.size)
        assert sv_metrics(scores[order], labels[order]) == reference


def test_all_tied_scores_give_fifty_percent():
    labels = np.array([True] * 10 + [False] * 30)
    assert 100 * equal_error_rate(error_rates(np.zeros(40), labels)) == pytest.approx(50.0)


@pytest.mark.parametrize("seed", range(10))
def test_agrees_with_kaldi_compute_eer_within_one_over_n(seed):
    rng = np.random.default_rng(100 + seed)
    n_target, n_nontarget = int(rng.integers(10, 400)), int(rng.integers(10, 3000))
    scores, labels = random_trials(rng, n_target, n_nontarget, separation=rng.uniform(0.5, 3))
    ours = equal_error_rate(error_rates(scores, labels))
    kaldi = kaldi_compute_eer(scores[labels], scores[~labels])
    assert abs(ours - kaldi) <= 1 / min(n_target, n_nontarget) + 1e-12


def test_separable_scores_give_zero():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([False, False, False, True, True, True])
    metrics = sv_metrics(scores, labels)
    assert metrics["eer"] == 0.0
    assert metrics["min_dcf"] == {"0.01": 0.0, "0.05": 0.0}
    assert (metrics["n_target"], metrics["n_nontarget"]) == (3, 3)


def test_reversed_scores_give_hundred_percent():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([True, True, True, False, False, False])
    metrics = sv_metrics(scores, labels)
    assert metrics["eer"] == pytest.approx(100.0)
    assert metrics["min_dcf"]["0.01"] == pytest.approx(1.0)


@pytest.mark.parametrize("labels", [np.ones(5, bool), np.zeros(5, bool)])
def test_one_class_empty_is_a_clear_error(labels):
    with pytest.raises(DataError, match="both classes"):
        sv_metrics(np.arange(5.0), labels)


def test_invalid_inputs():
    with pytest.raises(DataError, match="NaN"):
        error_rates(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(DataError, match="same length"):
        error_rates(np.zeros(3), np.zeros(2, bool))
    rates = error_rates(np.array([0.0, 1.0]), np.array([False, True]))
    with pytest.raises(ConfigError, match="P_target"):
        min_dcf(rates, 1.0)
    with pytest.raises(ConfigError, match="C_miss and C_fa must be positive, got nan and 1.0"):
        min_dcf(rates, 0.01, c_miss=float("nan"))


def test_p_target_keys_are_labelled_exactly():
    rng = np.random.default_rng(3)
    scores, labels = random_trials(rng, 50, 50)
    assert list(sv_metrics(scores, labels, p_targets=[0.01, 0.005, 0.1])["min_dcf"]) == ["0.01", "0.005", "0.1"]
