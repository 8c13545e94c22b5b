"""The trainer on CUDA: bf16 autocast and fp16 with a grad scaler, checkpoints and resume (skipped without a GPU)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch

from train_fixtures import make_experiment, run_until_killed
from uattr.config import from_dict
from uattr.model import UnifiedEncoder
from uattr.train.checkpoint import list_checkpoints, load_checkpoint
from uattr.train.config import ExperimentConfig
from uattr.train.trainer import Trainer

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict[str, Any]:
    data = make_experiment(tmp_path_factory.mktemp("experiment"))
    data["trainer"].update(device="cuda", max_steps=4, valid_every=2)
    return data


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_and_resume(experiment, tmp_path, monkeypatch, amp) -> None:
    data = copy.deepcopy(experiment)
    data["trainer"]["amp"] = amp
    config = from_dict(ExperimentConfig, data)
    run_until_killed(config, tmp_path / "exp", monkeypatch, step=2)
    trainer = Trainer(config, tmp_path / "exp")
    assert trainer.step == 2 and next(trainer.model.parameters()).is_cuda
    assert trainer.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    trainer.run()

    state = load_checkpoint(list_checkpoints(tmp_path / "exp" / "checkpoints")[4])
    assert (state["scaler"] is not None) == (amp == "fp16")
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())
    history = json.loads((tmp_path / "exp" / "valid_metrics.json").read_text())
    assert [entry["step"] for entry in history] == [2, 4]
    assert all(torch.isfinite(torch.tensor(entry["valid/loss"])) for entry in history)
    model = UnifiedEncoder.from_pretrained(tmp_path / "exp" / "model", device="cuda")
    assert model.embed([torch.zeros(4000)], sample_rate=16000)["speaker"].is_cuda
