"""Write a balanced speaker-verification trial list (Kaldi "enroll test target|nontarget") for a data dir.

A target pairs two utterances of one speaker (utt2spk), a nontarget two of different speakers. By default every
target pair is a trial, with as many nontargets drawn uniformly; --num-target samples that many targets,
--num-nontarget sets the nontargets' number. With utt2lang, --cross-language-share of each kind pair two
languages (of the nontargets the share the targets reached, so that crossing languages says nothing of the
label). --text-independent leaves out every pair of two utterances of one text (the data dir's `text`, or
--text-field): where speakers read from one pool of sentences, such pairs are nearly all nontargets, and a
speaker embedding that keeps some content would score them high. The list is the same for the same --seed and
is written atomically. Definitions: uattr/corpora/trials.py.

  uattr make-trials data/test data/test/trials
  uattr make-trials --num-target 2000 --num-nontarget 20000 --cross-language-share 0.3 --text-independent \\
      data/dev data/dev/trials
"""

from __future__ import annotations

import argparse
import logging

from uattr.corpora.trials import balanced_trials, make_trials, pair_counts, write_trials
from uattr.data.kaldi import DataDir
from uattr.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="data dir with utt2spk (and utt2lang, text where the options need them)")
    parser.add_argument("out", help="trial list to write")
    parser.add_argument("--num-target", type=int, help="target trials to sample (default: every target pair)")
    parser.add_argument("--num-nontarget", type=int, help="nontarget trials (default: as many as the targets)")
    parser.add_argument("--cross-language-share", type=float, default=0.0,
                        help="share of each kind that pairs two languages of utt2lang (default: 0)")
    parser.add_argument("--text-independent", action="store_true",
                        help="pair no two utterances of the same text (see --text-field)")
    parser.add_argument("--text-field", default="text", help="the data dir's table of texts (default: text)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the draw (default: 0)")


def _per_utterance(data: DataDir, name: str, table: dict[str, str]) -> dict[str, str]:
    """``table`` restricted to the data dir's utterances, every one of which it must cover."""
    missing = [utt for utt in data.utt_ids if utt not in table]
    if missing:
        raise DataError(f"{data.path / name}: no entry for {len(missing)} utterance(s) of the data dir, "
                        f"e.g. '{missing[0]}'")
    return {utt: table[utt] for utt in data.utt_ids}


def main(args: argparse.Namespace) -> None:
    for option in ("num_target", "num_nontarget"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if not 0.0 <= args.cross_language_share <= 1.0:  # named as the option, before any table is read
        raise ConfigError(f"--cross-language-share must be in [0, 1], got {args.cross_language_share}")
    data = DataDir.load(args.data_dir, durations=False)
    if data.utt2spk is None:
        raise DataError(f"{data.path / 'utt2spk'}: no such file (a trial list needs each utterance's speaker)")
    utt2spk = _per_utterance(data, "utt2spk", data.utt2spk)
    if data.utt2lang is not None:
        utt2lang = _per_utterance(data, "utt2lang", data.utt2lang)
    elif args.cross_language_share > 0:
        raise DataError(f"{data.path / 'utt2lang'}: no such file (--cross-language-share needs each utterance's "
                        f"language)")
    else:
        utt2lang = dict.fromkeys(utt2spk, "")  # one language: no pair crosses languages
    utt2text = _per_utterance(data, args.text_field, data.table(args.text_field)) if args.text_independent else None

    options = {"seed": args.seed, "cross_language_share": args.cross_language_share, "utt2text": utt2text}
    if args.num_nontarget is None:
        trials = balanced_trials(utt2spk, utt2lang, limit=args.num_target, **options)
    else:
        counts = pair_counts(utt2spk, utt2lang, utt2text)
        every_target = counts[True, False] + counts[True, True]
        num_target = every_target if args.num_target is None else args.num_target
        trials = make_trials(utt2spk, utt2lang, num_target=num_target, num_nontarget=args.num_nontarget, **options)
    targets = sum(label == "target" for _, _, label in trials)
    # balanced_trials gives what exists without a word; with --num-nontarget, make_trials warns of a shortfall itself
    if args.num_nontarget is None and args.num_target is not None and targets < args.num_target:
        logger.warning("only %d target trials exist (%d asked for)", targets, args.num_target)
    if not targets:
        raise DataError(f"{data.path}: no speaker has two utterances{' of two texts' if utt2text else ''}, "
                        f"so there is no target trial")
    write_trials(args.out, trials)
    logger.info("%s: %d target and %d nontarget trials", args.out, targets, len(trials) - targets)
