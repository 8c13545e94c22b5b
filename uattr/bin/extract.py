"""Extract the embeddings of every attribute of a trained model for a data dir, in one encoder pass per batch.

Writes <out>/<attr>/<set>/emb.{ark,scp} + meta.json per attribute and <out>/layer_weights.json. Resumable: an
interrupted run continues where it stopped; complete tables are left alone. Split work over N jobs with
`--job I --num-jobs N` (I = 1..N, each writes <table>/splitN/I/), then `--merge N`. With several --data dirs,
an utterance they share (same id and audio) is encoded once.

Examples:
  uattr extract --model exp/joint --data data/test --out exp/joint/emb
  uattr extract --model exp/joint/model --data data/test --out exp/joint/emb --attributes speaker --device cuda
"""

from __future__ import annotations

import argparse
import logging

from uattr.precision import AMP_CHOICES

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True,
        help="experiment dir (exp/<tag>), model dir (save_pretrained), or a model's Hub id (org/name)",
    )
    parser.add_argument("--data", required=True, nargs="+",
                        help="Kaldi data dir(s), e.g. data/test (several: the model is loaded once)")
    parser.add_argument("--out", required=True, help="output root: <out>/<attr>/<set>/emb.scp")
    parser.add_argument("--attributes", nargs="+", help="attributes to extract (default: all of the model's)")
    parser.add_argument("--set-name", help="name of the set in the output path (default: the data dir's name; "
                                           "only with one --data)")
    parser.add_argument("--max-batch-seconds", type=float, default=200.0,
                        help="padded audio seconds per batch (default: 200)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="utterances per batch (default: 64)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers reading audio (default: 0)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="none",
                        help="run the model under autocast in bf16 or fp16 (default: none, float32). Faster on "
                             "GPUs; on a CPU only where it has bf16 units (AMX). Vectors are saved as float32, and "
                             "a table made at another precision is written again")
    parser.add_argument("--job", type=int, help="this job's number, 1..--num-jobs")
    parser.add_argument("--num-jobs", type=int, help="number of split jobs")
    parser.add_argument("--merge", type=int, metavar="N", help="join the tables of N finished split jobs")


def main(args: argparse.Namespace) -> int:
    from uattr.config import load_yaml
    from uattr.data.kaldi import set_names as data_set_names
    from uattr.errors import ConfigError
    from uattr.extract import RepeatedUtterances, extract_embeddings, merge_jobs, resolve_model_dir
    from uattr.model import UnifiedEncoder
    from uattr.train.distributed import resolve_device

    if "{set}" in args.out:  # extract-teacher's --out takes one; here each set goes to <out>/<attr>/<set>
        raise ConfigError(f"--out '{args.out}': the output root, not a pattern: tables go to <out>/<attr>/<set>")
    model_dir = resolve_model_dir(args.model)
    if args.set_name and len(args.data) > 1:
        raise ConfigError("--set-name names one set: give one --data with it")
    set_names = [args.set_name] if args.set_name else data_set_names(args.data)
    if args.merge is not None:
        if args.job is not None or args.num_jobs is not None:
            raise ConfigError("--merge joins finished jobs: do not combine it with --job/--num-jobs")
        attributes = args.attributes or list(load_yaml(model_dir / "config.yaml")["attributes"])
        for set_name in set_names:
            merge_jobs(args.out, set_name, attributes, args.merge)
        return 0
    device = resolve_device(args.device, option="--device")  # a device this machine lacks: a ConfigError
    model = UnifiedEncoder.from_pretrained(model_dir, device=device)
    repeated = RepeatedUtterances(args.data) if len(args.data) > 1 else None
    for data, set_name in zip(args.data, set_names):
        tables = extract_embeddings(
            model, data, args.out, set_name=set_name, attributes=args.attributes, job=args.job,
            num_jobs=args.num_jobs, model_name=str(model_dir), max_batch_seconds=args.max_batch_seconds,
            max_batch_size=args.max_batch_size, num_workers=args.num_workers, device=device, amp=args.amp,
            show_progress=not args.quiet, repeated=repeated,
        )
        for attr, table in tables.items():
            logger.info("%s: %s/emb.scp", attr, table)
    return 0
