"""Prepare Common Voice (the paper's training set): train/dev/test data dirs over any list of languages.

Reads a release folder <root>/<lang>/{validated,dev,test}.tsv, clips/*.mp3 and (when present)
clip_durations.tsv. train = validated minus clips of dev/test speakers and sentences (--keep-held-out keeps
them: only the dev/test clips themselves are left out), minus clips of --max-seconds or more; dev and test =
up to N clips per language of dev.tsv/test.tsv. Each dir gets wav.scp (mp3 paths), text, utt2spk (shortened
client_id), spk2utt, utt2lang and utt2dur; dev and test also get a query2ref map for speech→text retrieval and
speaker-verification trials (every same-speaker pair, at most --trials-per-kind, and as many others);
OUT/retrieval_tasks lists the dev and test retrieval checks.

Example:
  uattr prepare-commonvoice --root /corpora/cv-corpus-19.0-2024-09-13 --out data --languages fr de it --nj 16
"""

from __future__ import annotations

import argparse

from uattr.corpora.commonvoice import prepare_commonvoice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="the release folder holding one folder per language")
    parser.add_argument("--out", default="data", help="where train/, dev/ and test/ go (default: data)")
    parser.add_argument("--languages", nargs="+", help="language folders (default: every one with validated.tsv)")
    parser.add_argument(
        "--max-seconds", type=float, default=10.0,
        help="drop training clips of this many seconds or more (default 10, as the paper; 0: keep all)",
    )
    for split in ("dev", "test"):
        parser.add_argument(f"--{split}-per-language", type=int, default=100,
                            help=f"{split} clips per language (default 100; 0: all)")
    parser.add_argument(
        "--keep-held-out", action="store_true",
        help="train on validated clips of dev/test speakers and sentences too (the literal 'validated' set)",
    )
    parser.add_argument("--trials-per-kind", type=int, default=10_000,
                        help="at most this many target (and as many nontarget) dev/test trials (default 10000)")
    parser.add_argument("--nj", type=int, default=4,
                        help="threads reading clip headers when durations are needed (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test subsampling (default 0)")


def main(args: argparse.Namespace) -> None:
    prepare_commonvoice(
        args.root, args.out, languages=args.languages, max_seconds=args.max_seconds or None,
        dev_per_language=args.dev_per_language, test_per_language=args.test_per_language,
        exclude_held_out=not args.keep_held_out, trials_per_kind=args.trials_per_kind, nj=args.nj, seed=args.seed,
    )
