"""Build a model from a model config without training it and save it (e.g. an untrained-encoder baseline).

The YAML holds the model section of a training config: `upstream`, `attributes` (and `loss_weighting`). The
saved directory is what `uattr train` writes to EXP/model, so extraction and scoring treat it like any system:
the mini recipe's baseline is the random-init encoder with mean-pooled hidden states (projection none, pooling
mean, head none).

example: uattr init-model --config conf/model_baseline.yaml --out exp/baseline/model --seed 0
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML with upstream, attributes (and loss_weighting)")
    parser.add_argument(
        "--out", required=True, help="model dir to write (config.yaml, model.safetensors, README.md); replaces an "
        "earlier model dir, nothing else"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the branches' initialisation (default: 0)")


def main(args: argparse.Namespace) -> int:
    import torch

    from uattr.config import from_dict, load_yaml
    from uattr.fileio import atomic_dir, require_replaceable
    from uattr.model import WEIGHTS_FILE, ModelConfig, UnifiedEncoder

    require_replaceable(args.out, WEIGHTS_FILE, "model dir")
    config = from_dict(ModelConfig, load_yaml(args.config))
    torch.manual_seed(args.seed)
    model = UnifiedEncoder(config)
    with atomic_dir(args.out) as staging:  # a model dir is whole or absent, whatever interrupts the save
        model.save_pretrained(staging)
    logger.info("untrained model saved to %s", args.out)
    return 0
