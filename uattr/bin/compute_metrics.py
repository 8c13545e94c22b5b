"""Compute EER and normalised minDCF of a speaker-verification score file.

Definitions: trials with score ≤ θ are rejected, θ sweeps every distinct score; EER (%) is where P_miss = P_fa,
linearly interpolated between the bracketing sweep points (tied scores move together); minDCF =
min_θ [C_miss·P_miss·P_tar + C_fa·P_fa·(1−P_tar)] / min(C_miss·P_tar, C_fa·(1−P_tar)), one per P_tar.
Labels come from the score file's 4th column, or from --trials joined by (enroll, test).

With --utt2lang, same-language and cross-language trials (the two sides in one language or not) are also scored
on their own, as "per_condition": {"same-language": {...}, "cross-language": {...}}; a kind that lacks target or
nontarget trials is left out, with a warning.

--json prints one object {"eer": %, "min_dcf": {"<P_tar>": x}, "n_target": n, "n_nontarget": m}; --out writes it
with a "meta" entry (task, --system/--test-set/--condition) for `uattr results`.

Example:
  uattr compute-metrics exp/joint/scores/sv_test/scores --p-target 0.01 0.05 --out exp/joint/scores/sv_test/metrics.json
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from uattr.errors import DataError
from uattr.fileio import read_table
from uattr.scoring.metrics import sv_metrics
from uattr.scoring.results import add_metrics_output_arguments, write_metrics
from uattr.scoring.trials import Scores, attach_labels, read_scores, read_trials, same_language

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scores", help="score file: enroll test score [target|nontarget]")
    parser.add_argument("--trials", help="labelled trial list, used when the score file has no labels")
    parser.add_argument("--p-target", type=float, nargs="+", default=[0.01, 0.05],
                        help="P_tar values of minDCF (default: 0.01 0.05)")
    parser.add_argument("--c-miss", type=float, default=1.0, help="cost of a miss (default 1)")
    parser.add_argument("--c-fa", type=float, default=1.0, help="cost of a false alarm (default 1)")
    parser.add_argument("--utt2lang", help="id → language: also score same- and cross-language trials apart")
    add_metrics_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    scores = read_scores(args.scores)
    if scores.labels is None:
        if not args.trials:
            raise DataError(f"{args.scores}: the score file has no labels; give --trials")
        scores = attach_labels(scores, read_trials(args.trials))
    elif args.trials:
        logger.info("%s carries labels; --trials %s is not needed", args.scores, args.trials)
    try:
        metrics = sv_metrics(scores.scores, scores.labels, args.p_target, args.c_miss, args.c_fa)
    except DataError as error:  # e.g. one class only: say which score file
        raise DataError(f"{args.scores}: {error}") from None
    if args.utt2lang:
        metrics["per_condition"] = _language_conditions(scores, args)
    if args.out:
        write_metrics(args.out, metrics, "sv", args, scores=str(args.scores), c_miss=args.c_miss, c_fa=args.c_fa)
    if args.json:
        print(json.dumps(metrics))
        return
    print(f"EER: {metrics['eer']:.4f} %")
    for p_target, value in metrics["min_dcf"].items():
        print(f"minDCF (P_tar={p_target}, C_miss={args.c_miss:g}, C_fa={args.c_fa:g}): {value:.4f}")
    print(f"trials: {metrics['n_target']} target, {metrics['n_nontarget']} nontarget")
    for condition, values in metrics.get("per_condition", {}).items():
        print(f"  {condition}: EER {values['eer']:.4f} % ({values['n_target']} target, {values['n_nontarget']} "
              "nontarget)")


def _language_conditions(scores: Scores, args: argparse.Namespace) -> dict[str, dict]:
    """The metrics of the same-language and of the cross-language trials, each kind that has both classes."""
    same = same_language(scores, read_table(args.utt2lang), args.utt2lang)
    conditions = {}
    for name, chosen in (("same-language", same), ("cross-language", ~same)):
        labels = scores.labels[chosen]
        if labels.all() or not labels.any():  # also when there is no such trial
            logger.warning("%s: its %s trials are %d target and %d nontarget: not scored apart", args.scores, name,
                           np.count_nonzero(labels), np.count_nonzero(~labels))
            continue
        conditions[name] = sv_metrics(scores.scores[chosen], labels, args.p_target, args.c_miss, args.c_fa)
    return conditions
