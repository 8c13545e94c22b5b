"""Benchmark extraction (stage 4): ``uattr.extract.extract_embeddings`` batched by duration against one utterance
at a time, and in float32 against bf16 autocast.

Everything is generated in a temporary folder: a random w2v-BERT encoder (``--preset``) with a semantic (1024-d)
and a speaker (192-d) branch, and utterances of 2–9.9 s as 16 kHz wav files (``train_step.py``'s corpus). Each
case writes both attributes' tables of every utterance, from a fresh output folder, with ``--num-workers``
DataLoader workers reading the audio:

1. one utterance per batch, float32: what a loop over ``UnifiedEncoder.embed`` (or most extraction scripts)
   does, the baseline;
2. batched by duration (``uattr extract``'s defaults: up to 200 s of padded audio, 64 utterances), float32;
3. batched, under ``--amp`` autocast (bf16 by default; left out with ``--amp none``), and how far its
   embeddings are from float32's (the smallest cosine over utterances and attributes).

Prints a Markdown table: utterances/s and seconds of audio per second of each case, best of ``--repeats`` runs
after one untimed warm-up run of the batched case.

    python benchmarks/extract.py --device cpu --preset tiny --amp none
    python benchmarks/extract.py --device cuda --preset w2v-bert-2.0 --utterances 800 --num-workers 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from train_step import SEMANTIC_DIM, SPEAKER_DIM, add_setup_arguments, device_name, generated_setup
from uattr.attributes.base import AttributeConfig
from uattr.data.audio import AudioSource
from uattr.data.tables import read_embedding_table
from uattr.extract import extract_embeddings
from uattr.model import ModelConfig, UnifiedEncoder
from uattr.upstream.base import UpstreamConfig

ONE_AT_A_TIME = {"max_batch_size": 1}
BATCHED = {"max_batch_seconds": 200.0, "max_batch_size": 64}  # uattr extract's defaults


def time_case(model: UnifiedEncoder, data: Path, out: Path, args: argparse.Namespace, amp: str,
              batching: dict[str, float]) -> float:
    """Seconds of the fastest of ``--repeats`` extractions of every utterance into fresh folders ``out/<n>``."""
    seconds = []
    for repeat in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        extract_embeddings(model, data, out / str(repeat), device=args.device, amp=amp,
                           num_workers=args.num_workers, show_progress=False, **batching)
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def smallest_cosine(reference: Path, other: Path) -> float:
    """The smallest cosine between the two runs' embeddings of one utterance, over utterances and attributes."""
    cosines = []
    for attr in ("semantic", "speaker"):
        ref, got = (read_embedding_table(root / attr / "train" / "emb.scp") for root in (reference, other))
        for utt, vector in ref.items():
            cosines.append(vector @ got[utt] / (np.linalg.norm(vector) * np.linalg.norm(got[utt])))
    return float(min(cosines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(parser)
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="bf16",
                        help="autocast of the third case (none: leave that case out)")
    parser.add_argument("--utterances", type=int, default=200, help="generated utterances of 2-9.9 s")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers reading the audio")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each case (the best counts)")
    args = parser.parse_args(argv)

    with generated_setup(args, args.utterances) as (root, upstream, data):
        audio_seconds = sum(AudioSource(data).durations().values())
        torch.manual_seed(args.seed)
        model = UnifiedEncoder(ModelConfig(
            UpstreamConfig(name=f"hf:{upstream}"),
            {"semantic": AttributeConfig(dim=SEMANTIC_DIM), "speaker": AttributeConfig(dim=SPEAKER_DIM)},
        ))
        parameters = sum(p.numel() for p in model.parameters())
        extract_embeddings(model, data, root / "warmup", device=args.device, num_workers=args.num_workers,
                           show_progress=False, **BATCHED)
        cases = {
            "one utterance at a time, float32": time_case(model, data, root / "single", args, "none", ONE_AT_A_TIME),
            "batched by duration, float32": time_case(model, data, root / "batched", args, "none", BATCHED),
        }
        if args.amp != "none":
            cases[f"batched by duration, {args.amp} autocast"] = time_case(
                model, data, root / "amp", args, args.amp, BATCHED
            )
            agreement = smallest_cosine(root / "batched" / "0", root / "amp" / "0")

    print(
        f"\n{args.preset} encoder ({parameters / 1e6:.1f}M parameters with branches), {device_name(args.device)}, "
        f"{args.utterances} utterances of 2–9.9 s ({audio_seconds / 3600:.2f} h), {args.num_workers} loader "
        f"workers, best of {args.repeats}\n"
    )
    baseline = cases["one utterance at a time, float32"]
    print("| case | s | utterances/s | audio s/s | speed-up over one at a time |\n|---|---|---|---|---|")
    for name, seconds in cases.items():
        print(f"| {name} | {seconds:.2f} | {args.utterances / seconds:.1f} | {audio_seconds / seconds:.0f} | "
              f"{baseline / seconds:.2f}× |")
    if args.amp != "none":
        print(f"\nsmallest cosine between the {args.amp} and float32 embeddings of an utterance: {agreement:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
