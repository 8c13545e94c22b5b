"""Benchmark the attribute branches and the one-pass model API.

1. Two branches at the paper's sizes (L = 24 selected layers of 25 hidden states, D = 1024, 8 utterances × 8 s
   at 50 frames/s, heads 1024 and 1024 → 192), forward + backward with gradients flowing into the hidden states
   (the encoder is fine-tuned): the fused per-layer projection vs the einsum reference (select, project every
   layer, then mix), and the shared projection vs the per-layer one.
2. ``embed`` of two attributes in one encoder pass vs two single-attribute encoders, with a created w2v-BERT-style
   encoder of moderate size.

Peak memory: each case once in a fresh process, above its inputs and parameters: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the process's peak resident set size (``VmHWM``, reset through
``/proc/self/clear_refs`` after a warm-up run) minus the resident size before the measured run, with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB in the child so that every tensor buffer is its own mapping, returned
when freed, and the resident size tracks live tensors rather than malloc's free lists.
Time: the cases of a comparison take turns in one process (one warm-up each, then ``--repeats`` rounds), so a
load change on a shared machine hits them alike; the table gives medians.

    python benchmarks/branch.py --device cpu --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from uattr.attributes import AttributeConfig
from uattr.branch import BranchConfig
from uattr.branch.projection import PerLayerProjection, project_and_mix_reference
from uattr.model import ModelConfig, UnifiedEncoder
from uattr.registry import PROJECTIONS
from uattr.upstream.base import UpstreamConfig

Step = Callable[[], None]


@PROJECTIONS.register("per_layer_reference")
class ReferencePerLayerProjection(PerLayerProjection):
    """The same parameters, computed the straightforward way (every layer projected, then mixed)."""

    def forward(self, hidden: torch.Tensor, layers: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        return project_and_mix_reference(hidden, layers, weights, self.weight, self.bias)


class _HiddenShape(torch.nn.Module):
    """Stands in for an encoder when only the branches run: it just declares the hidden-state shape."""

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        super().__init__()
        self.num_layers, self.hidden_size, self.sample_rate = num_layers, hidden_size, 16000


def branch_step(projection: str, args: argparse.Namespace) -> Step:
    """Forward + backward of two branches (semantic 1024-d, speaker 192-d) on random hidden states."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    frames = round(args.seconds * args.frame_rate)
    attributes = {
        "semantic": AttributeConfig(dim=args.dim, branch=BranchConfig(projection=projection)),
        "speaker": AttributeConfig(dim=192, branch=BranchConfig(projection=projection)),
    }
    config = ModelConfig(UpstreamConfig(name="none:"), attributes)
    model = UnifiedEncoder(config, _HiddenShape(args.layers + 1, args.dim)).to(device)
    hidden = torch.randn(args.layers + 1, args.batch, frames, args.dim, device=device, requires_grad=True)
    frame_lens = torch.full((args.batch,), frames, device=device)
    targets = {name: torch.randn(args.batch, model.embedding_dim(name), device=device) for name in attributes}

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            embeddings = {name: expert(hidden, frame_lens) for name, expert in model.experts.items()}
            loss = model.compute_loss(embeddings, targets)[0]
        loss.backward()
        model.zero_grad(set_to_none=True)
        hidden.grad = None

    return step


def embed_step(variant: str, args: argparse.Namespace) -> Step:
    """``embed`` of semantic (384-d) and speaker (256-d): one joint model, or two single-attribute models."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    attributes = {"semantic": AttributeConfig(dim=384), "speaker": AttributeConfig(dim=256)}
    upstream = UpstreamConfig(name=f"hf:{args.encoder_dir}")
    if variant == "joint":
        models = [UnifiedEncoder(ModelConfig(upstream, attributes))]
    else:
        models = [UnifiedEncoder(ModelConfig(upstream, {name: config})) for name, config in attributes.items()]
    models = [model.to(device).eval() for model in models]
    waves = [torch.randn(int(args.seconds * 16000)) for _ in range(args.batch)]

    def step() -> None:
        for model in models:
            model.embed(waves, sample_rate=16000)

    return step


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _memory_status(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory(build: Callable[[str, argparse.Namespace], Step], case: str, args: argparse.Namespace) -> int:
    """Bytes allocated at the peak of one run of the case (after a warm-up), above what was allocated before."""
    step = build(case, args)
    step()  # lazily initialised library buffers are not the case's
    _synchronize(args.device)
    if args.device == "cuda":
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        return torch.cuda.max_memory_allocated() - baseline
    baseline = _memory_status("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size (Linux ≥ 4.0)
    step()
    return _memory_status("VmHWM") - baseline


def peak_memory_in_fresh_process(
    build: Callable[[str, argparse.Namespace], Step], case: str, args: argparse.Namespace
) -> int:
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))  # read by glibc when the child starts
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(peak_memory, (build, case, args))


def interleaved_times(
    build: Callable[[str, argparse.Namespace], Step], cases: Sequence[str], args: argparse.Namespace
) -> dict[str, float]:
    """Median seconds per run of each case, the cases taking turns after one warm-up each."""
    steps = {case: build(case, args) for case in cases}
    times: dict[str, list[float]] = {case: [] for case in cases}
    for round_index in range(args.repeats + 1):
        for case, step in steps.items():
            _synchronize(args.device)
            start = time.perf_counter()
            step()
            _synchronize(args.device)
            if round_index:  # round 0 warms up
                times[case].append(time.perf_counter() - start)
    return {case: statistics.median(values) for case, values in times.items()}


def measure(build: Callable[[str, argparse.Namespace], Step], cases: Sequence[str], args: argparse.Namespace):
    seconds = interleaved_times(build, cases, args)
    return {case: (seconds[case], peak_memory_in_fresh_process(build, case, args)) for case in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=24, help="selected layers per branch")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--frame-rate", type=float, default=50.0)
    parser.add_argument("--amp", action="store_true", help="run the branch cases under bf16 autocast")
    parser.add_argument("--encoder-hidden", type=int, default=256, help="created encoder for the embed comparison")
    parser.add_argument("--encoder-layers", type=int, default=6)
    args = parser.parse_args()

    results = measure(branch_step, ["per_layer", "per_layer_reference", "shared"], args)
    with tempfile.TemporaryDirectory() as scratch:
        from uattr.upstream.create import create_upstream

        args.encoder_dir = str(create_upstream(
            "w2v-bert", Path(scratch) / "encoder", hidden_size=args.encoder_hidden,
            num_hidden_layers=args.encoder_layers, num_attention_heads=4, intermediate_size=4 * args.encoder_hidden,
            output_hidden_size=args.encoder_hidden,
        ))
        results.update(measure(embed_step, ["joint", "separate"], args))

    frames = round(args.seconds * args.frame_rate)
    stack_mib = (args.layers + 1) * args.batch * frames * args.dim * 4 / 2**20
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device}; torch {torch.__version__}; {args.repeats} timed rounds")
    print(f"branches: L={args.layers}, D={args.dim}, B={args.batch}, T={frames}"
          f"{' (bf16 autocast)' if args.amp else ''}, hidden-state stack {stack_mib:.0f} MiB; embed: w2v-BERT-style "
          f"encoder hidden {args.encoder_hidden} × {args.encoder_layers} layers, {args.batch} × {args.seconds:g} s\n")
    labels = {
        "per_layer": "2 branches fwd+bwd, per-layer (fused)",
        "per_layer_reference": "2 branches fwd+bwd, per-layer (einsum reference)",
        "shared": "2 branches fwd+bwd, shared projection",
        "joint": "embed 2 attributes, one joint model",
        "separate": "embed 2 attributes, two single-attribute models",
    }
    print("| case | time (s) | peak memory (MiB) |\n|---|---|---|")
    for case, label in labels.items():
        print(f"| {label} | {results[case][0]:.3f} | {results[case][1] / 2**20:.0f} |")
    print("\n| ratio | time | peak memory |\n|---|---|---|")
    for label, numerator, denominator in [
        ("fused / reference", "per_layer", "per_layer_reference"),
        ("shared / per-layer (fused)", "shared", "per_layer"),
        ("one joint pass / two models", "joint", "separate"),
    ]:
        (time_a, memory_a), (time_b, memory_b) = results[numerator], results[denominator]
        print(f"| {label} | {time_a / time_b:.2f} | {memory_a / max(memory_b, 1):.2f} |")


if __name__ == "__main__":
    main()
