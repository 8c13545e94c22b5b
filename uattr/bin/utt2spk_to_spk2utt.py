"""Write spk2utt from utt2spk (to the spk2utt file given, atomically, or to standard output).

  uattr utt2spk-to-spk2utt data/train/utt2spk data/train/spk2utt
  uattr utt2spk-to-spk2utt data/train/utt2spk > data/train/spk2utt
"""

from __future__ import annotations

import argparse

from uattr.data.kaldi import ONE_TOKEN_FILES, format_value, read_token_table, utt2spk_to_spk2utt
from uattr.fileio import write_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("utt2spk", help="input utt2spk file")
    parser.add_argument("spk2utt", nargs="?", help="output file (default: standard output)")


def main(args: argparse.Namespace) -> None:
    spk2utt = utt2spk_to_spk2utt(read_token_table(args.utt2spk, ONE_TOKEN_FILES["utt2spk"]))
    if args.spk2utt:
        write_table(args.spk2utt, spk2utt)
    else:
        for speaker, utts in spk2utt.items():
            print(speaker, format_value(utts))
