"""Create a randomly initialised speech encoder folder (Hugging Face format) for tests and mini recipes.

The folder (config.json, model.safetensors, preprocessor_config.json) loads as upstream name hf:DIR and, for
wav2vec2 and hubert, as s3prl:hf_wav2vec2_custom / s3prl:hf_hubert_custom with path DIR. --config is a YAML
mapping of Hugging Face config fields (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
conv_dim, ...) plus an optional 'feature_extractor:' mapping. Re-running with the same settings keeps the folder.

example: uattr create-upstream --arch w2v-bert --config conf/encoder.yaml --out exp/encoder --seed 0
"""

from __future__ import annotations

import argparse

from uattr.config import load_yaml
from uattr.upstream.create import ARCHITECTURES, create_upstream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES), help="encoder architecture")
    parser.add_argument("--config", help="YAML of Hugging Face config overrides (default: the class defaults)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random-init seed (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder made differently")


def main(args: argparse.Namespace) -> int | None:
    overrides = load_yaml(args.config) if args.config else {}
    print(create_upstream(args.arch, args.out, seed=args.seed, overwrite=args.overwrite, **overrides))
    return 0
