"""Prepare MUSAN and RIRS_NOISES as noise and impulse-response data dirs for training-time augmentation.

Reads <musan>/{noise,music,speech}/<subset>/*.wav (openslr.org/17) and
<rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/RoomNNN/*.wav (openslr.org/28). Writes OUT/musan_noise,
OUT/musan_music, OUT/musan_speech and OUT/rirs (wav.scp only), for the training config's data.augment.

Example:
  uattr prepare-augmentation --musan /corpora/musan --rirs /corpora/RIRS_NOISES --out data
"""

from __future__ import annotations

import argparse

from uattr.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--musan", help="MUSAN folder (holding noise/, music/, speech/)")
    parser.add_argument("--rirs", help="RIRS_NOISES folder (holding simulated_rirs/)")
    parser.add_argument("--out", default="data", help="where the data dirs go (default: data)")


def main(args: argparse.Namespace) -> None:
    from uattr.corpora.augmentation import prepare_musan, prepare_rirs

    if args.musan is None and args.rirs is None:
        raise ConfigError("nothing to prepare: give --musan, --rirs or both")
    if args.musan is not None:
        prepare_musan(args.musan, args.out)
    if args.rirs is not None:
        prepare_rirs(args.rirs, args.out)
