"""Write a subset of a data dir: by id list, per language, per speaker and/or the first N utterances.

Filters combine, applied in this order: --utt-list, --langs, --per-lang, --per-spk, --first. "First" means in
sorted id order, so subsets are deterministic. Every per-utterance, per-recording and per-speaker file is
subset consistently; spk2utt is re-derived. The output replaces an earlier data dir there whole (once complete);
anything else there, or the input itself, is refused.

  uattr subset-data-dir --per-spk 10 data/train data/train_10perspk
  uattr subset-data-dir --langs en,fr --first 1000 data/train data/train_enfr_1k
"""

from __future__ import annotations

import argparse

from uattr.data.ops import subset_data_dir
from uattr.errors import ConfigError
from uattr.fileio import iter_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="source data dir")
    parser.add_argument("dst", help="output data dir")
    parser.add_argument("--utt-list", help="file whose first field per line is an utterance id to keep")
    parser.add_argument("--langs", help="keep these languages of utt2lang (comma-separated, e.g. en,fr)")
    parser.add_argument("--per-lang", type=int, help="keep the first N utterances of each language")
    parser.add_argument("--per-spk", type=int, help="keep the first N utterances of each speaker")
    parser.add_argument("--first", type=int, help="keep the first N utterances")


def main(args: argparse.Namespace) -> None:
    if not any(v is not None for v in (args.utt_list, args.langs, args.per_lang, args.per_spk, args.first)):
        raise ConfigError("subset-data-dir: give at least one of --utt-list, --langs, --per-lang, --per-spk, --first")
    subset_data_dir(
        args.src,
        args.dst,
        utt_list=[key for _, key, _ in iter_table(args.utt_list)] if args.utt_list else None,
        languages=args.langs.replace(",", " ").split() if args.langs else None,
        per_language=args.per_lang,
        per_speaker=args.per_spk,
        first=args.first,
    )
