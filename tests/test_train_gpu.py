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


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("norm", ["group", "layer"])
def test_an_s3prl_wav2vec2_trains_under_autocast_and_embeds_as_on_the_cpu(experiment, tmp_path, amp, norm) -> None:
    """The s3prl route (``hf_wav2vec2_custom``; the base models' group-normed CNN, the large ones' layer-normed
    one) trains under autocast on CUDA with finite losses and weights, and its model embeds on the GPU as on the
    CPU (float32)."""
    from uattr.upstream.create import create_upstream

    encoder = create_upstream(
        "wav2vec2", tmp_path / "encoder", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=[32] * 7, feat_extract_norm=norm, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, mask_time_prob=0.0,
    )
    data = copy.deepcopy(experiment)
    data["upstream"] = {"name": "s3prl:hf_wav2vec2_custom", "path": str(encoder), "finetune": "full"}
    data["trainer"]["amp"] = amp
    Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp").run()

    history = json.loads((tmp_path / "exp" / "valid_metrics.json").read_text())
    assert [entry["step"] for entry in history] == [2, 4]
    assert all(torch.isfinite(torch.tensor(entry["valid/loss"])) for entry in history)
    state = load_checkpoint(list_checkpoints(tmp_path / "exp" / "checkpoints")[4])
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())
    wavs = [0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    embeddings = {
        device: UnifiedEncoder.from_pretrained(tmp_path / "exp" / "model", device=device).embed(wavs, sample_rate=16000)
        for device in ("cpu", "cuda")
    }
    for attr, on_cpu in embeddings["cpu"].items():
        cosine = torch.nn.functional.cosine_similarity(on_cpu, embeddings["cuda"][attr].cpu(), dim=-1)
        assert (cosine > 0.9999).all(), (attr, cosine)
