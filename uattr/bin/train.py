"""Train the unified encoder (teacher-student) from an experiment config.

Writes EXP/config.yaml (resolved), EXP/train.log, EXP/tensorboard/, EXP/checkpoints/ckpt-<step>.pt,
EXP/valid_metrics.json (each validation's metrics with its step and 1-based epoch) and EXP/model/ (the final
model: the mean of the trainer.n_best best checkpoints by trainer.best_criterion on the dev set, or the best one
with --trainer.average_best false; model/selection.json says which, and a finished run re-run with another
average_best rebuilds it).
A run that finds a checkpoint in EXP resumes from it (--resume auto), unless the config or the data changed
in a way its state cannot honour (the error says what). Any config key can be overridden
with a dotted option, e.g. --trainer.max_steps 500 --optim.branches.optimizer.lr 1.0.

Multi-GPU / multi-node: launch with torchrun, e.g.
  torchrun --nproc_per_node 4 -m uattr train --config conf/train.yaml --exp-dir exp/joint
"""

from __future__ import annotations

import argparse

ACCEPTS_OVERRIDES = True  # unknown --a.b value options reach main() as args.overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML (upstream, attributes, data, optim, trainer)")
    parser.add_argument("--exp-dir", required=True, help="experiment directory, e.g. exp/joint")
    parser.add_argument(
        "--resume",
        choices=("auto", "never"),
        default="auto",
        help="auto: continue from the latest checkpoint in EXP if any; never: refuse to run over checkpoints",
    )


def main(args: argparse.Namespace) -> int:
    from uattr.config import parse_overrides  # imported here so `uattr --help` stays fast
    from uattr.train.config import load_experiment_config
    from uattr.train.trainer import train

    config = load_experiment_config(args.config, parse_overrides(args.overrides))
    train(config, args.exp_dir, args.resume, show_progress=not args.quiet)
    return 0
