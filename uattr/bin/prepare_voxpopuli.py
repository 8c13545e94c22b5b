"""Prepare VoxPopuli interpretation pairs for speech→speech retrieval (source speech → interpreted speech).

Reads what the release's scripts (voxpopuli.get_asr_data, then get_s2s_data) write under
<root>/transcribed_data/<src>/: asr_<split>.tsv, <year>/<id>.ogg, <tgt>/s2s.tsv (or, with --annotated-target,
the <tgt>/s2s_ref.tsv that get_s2s_data --use-annotated-target writes) and <tgt>/<year>/<tgt_id>.ogg.
A pair belongs to the split of its source segment. Writes per pair and split the queries
<split>_<src>_<tgt>_source, the gallery <split>_<src>_<tgt>_target, the map <split>_<src>_<tgt>_source/query2ref
and OUT/retrieval_tasks.

Example:
  uattr prepare-voxpopuli --root /corpora/voxpopuli --out data --pairs fr-en
"""

from __future__ import annotations

import argparse

from uattr.corpora.voxpopuli import SPLITS, prepare_voxpopuli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="VoxPopuli folder (holding transcribed_data/)")
    parser.add_argument("--out", default="data", help="where the data dirs go (default: data)")
    parser.add_argument("--pairs", nargs="+", default=["fr-en"], help="pairs (default: fr-en, as the paper)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to prepare (default: dev test)")
    parser.add_argument("--annotated-target", action="store_true",
                        help="read <tgt>/s2s_ref.tsv (get_s2s_data --use-annotated-target; target languages en, fr, "
                             "es): the galleries get the targets' transcripts as text")


def main(args: argparse.Namespace) -> None:
    prepare_voxpopuli(
        args.root, args.out, pairs=args.pairs, splits=args.splits, annotated_target=args.annotated_target
    )
