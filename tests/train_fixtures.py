"""A tiny training set-up in a test's tmp_path: a random w2v-BERT upstream (hidden 32, 2 layers), generated
train/dev data dirs, random teacher tables (speaker vectors clustered per speaker), dev trials, and the
experiment config that ties them together."""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import uattr.train.trainer as trainer_module
from data_fixtures import make_data_dir
from uattr.config import from_dict
from uattr.data.tables import EmbeddingTableWriter
from uattr.train.config import ExperimentConfig
from uattr.train.trainer import Trainer
from uattr.upstream.create import create_upstream

TINY_W2V_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "mask_time_prob": 0.0,  # no SpecAugment: its mask embedding would get no gradient on 0.3 s inputs
}
SEMANTIC_DIM = 8
SPEAKER_DIM = 6


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the tiny model gains nothing from two, and the CPU is shared with other test runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_table(table_dir: Path, vectors: dict[str, np.ndarray], **meta: Any) -> Path:
    with EmbeddingTableWriter(table_dir, meta={"teacher": "random", **meta}) as writer:
        writer.write(list(vectors), np.stack(list(vectors.values())))
    return table_dir


def make_split(root: Path, name: str, speakers: tuple[str, ...], utts_per_speaker: int, seconds: float) -> Path:
    """Data dir ``root/data/<name>``, so the default target pattern's ``{set}`` is ``name``."""
    made = make_data_dir(root / f"audio_{name}", speakers=speakers, utts_per_speaker=utts_per_speaker, seconds=seconds)
    target = root / "data" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(made, target)
    return target


def write_teacher_tables(root: Path, data_dir: Path, seed: int) -> dict[str, Path]:
    """Random semantic vectors per utterance; speaker vectors = a speaker centroid + noise."""
    rng = np.random.default_rng(seed)
    utt2spk = dict(line.split() for line in (data_dir / "utt2spk").read_text().splitlines())
    centroids = {spk: rng.normal(size=SPEAKER_DIM) for spk in sorted(set(utt2spk.values()))}
    semantic = {utt: rng.normal(size=SEMANTIC_DIM).astype(np.float32) for utt in utt2spk}
    speaker = {
        utt: (centroids[spk] + 0.3 * rng.normal(size=SPEAKER_DIM)).astype(np.float32) for utt, spk in utt2spk.items()
    }
    return {
        "semantic": write_table(root / "dump" / "semantic" / data_dir.name, semantic),
        "speaker": write_table(root / "dump" / "speaker" / data_dir.name, speaker),
    }


def write_trials(data_dir: Path, path: Path) -> Path:
    """Every pair of utterances, target when they share a speaker (Kaldi format)."""
    utt2spk = dict(line.split() for line in (data_dir / "utt2spk").read_text().splitlines())
    lines = [
        f"{a} {b} {'target' if utt2spk[a] == utt2spk[b] else 'nontarget'}"
        for a, b in itertools.combinations(sorted(utt2spk), 2)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_experiment(root: Path) -> dict[str, Any]:
    """Write everything under ``root`` and return the experiment config (plain data, as from YAML)."""
    upstream = create_upstream("w2v-bert", root / "upstream", **TINY_W2V_BERT)
    train = make_split(root, "train", ("a", "b", "c"), 3, 0.3)
    dev = make_split(root, "dev", ("d", "e"), 3, 0.3)
    write_teacher_tables(root, train, seed=1)
    write_teacher_tables(root, dev, seed=2)
    return {
        "upstream": {"name": f"hf:{upstream}", "finetune": "full"},
        "attributes": {
            "semantic": {"expert": "distill"},
            "speaker": {"expert": "distill", "branch": {"layer_start": 2, "layer_end": 2}},
        },
        "data": {
            "train": str(train),
            "valid": str(dev),
            "target_pattern": str(root / "dump" / "{attr}" / "{set}"),
            "max_seconds": None,
            "max_batch_size": 2,
            "num_workers": 0,
            "valid_trials": {"speaker": str(write_trials(dev, root / "trials"))},
            "valid_retrieval": {"semantic": {}},
        },
        "trainer": {"max_steps": 6, "max_epochs": None, "valid_every": 3, "log_every": 2, "device": "cpu"},
    }


class Interrupt(Exception):
    """Stands in for a kill right after a checkpoint reached the disk."""


def run_until_killed(config: ExperimentConfig, exp_dir: Path, monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Train in ``exp_dir`` and die right after the checkpoint of ``step`` is saved, as a pre-empted job would;
    the real ``save_checkpoint`` is back in place afterwards, so the next Trainer resumes from that checkpoint."""
    real_save = trainer_module.save_checkpoint

    def save_then_die(state: dict[str, Any], path: Path) -> None:
        real_save(state, path)
        if state["step"] == step:
            raise Interrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupt):
        Trainer(config, exp_dir).run()
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)


def build_config(base: dict[str, Any], **sections: dict[str, Any]) -> ExperimentConfig:
    """The experiment ``base`` (a :func:`make_experiment` dict) with ``sections`` updated key by key."""
    data = copy.deepcopy(base)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return from_dict(ExperimentConfig, data)


class RecordingWriter:
    """Stands in for the TensorBoard writer: ``{tag: {step: value}}``."""

    def __init__(self) -> None:
        self.scalars: dict[str, dict[int, float]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, {})[step] = float(value)

    def close(self) -> None:
        pass
