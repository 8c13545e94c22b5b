"""Write utt2dur (seconds) and utt2num_samples of a data dir from its audio headers.

Plain audio files are only opened for their header; ark:offset and pipe entries are decoded. With segments,
durations are the segment lengths (clipped to the recording). If both files already list exactly the dir's
utterances nothing is done, unless --force.
"""

from __future__ import annotations

import argparse

from uattr.data.ops import compute_durations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="the data dir")
    parser.add_argument("--force", action="store_true", help="recompute even if utt2dur is complete")
    parser.add_argument("--nj", type=int, default=8, help="recordings probed in parallel (threads, default 8)")


def main(args: argparse.Namespace) -> None:
    compute_durations(args.data_dir, force=args.force, num_threads=args.nj)
