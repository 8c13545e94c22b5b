"""How data preparation, trial lists, teacher-table resumes and weighted batch planning grow with corpus size
(not a test: prints a markdown table).

Each step is timed on synthetic tables at a base size and at ``--factor`` times it. The growth column is
time(large) / time(base) / factor: about 1 for work linear in the size, about ``factor`` for quadratic work. The
sizes that grow: utterances for the trial list (100 per speaker, as in VoxCeleb, and as many target trials, drawn
from the speakers' pairs), for the resume, and for the sampler (which starts at 10 times the base size: its plan
is cheap per item); the number of parts, at a fixed corpus, for the split.

    .venv/bin/python benchmarks/data_scaling.py                  # the table in benchmarks/README.md
    .venv/bin/python benchmarks/data_scaling.py --utterances 2000 --factor 4     # a quick run
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from uattr.corpora.trials import make_trials
from uattr.data.kaldi import write_data_dir
from uattr.data.ops import split_data_dir
from uattr.data.sampler import DynamicBatchSampler
from uattr.teachers.base import build_teacher
from uattr.teachers.extract import extract_teacher

LANGUAGES = 100


def corpus(num_utts: int, per_speaker: int = 20) -> dict[str, dict[str, str]]:
    """Kaldi tables of ``num_utts`` utterances, ``per_speaker`` per speaker, 100 languages (never read as audio)."""
    utts = [f"spk{i // per_speaker:06d}-utt{i:07d}" for i in range(num_utts)]
    return {
        "wav.scp": {utt: f"/corpus/{utt}.wav" for utt in utts},
        "utt2spk": {utt: utt.split("-")[0] for utt in utts},
        "utt2lang": {utt: f"lang{i // per_speaker % LANGUAGES:03d}" for i, utt in enumerate(utts)},
        "text": {utt: f"sentence {i}" for i, utt in enumerate(utts)},
    }


def time_trials(num_utts: int, workdir: Path) -> float:
    tables = corpus(num_utts, per_speaker=100)
    start = time.perf_counter()
    make_trials(tables["utt2spk"], tables["utt2lang"], num_target=num_utts, num_nontarget=num_utts)
    return time.perf_counter() - start


def time_resume(num_utts: int, workdir: Path) -> float:
    """A label-teacher table interrupted halfway, then resumed (the second call is timed)."""
    data = write_data_dir(workdir / f"data{num_utts}", tables=corpus(num_utts))
    out = workdir / f"table{num_utts}"
    teacher = build_teacher("labels")
    embed, calls = teacher.embed, []

    def interrupted(batch):
        calls.append(len(batch))
        if sum(calls) > num_utts // 2:
            raise KeyboardInterrupt
        return embed(batch)

    teacher.embed = interrupted
    try:
        extract_teacher(teacher, data, out, batch_size=256, show_progress=False)
    except KeyboardInterrupt:
        pass
    teacher.embed = embed
    start = time.perf_counter()
    extract_teacher(teacher, data, out, batch_size=256, show_progress=False)
    return time.perf_counter() - start


def time_weighted_plan(num_utts: int, workdir: Path) -> float:
    rng = np.random.default_rng(0)
    durations = rng.uniform(1.0, 10.0, num_utts)
    weights = rng.uniform(0.01, 1.0, num_utts)
    sampler = DynamicBatchSampler(durations, max_batch_seconds=200.0, max_batch_size=20, weights=weights)
    start = time.perf_counter()
    sampler._global_plan(0)  # the whole epoch's batches, as every rank computes them
    return time.perf_counter() - start


def time_split(num_parts: int, workdir: Path, num_utts: int) -> float:
    data = workdir / f"split_src{num_parts}"
    write_data_dir(data, tables=corpus(num_utts))
    start = time.perf_counter()
    split_data_dir(data, num_parts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=20000, help="base corpus size")
    parser.add_argument("--parts", type=int, default=10, help="base number of parts of the split")
    parser.add_argument("--factor", type=int, default=5, help="how many times larger the second size is")
    args = parser.parse_args()
    base, factor = args.utterances, args.factor
    steps: list[tuple[str, str, int, Callable[[int, Path], float]]] = [
        ("make_trials (a target and a nontarget trial per utterance)", "utterances", base, time_trials),
        ("extract-teacher resume, half done (labels teacher)", "utterances", base, time_resume),
        ("weighted sampler, one epoch's plan", "utterances", 10 * base, time_weighted_plan),
        (f"split_data_dir of {base} utterances", "parts", args.parts,
         lambda parts, workdir: time_split(parts, workdir, base)),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; growth = "
          f"time(large) / time(base) / {factor} (1: linear)\n")
    print("| step | grows with | base | base (s) | large | large (s) | growth |")
    print("|---|---|---:|---:|---:|---:|---:|")
    workdir = Path(tempfile.mkdtemp(prefix="uattr-scaling-"))
    try:
        for name, unit, size, step in steps:
            small, large = step(size, workdir), step(size * factor, workdir)
            print(f"| {name} | {unit} | {size} | {small:.3f} | {size * factor} | {large:.3f} | "
                  f"{large / small / factor:.2f} |", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
