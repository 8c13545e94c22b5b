"""Prepare FLEURS for retrieval: speech of each language against English text and English speech.

Reads <root>/<lang>/{dev,test}.tsv (google/fleurs: id, file, raw_transcription, transcription, tokens,
num_samples, gender; no header) and <root>/<lang>/audio/<split>/*.wav. Writes per split a data dir per
language (<split>_<lang>), the English sentence gallery (<split>_<pivot>_text, one entry per sentence id), the
maps <split>_<lang>/query2ref_text (recording → sentence) and query2ref_speech (recording → every English
recording of the sentence), and OUT/retrieval_tasks (an s2t and an s2s task per language and split).

Example:
  uattr prepare-fleurs --root /corpora/fleurs --out data --languages fr_fr de_de it_it
"""

from __future__ import annotations

import argparse

from uattr.corpora.fleurs import SPLITS, prepare_fleurs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="FLEURS folder holding one folder per language (e.g. fr_fr)")
    parser.add_argument("--out", default="data", help="where the data dirs go (default: data)")
    parser.add_argument("--languages", nargs="+", help="query languages (default: every folder with the lists)")
    parser.add_argument("--pivot", default="en_us", help="the gallery language (default: en_us)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to prepare (default: dev test)")


def main(args: argparse.Namespace) -> None:
    prepare_fleurs(args.root, args.out, languages=args.languages, pivot=args.pivot, splits=args.splits)
