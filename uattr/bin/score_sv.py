"""Score speaker-verification trials with the cosine similarity of embeddings (optional S-norm/AS-norm).

Trials are Kaldi ("enroll test target|nontarget" or "enroll test") or VoxCeleb ("1|0 enroll test") lists,
detected per file. Embeddings (kaldiio emb.scp) are centred with --mean-emb's mean vector if given, then
L2-normalised. With --enroll-spk2utt, the trials' enrol ids are models whose vector is the renormalised mean
of their enrolment utterances. AS-norm: s' = ½[(s−μ_e)/σ_e + (s−μ_t)/σ_t] over each side's top-K cohort
scores (S-norm: the whole cohort; --top-k is then ignored, with a warning). The cohort needs at least 2
speakers and should share no id with the trials (a warning names any it shares). Output: "enroll test score
[target|nontarget]" lines, in trial order. Definitions: docs/METRICS.md.

Example:
  uattr score-sv --trials data/test/trials --emb exp/joint/emb/speaker/test/emb.scp \\
      --out exp/joint/scores/sv_test/scores --norm asnorm --cohort dump/cohort/emb.scp --top-k 300
"""

from __future__ import annotations

import argparse
import logging

from uattr.errors import ConfigError
from uattr.scoring.embeddings import load_embedding_set, table_mean
from uattr.scoring.sv import ScoreNorm, enrolment_models, load_cohort, score_trials
from uattr.scoring.trials import read_trials, write_scores

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", required=True, help="trial list (Kaldi or VoxCeleb format)")
    parser.add_argument("--emb", required=True, help="test embeddings (emb.scp)")
    parser.add_argument("--out", required=True, help="score file to write")
    parser.add_argument("--enroll-emb", help="enrolment embeddings (default: --emb)")
    parser.add_argument("--enroll-spk2utt", help="model → enrolment utterances: enrol ids of the trials are models")
    parser.add_argument("--mean-emb", help="subtract the mean vector of this (training) table from every embedding")
    parser.add_argument("--norm", choices=("none", "snorm", "asnorm"), default="none",
                        help="score normalisation (default: none)")
    parser.add_argument("--cohort", help="cohort embeddings for --norm (emb.scp)")
    parser.add_argument("--cohort-utt2spk", help="group the cohort by speaker (one mean per speaker)")
    parser.add_argument("--top-k", type=int, help=f"AS-norm: top cohort scores per side (default {DEFAULT_TOP_K})")
    parser.add_argument("--skip-missing", action="store_true", help="drop trials whose ids have no embedding")


def main(args: argparse.Namespace) -> None:
    if args.norm != "none" and not args.cohort:
        raise ConfigError(f"--norm {args.norm} needs --cohort")
    if args.norm == "none" and (args.cohort or args.cohort_utt2spk):
        raise ConfigError("--cohort/--cohort-utt2spk given without --norm snorm|asnorm")
    if args.top_k is not None and args.norm != "asnorm":
        logger.warning("--top-k %d applies to --norm asnorm only; ignored with --norm %s", args.top_k, args.norm)
    trials = read_trials(args.trials)
    mean = table_mean(args.mean_emb) if args.mean_emb else None
    test = load_embedding_set(args.emb, mean)
    enroll = load_embedding_set(args.enroll_emb, mean) if args.enroll_emb else test
    if args.enroll_spk2utt:
        enroll = enrolment_models(args.enroll_spk2utt, enroll, skip_missing=args.skip_missing)
    norm = None
    if args.norm != "none":
        top_k = None
        if args.norm == "asnorm":
            top_k = DEFAULT_TOP_K if args.top_k is None else args.top_k
        norm = ScoreNorm(load_cohort(args.cohort, args.cohort_utt2spk, mean), top_k)
    scores = score_trials(trials, test, enroll, norm=norm, skip_missing=args.skip_missing)
    write_scores(args.out, scores)
    logger.info("%s: %d trial scores (%s)", args.out, len(scores), args.norm)
