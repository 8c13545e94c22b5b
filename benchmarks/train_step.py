"""Benchmark the training step: cached teacher targets vs an on-the-fly ECAPA teacher, and the data pipeline
alone vs the model step.

Everything is generated in a temporary folder: a random w2v-BERT encoder (``--preset``), utterances of 2–9.9 s
(the paper drops 10 s and more) as 16 kHz wav files, random teacher tables (semantic 1024-d, speaker 192-d).
The trainer is ``uattr.train.trainer.Trainer`` with the paper's optimisers; one update is its own step
(forward, backward, clipping, both optimisers, schedules) on one batch of ``--batch-size`` utterances.

1. data pipeline alone: utterances/s of the train DataLoader (audio decoding, collation; ``--num-workers``) in
   its steady state, over one epoch less each worker's first batch; again with every utterance augmented
   (``data.augment``: generated noise, babble of 3–7 recordings or reverberation, one of them per utterance);
2. model step with cached targets, on batches loaded beforehand;
3. the same step with the speaker targets from a random-init speechbrain ``ECAPA_TDNN`` of the real size
   (channels 1024 ×4 + 3072, attention 128, 192-d, 80 mel bins: spkrec-ecapa-voxceleb's hyperparameters) run on
   every batch, as the reference implementation did.

Prints a Markdown table: median seconds per update over ``--steps`` timed updates after ``--warmup`` ones.

    python benchmarks/train_step.py --device cpu --preset tiny --steps 3
    python benchmarks/train_step.py --device cuda --preset w2v-bert-2.0 --amp bf16
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import soundfile
import torch

from uattr.config import from_dict
from uattr.data.kaldi import write_data_dir
from uattr.data.tables import EmbeddingTableWriter
from uattr.speechbrain_import import import_speechbrain
from uattr.teachers.base import Teacher, register_teacher
from uattr.train.config import ExperimentConfig
from uattr.train.trainer import Trainer
from uattr.upstream.create import create_upstream

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512},
    "small": {"hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 4, "intermediate_size": 1024},
    "w2v-bert-2.0": {},  # the transformers defaults are w2v-BERT 2.0's sizes (24 × 1024, 600M parameters)
}
SEMANTIC_DIM = 1024
SPEAKER_DIM = 192
PIPELINE_ROUNDS = 5  # batches per loader worker in the data-pipeline timing: the first round is left out


@register_teacher("benchmark-random-ecapa")
class RandomEcapaTeacher(Teacher):
    """ECAPA-TDNN of spkrec-ecapa-voxceleb's size with random weights: its cost, not its knowledge."""

    input = "audio"
    normalized = False
    dim = SPEAKER_DIM

    def __init__(self, device: str = "cpu") -> None:
        features = import_speechbrain("speechbrain.lobes.features")
        ecapa = import_speechbrain("speechbrain.lobes.models.ECAPA_TDNN")

        self.device = torch.device(device)
        self.features = features.Fbank(n_mels=80).to(self.device)
        channels = [1024, 1024, 1024, 1024, 3072]
        network = ecapa.ECAPA_TDNN(80, channels=channels, attention_channels=128, lin_neurons=SPEAKER_DIM)
        self.network = network.to(self.device).eval()

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        wavs = [torch.as_tensor(np.asarray(wav, dtype=np.float32)) for wav in batch]
        lengths = torch.tensor([len(wav) for wav in wavs], dtype=torch.float32)
        padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True).to(self.device)
        with torch.inference_mode():
            feats = self.features(padded)
            feats = feats - feats.mean(dim=1, keepdim=True)
            embeddings = self.network(feats, (lengths / lengths.max()).to(self.device))
        return embeddings.reshape(len(batch), -1).float().cpu().numpy()


def make_corpus(root: Path, utterances: int, seed: int) -> Path:
    """Data dir ``root/data/train`` of noise bursts of 2–9.9 s, plus random teacher tables under ``root/dump``."""
    rng = np.random.default_rng(seed)
    wav_scp, utt2spk = {}, {}
    for index in range(utterances):
        utt, speaker = f"spk{index % 10:02d}-utt{index:05d}", f"spk{index % 10:02d}"
        samples = (0.1 * rng.standard_normal(int(rng.uniform(2.0, 9.9) * 16000))).astype(np.float32)
        path = root / "wav" / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), samples, 16000)
        wav_scp[utt], utt2spk[utt] = str(path), speaker
    data = write_data_dir(root / "data" / "train", wav_scp=wav_scp, utt2spk=utt2spk)
    for attr, dim in (("semantic", SEMANTIC_DIM), ("speaker", SPEAKER_DIM)):
        with EmbeddingTableWriter(root / "dump" / attr / "train", meta={"teacher": "random"}) as writer:
            writer.write(list(wav_scp), rng.standard_normal((utterances, dim)).astype(np.float32))
    return data


def make_augmentation(root: Path, seed: int) -> dict[str, Any]:
    """``data.augment`` with every utterance augmented, from generated sources: 20 noise recordings of 30 s (read
    as noise and, 3–7 at a time, as babble) and 20 impulse responses of 0.5 s (exponentially decaying noise)."""
    rng = np.random.default_rng(seed)
    sources: dict[str, dict[str, str]] = {"noise": {}, "rirs": {}}
    for index in range(20):
        noise_samples = 0.1 * rng.standard_normal(30 * 16000)
        rir_samples = np.exp(-np.arange(8000) / rng.uniform(400, 2400)) * rng.standard_normal(8000)
        for kind, samples in (("noise", noise_samples), ("rirs", rir_samples)):
            path = root / kind / f"{kind}{index:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), samples.astype(np.float32), 16000)
            sources[kind][path.stem] = str(path)
    noise = str(write_data_dir(root / "data" / "noise", wav_scp=sources["noise"]))
    return {
        "prob": 1.0,
        "noise": {
            "noise": {"data": noise, "snr": [0, 15]},
            "babble": {"data": noise, "snr": [13, 20], "count": [3, 7]},
        },
        "rir": str(write_data_dir(root / "data" / "rirs", wav_scp=sources["rirs"])),
    }


def experiment(
    root: Path, upstream: Path, data: Path, args: argparse.Namespace, on_the_fly: bool,
    augment: dict[str, Any] | None = None,
) -> ExperimentConfig:
    speaker: dict[str, Any] = {"expert": "distill"}
    trainer: dict[str, Any] = {"max_steps": 10**6, "device": args.device, "amp": args.amp, "log_every": 10**6}
    if on_the_fly:
        speaker["teacher"] = {"name": "benchmark-random-ecapa"}
        trainer.update(teacher_mode="on_the_fly", on_the_fly=["speaker"])
    return from_dict(
        ExperimentConfig,
        {
            "upstream": {"name": f"hf:{upstream}", "finetune": "frozen_frontend"},
            "attributes": {"semantic": {"expert": "distill"}, "speaker": speaker},
            "data": {
                "train": str(data),
                "valid": None,
                "target_pattern": str(root / "dump" / "{attr}" / "{set}"),
                "max_batch_size": args.batch_size,
                "num_workers": args.num_workers,
                "augment": augment or {},
            },
            "trainer": trainer,
        },
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_data_pipeline(trainer: Trainer, num_workers: int) -> float:
    """Utterances/s of the train DataLoader alone in its steady state, over one epoch. Each worker's first batch
    pays its start-up and they arrive together, so the clock starts at the arrival of that first round; it stops
    at the last batch's arrival, before the iterator shuts its workers down."""
    arrivals, sizes = [], []
    for batch in trainer.train_data.loader:
        arrivals.append(time.perf_counter())
        sizes.append(len(batch["ids"]))
    first_round = max(1, num_workers)
    return sum(sizes[first_round:]) / (arrivals[-1] - arrivals[first_round - 1])


def time_steps(trainer: Trainer, batches: list[dict[str, Any]], warmup: int) -> list[float]:
    """Seconds of each update after ``warmup`` ones (the trainer's own forward/backward and update)."""
    seconds = []
    for index, batch in enumerate(batches):
        synchronize(trainer.device)
        started = time.perf_counter()
        trainer._forward_backward(batch, micro_batches=1, sync=True)
        trainer._update()
        synchronize(trainer.device)
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    return seconds


def run_case(config: ExperimentConfig, exp_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    trainer = Trainer(config, exp_dir)
    parameters = sum(p.numel() for p in trainer.model.parameters())
    epoch = len(trainer.train_data.sampler)
    if epoch < PIPELINE_ROUNDS * max(1, args.num_workers) or epoch < args.warmup + args.steps:
        raise SystemExit(
            f"{epoch} batches per epoch: the data-pipeline timing needs {PIPELINE_ROUNDS} per loader worker, the "
            f"steps {args.warmup + args.steps}; raise --utterances"
        )
    pipeline = time_data_pipeline(trainer, args.num_workers)
    batches = list(itertools.islice(trainer.train_data.loader, args.warmup + args.steps))
    seconds = statistics.median(time_steps(trainer, batches, args.warmup))
    utterances = statistics.mean(len(batch["ids"]) for batch in batches)
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"pipeline_utt_s": pipeline, "step_s": seconds, "step_utt_s": utterances / seconds, "parameters": parameters}


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --preset and --seed: the options of :func:`generated_setup`, shared with extract.py."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="encoder size")
    parser.add_argument("--seed", type=int, default=0)


@contextlib.contextmanager
def generated_setup(args: argparse.Namespace, utterances: int) -> Iterator[tuple[Path, Path, Path]]:
    """A temporary folder with a random encoder of ``args.preset`` and :func:`make_corpus`'s data: yields the
    folder, the encoder's and the data dir's paths."""
    with tempfile.TemporaryDirectory(prefix="uattr-bench-") as tmp:
        root = Path(tmp)
        upstream = create_upstream("w2v-bert", root / "upstream", seed=args.seed, **PRESETS[args.preset])
        yield root, upstream, make_corpus(root, utterances, args.seed)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(parser)
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    parser.add_argument("--batch-size", type=int, default=20, help="utterances per update (the paper: 20 per GPU)")
    parser.add_argument(
        "--utterances", type=int, default=400,
        help=f"generated training utterances: an epoch of at least {PIPELINE_ROUNDS} batches per loader worker",
    )
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers")
    parser.add_argument("--steps", type=int, default=10, help="timed updates")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    args = parser.parse_args(argv)

    with generated_setup(args, args.utterances) as (root, upstream, data):
        cached = run_case(experiment(root, upstream, data, args, on_the_fly=False), root / "exp-cached", args)
        live = run_case(experiment(root, upstream, data, args, on_the_fly=True), root / "exp-live", args)
        config = experiment(root, upstream, data, args, on_the_fly=False, augment=make_augmentation(root, args.seed))
        augmented = time_data_pipeline(Trainer(config, root / "exp-augmented"), args.num_workers)

    print(
        f"\n{args.preset} encoder ({cached['parameters'] / 1e6:.1f}M parameters with branches), "
        f"{device_name(args.device)}, amp {args.amp}, batch {args.batch_size} utterances of 2–9.9 s, "
        f"{args.num_workers} loader workers, median of {args.steps} updates\n"
    )
    print("| measure | s/update | utterances/s |\n|---|---|---|")
    print(f"| data pipeline alone (loader) | – | {cached['pipeline_utt_s']:.1f} |")
    print(f"| data pipeline, every utterance augmented | – | {augmented:.1f} |")
    print(f"| model step, cached teacher targets | {cached['step_s']:.3f} | {cached['step_utt_s']:.1f} |")
    print(f"| model step, on-the-fly ECAPA teacher | {live['step_s']:.3f} | {live['step_utt_s']:.1f} |")
    print(
        f"\non-the-fly / cached step time: {live['step_s'] / cached['step_s']:.2f}×; "
        f"data pipeline / cached model step throughput: {cached['pipeline_utt_s'] / cached['step_utt_s']:.1f}× "
        f"(augmented: {augmented / cached['step_utt_s']:.1f}×); augmentation costs the pipeline "
        f"{cached['pipeline_utt_s'] / augmented:.2f}× its time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
