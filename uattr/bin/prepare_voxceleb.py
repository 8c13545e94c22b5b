"""Prepare VoxCeleb1 for speaker verification: data dirs, Kaldi trials (O, E, H) and an AS-norm cohort.

Reads <root>/wav/idXXXXX/<video>/<nnnnn>.wav (also <root>/*/wav/..., for dev and test unpacked apart) and the
official cleaned lists veri_test2.txt (O), list_test_all2.txt (E), list_test_hard2.txt (H) from --lists-dir
(default: the root). Writes OUT/voxceleb1_test (the O speakers) with trials_o, OUT/voxceleb1 (all speakers)
with trials_e and trials_h, and OUT/voxceleb1_cohort (--cohort-per-speaker utterances of every speaker outside
the O list). Utterance ids: id10270/x6uYqmx31kE/00001.wav → id10270-x6uYqmx31kE-00001.

Example:
  uattr prepare-voxceleb --root /corpora/VoxCeleb1 --out data
"""

from __future__ import annotations

import argparse

from uattr.corpora.voxceleb import TRIAL_LISTS, prepare_voxceleb1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="VoxCeleb1 folder (holding wav/)")
    parser.add_argument("--out", default="data", help="where the data dirs go (default: data)")
    parser.add_argument("--lists-dir", help="folder of the official trial lists (default: --root)")
    parser.add_argument(
        "--lists", nargs="+", default=list(TRIAL_LISTS), choices=list(TRIAL_LISTS),
        help="trial lists to convert (default: o e h; o is required)",
    )
    parser.add_argument(
        "--cohort-per-speaker", type=int, default=5,
        help="AS-norm cohort: utterances per speaker outside the O list (default 5; 0: no cohort)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the cohort's utterance choice (default 0)")


def main(args: argparse.Namespace) -> None:
    prepare_voxceleb1(
        args.root, args.out, lists=args.lists, lists_dir=args.lists_dir,
        cohort_per_speaker=args.cohort_per_speaker, seed=args.seed,
    )
