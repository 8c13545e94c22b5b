"""Speaker-verification scoring: cosine scores of trials, enrolment models, score normalisation.

- Embeddings are optionally centred (the mean vector of a training table subtracted from every raw vector),
  then L2-normalised, so a score is the cosine similarity ``e·t``.
- Enrolment by utterance (trial enrol ids are utterances) or by model (``spk2utt``: a model's vector is the
  mean of its enrolment utterances' unit vectors, renormalised).
- Score normalisation (definitions: docs/METRICS.md), with statistics over a cohort of at least 2 speakers (one
  vector per speaker, the renormalised mean of its utterances, or one cohort entry per speaker):

      AS-norm: s' = ½[(s − μ_e)/σ_e + (s − μ_t)/σ_t]

  μ_e, σ_e: mean and standard deviation (population, ddof = 0) of the enrol side's top-K cohort scores, and
  μ_t, σ_t the same for the test side; S-norm uses the whole cohort. Top-K *values* are unique even with
  tied scores, so the result is deterministic. A cohort must be disjoint from the trials: a trial utterance in
  it scores 1 against itself, which shifts its side's μ and σ; such overlap is reported as a warning.

Scoring is vectorised: ids are resolved to matrix rows once, and trials are scored in chunks of row-wise dot
products, cohort statistics once per distinct enrol/test id.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Collection

import numpy as np

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, read_table
from uattr.scoring.embeddings import EmbeddingSet, TableMean, average_groups, describe_ids, load_embedding_set
from uattr.scoring.trials import Scores, Trials

logger = logging.getLogger(__name__)

TRIAL_CHUNK = 200_000  # trials per gathered block: 2 × 200k × D float32, tens of MB
SCORE_BLOCK_ELEMENTS = 1 << 23  # scores per (ids × cohort) block: 64 MB of float64


@dataclass(frozen=True)
class ScoreNorm:
    """A cohort and K: the K highest cohort scores of each side (AS-norm), or all of them (S-norm: None)."""

    cohort: EmbeddingSet
    top_k: int | None = None

    def __post_init__(self) -> None:
        if len(self.cohort) < 2:
            raise ConfigError(
                f"score normalisation needs a cohort of at least 2 speakers (a standard deviation); "
                f"{self.cohort.source} has {len(self.cohort)}"
            )
        if self.top_k is not None and self.top_k < 2:
            raise ConfigError(f"AS-norm top-K must be at least 2 (a standard deviation), got {self.top_k}")


def trial_scores(
    enroll: EmbeddingSet, enroll_rows: np.ndarray, test: EmbeddingSet, test_rows: np.ndarray
) -> np.ndarray:
    """Cosine score of each trial (enroll row ``enroll_rows[i]`` vs test row ``test_rows[i]``), as float64."""
    if enroll.dim != test.dim:
        raise DataError(
            f"enrolment embeddings ({enroll.source}) are {enroll.dim}-d, test ({test.source}) {test.dim}-d"
        )
    scores = np.empty(enroll_rows.size, dtype=np.float64)
    for start in range(0, enroll_rows.size, TRIAL_CHUNK):
        block = slice(start, start + TRIAL_CHUNK)
        scores[block] = np.einsum("ij,ij->i", enroll.vectors[enroll_rows[block]], test.vectors[test_rows[block]])
    return scores


def cohort_statistics(vectors: np.ndarray, cohort: np.ndarray, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of each vector's cohort scores (its ``top_k`` highest, or all)."""
    size = cohort.shape[0]
    keep = size if top_k is None else min(top_k, size)
    means = np.empty(len(vectors))
    stds = np.empty(len(vectors))
    rows_per_block = max(1, SCORE_BLOCK_ELEMENTS // size)
    for start in range(0, len(vectors), rows_per_block):
        block = slice(start, start + rows_per_block)
        scores = vectors[block].astype(np.float64) @ cohort.T.astype(np.float64)  # 1/σ amplifies float32 error
        if keep < size:
            scores = np.partition(scores, size - keep, axis=1)[:, size - keep :]
        means[block] = scores.mean(axis=1)
        stds[block] = scores.std(axis=1)
    return means, stds


def _side_statistics(embeddings: EmbeddingSet, rows: np.ndarray, norm: ScoreNorm) -> tuple[np.ndarray, np.ndarray]:
    """Cohort mean and deviation for each trial's side, computed once per distinct id."""
    distinct, inverse = np.unique(rows, return_inverse=True)
    means, stds = cohort_statistics(embeddings.vectors[distinct], norm.cohort.vectors, norm.top_k)
    flat = np.flatnonzero(stds == 0)
    if flat.size:
        name = f"{embeddings.source}: '{embeddings.ids[distinct[flat[0]]]}'"
        if norm.top_k is not None and norm.top_k < len(norm.cohort):
            raise DataError(
                f"{name}: its {norm.top_k} highest scores against the cohort {norm.cohort.source} are all equal; "
                "cannot normalise (a larger --top-k may help)"
            )
        raise DataError(f"{name} scores the same against every member of the cohort {norm.cohort.source}; "
                        "cannot normalise")
    return means[inverse], stds[inverse]


def warn_cohort_overlap(cohort: EmbeddingSet, trial_utterances: Collection[str]) -> None:
    """Warn when cohort utterances are trial utterances (behind speaker means and enrolment models too): such a
    cohort shifts the normalised scores of those trials."""
    shared = sorted(cohort.utterances(range(len(cohort))) & set(trial_utterances))
    if shared:
        logger.warning(
            "the score-normalisation cohort %s contains %d trial id(s) (enrol/test): %s; "
            "use a cohort disjoint from the trials",
            cohort.source, len(shared), describe_ids(shared, 5),
        )


def normalise_scores(
    scores: np.ndarray,
    enroll: EmbeddingSet,
    enroll_rows: np.ndarray,
    test: EmbeddingSet,
    test_rows: np.ndarray,
    norm: ScoreNorm,
) -> np.ndarray:
    """S-norm / AS-norm of trial scores (formula in the module docstring)."""
    if norm.cohort.dim != enroll.dim:
        raise DataError(f"cohort ({norm.cohort.source}) is {norm.cohort.dim}-d, embeddings {enroll.dim}-d")
    trial_utterances = enroll.utterances(np.unique(enroll_rows).tolist())
    warn_cohort_overlap(norm.cohort, trial_utterances | test.utterances(np.unique(test_rows).tolist()))
    if norm.top_k is not None and norm.top_k > len(norm.cohort):
        logger.warning("AS-norm top-K %d exceeds the cohort's %d speakers: using all", norm.top_k, len(norm.cohort))
    mean_e, std_e = _side_statistics(enroll, enroll_rows, norm)
    mean_t, std_t = _side_statistics(test, test_rows, norm)
    return 0.5 * ((scores - mean_e) / std_e + (scores - mean_t) / std_t)


def _describe_missing(
    trials: Trials, enroll: EmbeddingSet, enroll_rows: np.ndarray, test: EmbeddingSet, test_rows: np.ndarray
) -> str:
    """Which trials (count, first line) name which ids that have no embedding."""
    missing = np.flatnonzero((enroll_rows < 0) | (test_rows < 0))
    unknown = list(dict.fromkeys(
        [trials.enroll[i] for i in np.flatnonzero(enroll_rows < 0)]
        + [trials.test[i] for i in np.flatnonzero(test_rows < 0)]
    ))
    tables = test.source if enroll is test else f"{enroll.source} / {test.source}"
    return (
        f"{trials.path}: {missing.size} trial(s) (first on line {trials.lines[missing[0]]}) name {len(unknown)} "
        f"id(s) with no embedding in {tables}: {describe_ids(unknown)}"
    )


def score_trials(
    trials: Trials,
    test: EmbeddingSet,
    enroll: EmbeddingSet | None = None,
    norm: ScoreNorm | None = None,
    skip_missing: bool = False,
) -> Scores:
    """Score every trial (enrol side from ``enroll``, default ``test``); trials naming unknown ids are an error
    listing them, or dropped with a logged count when ``skip_missing``."""
    enroll = test if enroll is None else enroll
    enroll_rows = enroll.rows(trials.enroll)
    test_rows = test.rows(trials.test)
    keep = np.flatnonzero((enroll_rows >= 0) & (test_rows >= 0))
    complete = keep.size == len(trials)
    if not complete:
        message = _describe_missing(trials, enroll, enroll_rows, test, test_rows)
        if not skip_missing:
            raise DataError(message + "; --skip-missing drops such trials")
        if keep.size == 0:
            raise DataError(message + "; no trial left to score")
        logger.warning("skipping %s", message)
        enroll_rows, test_rows = enroll_rows[keep], test_rows[keep]
    scores = trial_scores(enroll, enroll_rows, test, test_rows)
    if norm is not None:
        scores = normalise_scores(scores, enroll, enroll_rows, test, test_rows, norm)
    return Scores(
        enroll=trials.enroll if complete else [trials.enroll[i] for i in keep],
        test=trials.test if complete else [trials.test[i] for i in keep],
        scores=scores,
        labels=None if trials.labels is None else trials.labels[keep],
    )


def enrolment_models(
    spk2utt: PathLike, utterances: EmbeddingSet, skip_missing: bool = False
) -> EmbeddingSet:
    """One vector per model of ``spk2utt`` (``model utt1 utt2 ...``): the renormalised mean of its utterances.

    Utterances without an embedding are an error listing them, or dropped when ``skip_missing`` (a model left
    with none is dropped too, and its trials are then reported as missing).
    """
    groups = {model: value.split() for model, value in read_table(spk2utt).items()}
    unknown = [utt for members in groups.values() for utt in members if utt not in utterances.index]
    if unknown:
        message = f"{spk2utt}: {len(unknown)} enrolment utterance(s) with no embedding in {utterances.source}"
        if not skip_missing:
            raise DataError(f"{message}: {describe_ids(unknown)}; --skip-missing drops them")
        logger.warning("%s: dropped", message)
        groups = {model: [u for u in members if u in utterances.index] for model, members in groups.items()}
        groups = {model: members for model, members in groups.items() if members}
    return average_groups(utterances, groups, source=str(spk2utt))


def load_cohort(scp: PathLike, utt2spk: PathLike | None = None, mean: TableMean | None = None) -> EmbeddingSet:
    """The cohort: one vector per speaker (mean of its utterances via ``utt2spk``), or each entry a speaker."""
    entries = load_embedding_set(scp, mean)
    if utt2spk is None:
        return entries
    speaker_of = read_table(utt2spk)
    unassigned = [key for key in entries.ids if key not in speaker_of]
    if unassigned:
        raise DataError(
            f"{utt2spk}: no speaker for {len(unassigned)} cohort id(s) of {scp}: {describe_ids(unassigned)}"
        )
    groups: dict[str, list[str]] = defaultdict(list)
    for key in entries.ids:
        groups[speaker_of[key]].append(key)
    logger.info("cohort: %d speakers from %d embeddings", len(groups), len(entries))
    return average_groups(entries, groups, source=f"{scp} (speakers of {utt2spk})")
