"""Prepare mTEDx for speech→text retrieval: talk recordings cut into translated segments.

Reads <root>/<src>-<tgt>/data/<split>/txt/<split>.{yaml,<src>,<tgt>} and .../wav/<talk>.flac (openslr.org/100).
Writes per pair and split the queries <split>_<src>_<tgt> (wav.scp per talk, segments from the YAML offsets
and durations, text, text.<tgt>, utt2spk, utt2lang), the gallery <split>_<src>_<tgt>_text (text = the
translation), the map <split>_<src>_<tgt>/query2ref and OUT/retrieval_tasks.

Example:
  uattr prepare-mtedx --root /corpora/mtedx --out data --pairs it-en es-en
"""

from __future__ import annotations

import argparse

from uattr.corpora.mtedx import SPLITS, prepare_mtedx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="mTEDx folder holding <src>-<tgt>/ folders")
    parser.add_argument("--out", default="data", help="where the data dirs go (default: data)")
    parser.add_argument("--pairs", nargs="+", default=["it-en"], help="language pairs (default: it-en, as the paper)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to prepare (default: valid test)")


def main(args: argparse.Namespace) -> None:
    prepare_mtedx(args.root, args.out, pairs=args.pairs, splits=args.splits)
