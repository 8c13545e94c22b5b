"""Combine several data dirs into one (Kaldi's argument order: destination first).

  uattr combine-data data/train_all data/train_a data/train_b

An utterance id found in two sources is an error; recording and speaker tables may repeat an id with the same
value. A file missing from some sources is left out with a warning. When only some sources have segments, the
others get whole-recording segments (utt utt 0 -1). The destination replaces an earlier data dir there whole
(once complete), as Kaldi's script removes it first; anything else there, or a source, is refused.
"""

from __future__ import annotations

import argparse

from uattr.data.ops import combine_data_dirs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dst", help="output data dir")
    parser.add_argument("srcs", nargs="+", help="source data dirs")


def main(args: argparse.Namespace) -> None:
    combine_data_dirs(args.dst, args.srcs)
