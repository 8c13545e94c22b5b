"""Build the mini corpus: TTS voices reading the UDHR, as data dirs with trials and retrieval sets.

Synthesises every (voice, unit) utterance offline with the engines of the roster (espeak-ng, MBROLA, Pico, flite,
RHVoice, festival; voices whose engine is not installed are skipped with a warning), at 16 kHz mono, in
parallel and cached (a re-run only rewrites the tables). Writes under --out: train/dev/test data dirs with
disjoint voices, dev/test trials, the units text gallery, speech→text and speech→speech retrieval sets for
units seen in training and held-out units, and a retrieval_tasks list. See egs/mini/uattr1/README.md.

Example (from egs/mini/uattr1):
  uattr prepare-mini --out data --roster local/voices.txt --udhr local/udhr --nj 2
  uattr prepare-mini --out data --roster local/voices.txt --udhr local/udhr --toy   # CI: espeak-ng, en+fr
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from uattr.corpora.mini import MiniConfig, prepare_mini, toy_config

_DEFAULTS = MiniConfig(out=Path("data"), roster=Path("local/voices.txt"), udhr=Path("local/udhr"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (the recipe's data/)")
    parser.add_argument("--roster", type=Path, required=True, help="voice roster: 'voice_id lang engine args...'")
    parser.add_argument("--udhr", type=Path, required=True, help="folder of the extracted UDHR <lang>.txt tables")
    parser.add_argument("--languages", nargs="+", help="ISO 639-1 codes to keep (default: all of the roster)")
    parser.add_argument("--engines", nargs="+", help="TTS engines to keep (default: all of the roster)")
    parser.add_argument("--voices-per-language", type=int,
                        help="keep the first N voices of each language in roster order (default: all)")
    parser.add_argument("--min-voices", type=int, default=_DEFAULTS.min_voices,
                        help="stop unless at least this many voices are usable (default %(default)s)")
    parser.add_argument("--units-per-voice", type=int, default=_DEFAULTS.units_per_voice,
                        help="units each voice reads (default %(default)s)")
    parser.add_argument("--eval-units-per-voice", type=int,
                        help="units each dev/test voice reads, up to half of them unseen (default: "
                             "--units-per-voice); more units give more retrieval queries from the same voices")
    parser.add_argument("--max-words", type=int, default=_DEFAULTS.max_words,
                        help="drop units with more English words (default %(default)s)")
    parser.add_argument("--unseen-share", type=float, default=_DEFAULTS.unseen_share,
                        help="share of units held out of training (default %(default)s)")
    parser.add_argument("--eval-voice-share", type=float, default=_DEFAULTS.eval_voice_share,
                        help="share of each language's voices in dev, and in test (default %(default)s)")
    parser.add_argument("--num-trials", type=int, default=_DEFAULTS.num_trials,
                        help="target trials per set, and as many nontarget (default: every target pair)")
    parser.add_argument("--cross-language-share", type=float, default=_DEFAULTS.cross_language_share,
                        help="share of cross-language target trials when --num-trials samples them (with every "
                             "target pair, the share the bilingual voices give); the nontargets take the share the "
                             "targets reach (default %(default)s)")
    parser.add_argument("--wav-dir", type=Path, help="audio cache (default: <out>/wav)")
    parser.add_argument("--nj", type=int, default=_DEFAULTS.nj, help="parallel synthesis jobs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="random seed (default %(default)s)")
    parser.add_argument("--toy", action="store_true",
                        help="tiny CI corpus: espeak-ng only, en+fr, 4 voices each, 3 short units per voice "
                             "(overrides the size options)")


def main(args: argparse.Namespace) -> None:
    config = MiniConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(MiniConfig)})
    if args.toy:
        config = toy_config(config)
    prepare_mini(config)
