"""Make a data dir consistent in place: keep the utterances every file has, sort, rebuild spk2utt.

Keeps the utterances present in every per-utterance file (segments or wav.scp, utt2spk, text, text.<lang>,
utt2lang, utt2*, ...) and the recordings and speakers they use, sorts every table, re-derives spk2utt from
utt2spk and removes repeated identical lines and lines without a value. Reports what it dropped. The original
files are kept in DIR/.backup/. Two lines with the same id and different values are an error (fix them by hand).
"""

from __future__ import annotations

import argparse

from uattr.data.ops import fix_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="the data dir to fix (rewritten in place)")


def main(args: argparse.Namespace) -> None:
    report = fix_data_dir(args.data_dir)
    print(f"{args.data_dir}: {report.describe()}")
