"""Split a data dir into N parts for parallel jobs: DIR/splitN/{1..N}/ (by speaker) or DIR/splitNutt/.

By default every speaker stays within one part (needs utt2spk); --per-utt splits by utterance, as Kaldi's
split_data.sh --per-utt does (into DIR/splitNutt/). Parts are contiguous in sorted order and balanced by
number of utterances. A job then reads DIR/splitN/JOB; each part replaces the one of an earlier split whole.
"""

from __future__ import annotations

import argparse

from uattr.data.ops import split_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="the data dir to split")
    parser.add_argument("num_parts", type=int, help="number of parts")
    parser.add_argument("--per-utt", action="store_true", help="split by utterance rather than by speaker")


def main(args: argparse.Namespace) -> None:
    split_data_dir(args.data_dir, args.num_parts, per_utterance=args.per_utt)
