"""Cache a teacher's embeddings (or label indices) for a data dir as a kaldiio table.

Writes <out>/emb.ark, emb.scp and meta.json (teacher, model, dimension, normalisation, input field, library
versions; label tables also list their classes). Resumable: an interrupted run continues where it stopped, a
complete table of the same utterances is left alone, and one of other utterances (the data dir changed) or made
by another teacher, model, field or class list is written again. A labels teacher given several --data dirs
takes its classes from the first (train), also when that table is already complete. Split work: run `--job I
--num-jobs N` for I = 1..N (each writes <out>/splitN/I/), then `--merge N` to join them into <out>.

Examples:
  uattr extract-teacher --teacher sentence-transformers --model BAAI/bge-m3 --field text.en \\
      --data data/train --out dump/teacher/semantic/train
  uattr extract-teacher --teacher speechbrain-ecapa --device cuda --data data/train --out dump/teacher/speaker/train
  uattr extract-teacher --teacher labels --field utt2lang --classes-from dump/teacher/lang/train/meta.json \\
      --data data/dev --out dump/teacher/lang/dev
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from uattr.errors import ConfigError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", help="registered teacher name (sentence-transformers, speechbrain-ecapa, ...)")
    parser.add_argument("--data", nargs="+", help="Kaldi data dir(s), e.g. data/train (several: one teacher load)")
    parser.add_argument("--out", required=True,
                        help="table dir, e.g. dump/teacher/<attr>/<set>; with several --data, '{set}' in it "
                             "stands for each data dir's name")
    parser.add_argument("--model", help="model id, local folder or pkg:<package> (default: the teacher's)")
    parser.add_argument("--field", help="data-dir table a text/label teacher reads (default: text / utt2lang)")
    parser.add_argument("--classes-from", help="labels teacher: reuse the classes of this table (dir or meta.json)")
    parser.add_argument("--batch-size", type=int, default=32, help="utterances per teacher call (default: 32)")
    parser.add_argument("--device", help="cpu | cuda (default: the teacher's, cpu)")
    parser.add_argument("--job", type=int, help="this job's number, 1..--num-jobs")
    parser.add_argument("--num-jobs", type=int, help="number of split jobs")
    parser.add_argument("--merge", type=int, metavar="N", help="join the tables of N finished split jobs into --out")


def main(args: argparse.Namespace) -> int:
    # Imported here so `uattr --help` stays fast.
    from uattr.data.kaldi import DataDir
    from uattr.data.tables import job_dir, keep_current_table, merge_split, split_ids
    from uattr.registry import TEACHERS
    from uattr.teachers.base import build_teacher, check_teacher_options, input_field, teacher_identity
    from uattr.teachers.extract import extract_teacher
    from uattr.teachers.labels import classes_of, shared_classes

    outputs = table_dirs(args.out, args.data)
    if args.merge is not None:
        if args.job is not None or args.num_jobs is not None:
            raise ConfigError("--merge joins finished jobs: do not combine it with --job/--num-jobs")
        for out in outputs.values():
            merge_split(out, args.merge)
        return 0
    if not args.teacher or not args.data:
        raise ConfigError("--teacher and --data are required (unless --merge)")
    options: dict[str, Any] = {
        name: value
        for name, value in (("model", args.model), ("device", args.device), ("classes_from", args.classes_from))
        if value is not None
    }
    # The options are checked before any table is compared with them: a mistyped one must not remove a table.
    check_teacher_options(args.teacher, options)
    field = input_field(TEACHERS.get(args.teacher), args.field)
    classes = None
    if args.classes_from:
        classes = classes_of(options.pop("classes_from"))
    elif args.teacher == "labels" and len(outputs) > 1:
        # The first set (train) fixes the classes: later sets must index them the same way, whether train's
        # table is complete or about to be (re)made.
        first_data = next(iter(outputs))
        first_table = job_dir(outputs[first_data], args.job, args.num_jobs)
        classes = shared_classes(DataDir.load(first_data), field, first_table)
    if classes is not None:
        options["classes"] = classes
    # Checked before the (slow) teacher is loaded.
    pending = {}
    for data, out in outputs.items():
        data_dir = DataDir.load(data)
        identity = teacher_identity(args.teacher, data_dir, args.model, args.field, classes)
        utt_ids = split_ids(data_dir.utt_ids, args.job, args.num_jobs)
        merged = out if args.num_jobs else None  # a job's table not kept makes the merged one incomplete first
        if not keep_current_table(job_dir(out, args.job, args.num_jobs), utt_ids, identity, merged):
            pending[data] = out
    for data in outputs.keys() - pending.keys():
        logger.info("%s: teacher table already complete; nothing to do", outputs[data])
    if not pending:
        return 0
    teacher = build_teacher(args.teacher, **options)
    for data, out in pending.items():
        extract_teacher(
            teacher,
            data,
            out,
            field=args.field,
            batch_size=args.batch_size,
            job=args.job,
            num_jobs=args.num_jobs,
            show_progress=not args.quiet,
        )
    return 0


def table_dirs(out: str, data_dirs: list[str] | None) -> dict[str, str]:
    """``{data dir: table dir}``; several data dirs need ``{set}`` in ``out`` (the data dir's name)."""
    if not data_dirs:  # --merge alone: the table dir is --out itself
        return {"": out}
    if len(data_dirs) > 1 and "{set}" not in out:
        raise ConfigError(f"--out {out}: with several --data dirs, put '{{set}}' where each set's name goes")
    from uattr.data.kaldi import set_names

    return {data: out.replace("{set}", name) for data, name in zip(data_dirs, set_names(data_dirs))}
