"""The trainer end to end on a tiny w2v-BERT: resume equivalence and the changes a resume refuses, both optimisers
stepping, gradient accumulation, validation metrics, n-best averaging, on-the-fly teachers, and the files of an
experiment dir."""

from __future__ import annotations

import copy
import logging
import math
import re
import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import soundfile
import torch
from torch import nn

from train_fixtures import (  # noqa: F401  (one_thread: autouse fixture)
    SEMANTIC_DIM,
    SPEAKER_DIM,
    RecordingWriter,
    build_config,
    make_experiment,
    one_thread,
    run_until_killed,
    write_table,
    write_teacher_tables,
)
import uattr.train.trainer as trainer_module
from uattr.config import from_dict, load_yaml
from uattr.data.kaldi import write_data_dir
from uattr.data.sampler import DynamicBatchSampler
from uattr.errors import ConfigError, DataError
from uattr.model import UnifiedEncoder
from uattr.scoring.metrics import sv_metrics
from uattr.scoring.trials import read_trials
from uattr.teachers.base import Teacher, register_teacher
from uattr.train.checkpoint import list_checkpoints, load_checkpoint
from uattr.train.config import ExperimentConfig, TrainerConfig, load_experiment_config
from uattr.train.data import build_split
from uattr.train.distributed import DistributedContext, init_distributed
from uattr.train.trainer import Trainer, total_updates, train
from uattr.train.validate import ValidationTasks, load_tasks, metric_names, validate


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict[str, Any]:
    return make_experiment(tmp_path_factory.mktemp("experiment"))


def test_resume_is_bit_identical(experiment, tmp_path, monkeypatch) -> None:
    """6 steps in one go == 3 steps, a kill, and a resumed run to 6 (model, optimisers, NewBob, n-best)."""
    config = build_config(experiment, trainer={"n_best": 2})
    Trainer(config, tmp_path / "straight").run()

    run_until_killed(config, tmp_path / "resumed", monkeypatch, step=3)
    assert list(list_checkpoints(tmp_path / "resumed" / "checkpoints")) == [3]
    Trainer(config, tmp_path / "resumed").run()

    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "ckpt-6.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "ckpt-6.pt")
    assert straight["model"].keys() == resumed["model"].keys()
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for group, state in straight["optimizers"].items():
        for index, values in state["state"].items():
            for name, value in values.items():
                assert torch.equal(
                    torch.as_tensor(value), torch.as_tensor(resumed["optimizers"][group]["state"][index][name])
                )
    assert straight["schedules"] == resumed["schedules"]
    assert straight["best"] == resumed["best"]
    assert straight["history"] == resumed["history"]
    assert torch.equal(straight["rng"][0]["torch"], resumed["rng"][0]["torch"])
    final = [
        safetensors.torch.load_file(tmp_path / run / "model" / "model.safetensors") for run in ("straight", "resumed")
    ]
    assert all(torch.equal(final[0][key], final[1][key]) for key in final[0])
    # TensorBoard shows the same steps: what was logged up to the checkpoint's step (its validation) survives.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = []
    for run in ("straight", "resumed"):
        events = EventAccumulator(str(tmp_path / run / "tensorboard")).Reload()
        scalars.append({tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]})
    assert scalars[0]["valid/loss"] == [3, 6]
    assert scalars[0] == scalars[1]


def test_a_run_killed_right_after_its_last_checkpoint_completes_its_bookkeeping_on_resume(
    experiment, tmp_path, monkeypatch
) -> None:
    """Killed between the checkpoint of the last step and valid_metrics.json (and the pruning): the resumed
    run has nothing left to train, and still writes both."""
    config = build_config(experiment, trainer={"keep_last": 1, "n_best": 1})
    run_until_killed(config, tmp_path / "exp", monkeypatch, step=6)
    metrics = tmp_path / "exp" / "valid_metrics.json"
    assert [entry["step"] for entry in json.loads(metrics.read_text())] == [3]
    assert len(list_checkpoints(tmp_path / "exp" / "checkpoints")) == 2
    Trainer(config, tmp_path / "exp").run()
    assert [entry["step"] for entry in json.loads(metrics.read_text())] == [3, 6]
    assert len(list_checkpoints(tmp_path / "exp" / "checkpoints")) == 1


def test_both_optimisers_update_every_trainable_parameter(experiment, tmp_path) -> None:
    """The paper's pair (encoder Adam 1e-5, branches Adadelta 1.5): every trainable parameter moves."""
    data = copy.deepcopy(experiment)
    data["attributes"]["speaker"]["branch"] = {}  # two layers: a lone layer's mixing logit has no gradient
    data["trainer"].update(max_steps=2, valid_every=None, average_best=False)
    trainer = Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp")
    assert {type(o).__name__ for o in trainer.optimizers.values()} == {"Adam", "Adadelta"}
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any(name.startswith("upstream.") for name in before) and any(name.startswith("experts.") for name in before)
    trainer.run()
    unchanged = [
        name for name, p in trainer.model.named_parameters() if p.requires_grad and torch.equal(p, before[name])
    ]
    # Softmax over time ignores a constant added to every score, so the score bias never gets a gradient.
    assert [name for name in unchanged if not name.endswith("pooling.score.bias")] == []


def test_a_scheduled_attribute_is_left_alone_until_its_start_step(experiment, tmp_path) -> None:
    """Steps 0..3 update the encoder and the semantic branch only; from step 4 on the speaker branch learns."""
    def train(start_step: int, exp_dir: str) -> tuple[dict[str, torch.Tensor], Trainer]:
        data = copy.deepcopy(experiment)
        data["attributes"]["speaker"]["weight_schedule"] = {"start_step": start_step}
        data["trainer"].update(max_steps=4, valid_every=None, average_best=False)
        trainer = Trainer(from_dict(ExperimentConfig, data), tmp_path / exp_dir)
        before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
        trainer.run()
        return before, trainer

    def moved(before: dict[str, torch.Tensor], trainer: Trainer, prefix: str) -> bool:
        return any(
            not torch.equal(p, before[name]) for name, p in trainer.model.named_parameters() if name.startswith(prefix)
        )

    before, trainer = train(start_step=4, exp_dir="late")
    assert not moved(before, trainer, "experts.speaker.")
    assert moved(before, trainer, "experts.semantic.") and moved(before, trainer, "upstream.")
    before, trainer = train(start_step=3, exp_dir="early")
    assert moved(before, trainer, "experts.speaker.")


class LookupModel(nn.Module):
    """A stand-in encoder whose embeddings are the dev teacher vectors (found by each utterance's length)."""

    def __init__(self, by_length: dict[str, dict[int, np.ndarray]]) -> None:
        super().__init__()
        self.by_length = by_length

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            attr: torch.tensor(np.stack([table[int(n)] for n in wav_lens]), dtype=torch.float32)
            for attr, table in self.by_length.items()
        }

    @property
    def attributes(self) -> list[str]:
        return list(self.by_length)

    def expert(self, attr: str) -> SimpleNamespace:
        return SimpleNamespace(loss_fn=SimpleNamespace(reduction="sum"))

    def compute_loss(self, embeddings, targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = {
            attr: 50 * (1 - nn.functional.cosine_similarity(e, targets[attr])).sum() for attr, e in embeddings.items()
        }
        return sum(losses.values()), losses


def test_validation_metrics_on_a_tiny_dev_set(experiment, tmp_path) -> None:
    """With embeddings equal to the teacher's: zero loss, R@1 100 %, and the teacher vectors' own EER."""
    config = build_config(experiment, data={"max_batch_size": 4})
    dev = build_split(config.data, "valid", ["semantic", "speaker"], 16000, 0, DistributedContext())
    lengths = {utt: len(dev.dataset.audio.load(utt)) for utt in dev.dataset.utt_ids}
    # Make every dev utterance's length unique so the stand-in model can tell them apart.
    for offset, utt in enumerate(sorted(lengths)):
        lengths[utt] -= offset
    dev.dataset.audio.load = lambda utt, load=dev.dataset.audio.load: load(utt)[: lengths[utt]]
    tables = {attr: dev.dataset.targets[attr] for attr in ("semantic", "speaker")}
    model = LookupModel({attr: {lengths[u]: v for u, v in table.items()} for attr, table in tables.items()})

    tasks = load_tasks(config.data)
    metrics = validate(model, dev.loader, torch.device("cpu"), tasks)

    assert sorted(metrics) == sorted(metric_names(["semantic", "speaker"], tasks))
    assert metrics["valid/loss"] == pytest.approx(0, abs=1e-4)
    assert metrics["valid/semantic/r@1"] == 100.0
    trials = read_trials(experiment["data"]["valid_trials"]["speaker"])
    unit = {u: v / np.linalg.norm(v) for u, v in tables["speaker"].items()}
    scores = np.array([unit[e] @ unit[t] for e, t in zip(trials.enroll, trials.test)])
    expected = sv_metrics(scores, trials.labels, p_targets=(0.01,))
    assert metrics["valid/speaker/eer"] == pytest.approx(expected["eer"])
    assert metrics["valid/speaker/min_dcf_0.01"] == pytest.approx(expected["min_dcf"]["0.01"])


@pytest.mark.parametrize(("loss", "weighting"), [("cosine", "fixed"), ("mse", "fixed"), ("cosine", "uncertainty")])
def test_validation_loss_does_not_depend_on_the_dev_batch_size(experiment, loss, weighting) -> None:
    """The mean per dev utterance, whether the loss sums (cosine) or averages (mse) over a batch, and with a learned
    log-variance added once per loss term."""
    data = copy.deepcopy(experiment)
    data["loss_weighting"] = weighting
    for attr, dim in (("semantic", SEMANTIC_DIM), ("speaker", SPEAKER_DIM)):
        data["attributes"][attr].update(loss={"name": loss}, dim=dim)
    config = from_dict(ExperimentConfig, data)
    torch.manual_seed(0)
    model = UnifiedEncoder(config.model_config())
    if weighting == "uncertainty":
        with torch.no_grad():
            model.loss_log_vars["semantic"].fill_(0.5)
    found = []
    for size in (1, 2, 3, 6):
        config.data.max_batch_size = size
        dev = build_split(config.data, "valid", ["semantic", "speaker"], 16000, 0, DistributedContext())
        metrics = validate(model, dev.loader, torch.device("cpu"), ValidationTasks())
        found.append({name: value for name, value in metrics.items() if name.endswith("loss")})
    for metrics in found[1:]:
        assert metrics == pytest.approx(found[0], rel=1e-5)


def test_experiment_dir_and_n_best_average(experiment, tmp_path) -> None:
    """Files of EXP; the final model is the parameter mean of the n best checkpoints by the criterion."""
    settings = {"max_steps": 4, "valid_every": 1, "n_best": 2, "keep_last": 1, "best_criterion": "valid/speaker/loss"}
    exp = tmp_path / "exp"
    Trainer(build_config(experiment, trainer=settings), exp).run()

    history = json.loads((exp / "valid_metrics.json").read_text())
    assert [entry["step"] for entry in history] == [1, 2, 3, 4]
    best = sorted(history, key=lambda entry: entry["valid/speaker/loss"])[:2]
    checkpoints = list_checkpoints(exp / "checkpoints")
    assert set(checkpoints) == {entry["step"] for entry in best} | {4}
    states = [load_checkpoint(checkpoints[entry["step"]])["model"] for entry in best]
    final = safetensors.torch.load_file(exp / "model" / "model.safetensors")
    for key, value in final.items():
        torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2, rtol=0, atol=1e-6)

    saved = load_yaml(exp / "config.yaml")
    assert saved["attributes"]["semantic"]["dim"] == 8 and saved["attributes"]["speaker"]["dim"] == 6
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))
    model = UnifiedEncoder.from_pretrained(exp / "model")
    embeddings = model.embed([np.zeros(4000, dtype=np.float32)], sample_rate=16000)
    assert embeddings["speaker"].shape == (1, 6)

    # The finished run again with average_best off: the model is rebuilt as the best checkpoint alone.
    Trainer(build_config(experiment, trainer={**settings, "average_best": False}), exp).run()
    final = safetensors.torch.load_file(exp / "model" / "model.safetensors")
    for key, value in final.items():
        assert torch.equal(value, states[0][key]), key
    assert json.loads((exp / "model" / "selection.json").read_text()) == {
        "steps": [best[0]["step"]],
        "criterion": "valid/speaker/loss",
    }


@register_teacher("test-energy")
class EnergyTeacher(Teacher):
    """A cheap audio teacher: a few statistics of the waveform."""

    input = "audio"
    normalized = False
    dim = 3

    def embed(self, batch) -> np.ndarray:
        return np.stack([[np.abs(w).mean(), w.std(), 1.0] for w in batch]).astype(np.float32)


def test_on_the_fly_teacher_targets(experiment, tmp_path) -> None:
    data = copy.deepcopy(experiment)
    data["attributes"]["speaker"]["teacher"] = {"name": "test-energy", "field": "audio"}
    data["trainer"].update(teacher_mode="on_the_fly", on_the_fly=["speaker"], max_steps=2, valid_every=None)
    pattern = data["data"].pop("target_pattern")
    data["data"]["targets"] = {
        "semantic": {
            "train": pattern.format(attr="semantic", set="train"),
            "valid": pattern.format(attr="semantic", set="dev"),
        }
    }
    trainer = Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp")
    assert trainer.config.attributes["speaker"].dim == 3
    trainer.run()
    assert "valid/speaker/eer" in json.loads((tmp_path / "exp" / "valid_metrics.json").read_text())[-1]


def test_an_on_the_fly_teacher_that_refuses_a_crop_names_the_utterance() -> None:
    from uattr.errors import BatchItemError
    from uattr.train.targets import OnTheFlyTargets

    class SilenceRefusing(EnergyTeacher):
        def embed(self, batch) -> np.ndarray:
            silent = [index for index, wav in enumerate(batch) if not np.abs(wav).max()]
            if silent:
                raise BatchItemError("the audio is digital silence", silent[0])
            return super().embed(batch)

    batch = {"ids": ["u1", "u2"], "wavs": torch.stack([torch.ones(800), torch.zeros(800)]),
             "wav_lens": torch.tensor([800, 800]), "targets": {}}
    with pytest.raises(DataError, match=r"^attributes.speaker: on-the-fly teacher: utterance 'u2': the audio is "
                                        r"digital silence$"):
        OnTheFlyTargets({"speaker": SilenceRefusing()}, 16000)(batch)


def test_teacher_table_of_another_dimension_is_refused(experiment, tmp_path) -> None:
    config = build_config(experiment)
    config.attributes["speaker"].dim = 7
    with pytest.raises(ConfigError, match=r"attributes\.speaker\.dim: 7.*6-d targets"):
        Trainer(config, tmp_path / "exp")


def test_unknown_best_criterion_lists_the_metrics(experiment, tmp_path) -> None:
    config = build_config(experiment, trainer={"max_steps": 1, "best_criterion": "valid/speaker/r@1"})
    with pytest.raises(ConfigError, match=r"best_criterion 'valid/speaker/r@1'.*valid/speaker/eer"):
        Trainer(config, tmp_path / "exp").run()


def test_mixed_precision_is_forced_off_on_cpu(experiment, tmp_path, caplog) -> None:
    config = build_config(experiment, trainer={"amp": "bf16"})
    with caplog.at_level("INFO"):
        trainer = Trainer(config, tmp_path / "exp")
    assert trainer.amp_dtype is None and trainer.scaler is None
    assert "trainer.amp bf16 is forced off on cpu" in caplog.text


def test_the_ddp_probe_leaves_every_rng_state_alone(experiment, tmp_path) -> None:
    """``find_unused_parameters: auto`` probes with a training-mode forward (dropout); a resumed run must still
    find the RNG states its checkpoint restored."""
    data = copy.deepcopy(experiment)
    data["upstream"]["options"] = {"hidden_dropout": 0.1}
    trainer = Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp")
    trainer.context = DistributedContext(world_size=2)  # a DDP run probes
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert trainer._find_unused_parameters() is False
    after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]


def test_the_ddp_probe_leaves_batch_norm_statistics_alone(experiment, tmp_path) -> None:
    """Encoders with a batch norm (HuBERT's and wav2vec 2.0's conv_pos_batch_norm, conformer convolutions) update
    its running statistics in a training-mode forward; the probe must not."""
    trainer = Trainer(from_dict(ExperimentConfig, experiment), tmp_path / "exp")
    trainer.context = DistributedContext(world_size=2)
    norm = torch.nn.BatchNorm1d(32, affine=False)
    trainer.model.upstream.add_module("probe_norm", norm)  # fed the encoder's output frames by a hook

    def normalise_the_last_layer(module, inputs, output) -> None:
        norm(output[0][-1].flatten(0, 1))

    trainer.model.upstream.register_forward_hook(normalise_the_last_layer)
    before = {name: buffer.clone() for name, buffer in trainer.model.named_buffers()}
    assert trainer._find_unused_parameters() is False
    assert int(norm.num_batches_tracked) == 0 and torch.equal(norm.running_mean, torch.zeros(32))
    for name, buffer in trainer.model.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_gradient_accumulation_averages_over_the_micro_batches_of_each_update(experiment, tmp_path) -> None:
    """grad_accum 4 over an epoch of 5 batches: updates of 4 and 1 micro-batches. Each update's gradient and logged
    loss are means over its own micro-batches; the logged loss weight is the one the update used."""
    data = copy.deepcopy(experiment)
    data["upstream"]["options"] = {"conformer_conv_dropout": 0.0}  # no dropout: a gradient can be recomputed
    data["attributes"]["speaker"]["weight_schedule"] = {"start_step": 1}
    data["trainer"].update(max_steps=2, grad_accum=4, log_every=1, valid_every=None, grad_clip=None)
    trainer = Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp")
    trainer.writer = RecordingWriter()
    batches, losses, gradients, expected = [], [], [], []
    real_forward_backward, real_update = trainer._forward_backward, trainer._update

    def forward_backward(batch, *args, **kwargs):
        batches.append(batch)
        result = real_forward_backward(batch, *args, **kwargs)
        losses.append(float(result["loss"]))
        return result

    def update():
        gradients.append(torch.cat([p.grad.flatten() for p in trainer.parameters if p.grad is not None]))
        if len(batches) == 5:  # the epoch's lone last micro-batch: its own loss's gradient
            saved = [p.grad for p in trainer.parameters]
            trainer.optimizers["upstream"].zero_grad(), trainer.optimizers["branches"].zero_grad()
            batch = trainer._to_device(batches[4])
            embeddings = trainer.model(batch["wavs"], batch["wav_lens"])
            trainer.model.compute_loss(embeddings, batch["targets"], step=trainer.step)[0].backward()
            expected.append(torch.cat([p.grad.flatten() for p in trainer.parameters if p.grad is not None]))
            for parameter, grad in zip(trainer.parameters, saved):
                parameter.grad = grad
        return real_update()

    trainer._forward_backward, trainer._update = forward_backward, update
    trainer.run()
    assert len(losses) == 5
    logged = trainer.writer.scalars
    assert logged["train/loss"] == pytest.approx({1: sum(losses[:4]) / 4, 2: losses[4]})
    torch.testing.assert_close(gradients[1], expected[0])
    assert logged["loss_weight/speaker"] == {1: 0.0, 2: 1.0}


def test_resume_refuses_a_config_its_state_cannot_honour(experiment, tmp_path, monkeypatch) -> None:
    """A new lr or best criterion is refused by name (config.yaml keeps the run's own); a longer run is not."""
    config = build_config(experiment)
    exp = tmp_path / "exp"
    run_until_killed(config, exp, monkeypatch, step=3)
    changed = build_config(experiment, trainer={"best_criterion": "valid/semantic/r@1"})
    changed.optim.branches.optimizer.lr = 0.1
    with pytest.raises(ConfigError) as refused:
        Trainer(changed, exp)
    message = str(refused.value)
    assert "changed in optim.branches.optimizer.lr, trainer.best_criterion," in message and "--exp-dir" in message
    assert "checkpoints" in message.rsplit("--exp-dir", 1)[1]
    assert load_yaml(exp / "config.yaml")["optim"]["branches"]["optimizer"]["lr"] == 1.5

    longer = build_config(
        experiment, trainer={"max_steps": 7, "log_every": 1, "keep_last": 3}, data={"num_workers": 1}
    )
    trainer = Trainer(longer, exp)
    assert trainer.step == 3 and trainer.total_steps == 7
    assert load_yaml(exp / "config.yaml")["trainer"]["max_steps"] == 7


def test_resume_restores_the_fp16_grad_scaler(experiment, tmp_path, monkeypatch) -> None:
    """The fp16 loss scale continues across a kill (a GradScaler on the CPU stands in for CUDA's: same state)."""
    monkeypatch.setattr(
        trainer_module,
        "amp_settings",
        lambda amp, device: (None, torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)),
    )
    config = build_config(experiment)
    Trainer(config, tmp_path / "straight").run()
    run_until_killed(config, tmp_path / "resumed", monkeypatch, step=3)
    Trainer(config, tmp_path / "resumed").run()
    straight, resumed = (load_checkpoint(tmp_path / run / "checkpoints" / "ckpt-6.pt") for run in ("straight", "resumed"))
    assert straight["scaler"]["scale"] == 2.0**16  # grown at each of the 6 updates
    assert resumed["scaler"] == straight["scaler"]
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_an_update_the_fp16_grad_scaler_skips_is_logged(experiment, tmp_path, monkeypatch, caplog) -> None:
    """A loss scale of 2^127 overflows float32 gradients: the scaler skips those updates and halves the scale."""
    monkeypatch.setattr(
        trainer_module, "amp_settings", lambda amp, device: (None, torch.amp.GradScaler("cpu", init_scale=2.0**127))
    )
    with caplog.at_level(logging.INFO, logger="uattr.train.trainer"):
        Trainer(build_config(experiment, trainer={"max_steps": 2, "valid_every": None}), tmp_path / "exp").run()
    assert "step 1: fp16 gradients overflowed; update skipped, loss scale now 8.50706e+37" in caplog.text


@pytest.mark.parametrize("grad_clip", [None, 5.0])
def test_an_fp16_overflow_in_one_parameter_group_skips_both(experiment, tmp_path, monkeypatch, grad_clip) -> None:
    """Only the encoder's gradients overflow: the norm over both groups is infinite and clipping scales every
    gradient by NaN (no clip) or 0, so the branches must not step either, although their own gradients were
    finite, and Adam's moments must not move them."""
    monkeypatch.setattr(
        trainer_module, "amp_settings", lambda amp, device: (None, torch.amp.GradScaler("cpu", init_scale=2.0**4))
    )
    config = build_config(experiment, trainer={"grad_clip": grad_clip}, optim={"branches": {"optimizer": {
        "name": "adam", "lr": 1e-3}}})
    trainer = Trainer(config, tmp_path / "exp")
    batches = iter(trainer.train_data.loader)
    trainer._forward_backward(next(batches), 1, sync=True)
    trainer._update()  # a normal update first, so that Adam has moments that could move the weights
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    trainer._forward_backward(next(batches), 1, sync=True)
    next(p for p in trainer.model.upstream.parameters() if p.grad is not None).grad.view(-1)[0] = math.inf
    trainer._update()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert trainer.scaler.get_scale() == 2.0**3


def test_a_label_attribute_is_validated_by_its_accuracy_and_classifies(experiment, tmp_path) -> None:
    """valid/<attr>/acc is the share of dev utterances whose class the trained classifier's logits pick (the
    model selection can use it), and UnifiedEncoder.classify gives those classes' posteriors."""
    data = copy.deepcopy(experiment)
    dump = Path(data["data"]["target_pattern"]).parent.parent
    for split in (data["data"]["train"], data["data"]["valid"]):
        utts = sorted(line.split()[0] for line in (Path(split) / "utt2spk").read_text().splitlines())
        write_table(dump / "parity" / Path(split).name, {utt: np.array([i % 2], np.float32) for i, utt in
                                                         enumerate(utts)}, classes=["even", "odd"])
    data["attributes"]["parity"] = {"expert": "label", "loss": {"name": "ce"}}
    config = build_config(data, trainer={"best_criterion": "valid/parity/acc"})
    exp = tmp_path / "exp"
    Trainer(config, exp).run()
    state = load_checkpoint(list_checkpoints(exp / "checkpoints")[6])
    model = UnifiedEncoder(load_experiment_config(exp / "config.yaml").model_config())
    model.load_state_dict(state["model"])
    dev = Path(data["data"]["valid"])
    utts = sorted(line.split()[0] for line in (dev / "utt2spk").read_text().splitlines())
    wav_scp = dict(line.split() for line in (dev / "wav.scp").read_text().splitlines())
    classes, posteriors = model.classify([soundfile.read(wav_scp[utt], dtype="float32")[0] for utt in utts], 16000,
                                         "parity")
    assert classes == ["even", "odd"] and posteriors.shape == (6, 2)
    torch.testing.assert_close(posteriors.sum(dim=1), torch.ones(6))
    correct = sum(int(posteriors[i].argmax()) == i % 2 for i in range(6))
    assert state["history"][-1]["valid/parity/acc"] == pytest.approx(100 * correct / 6)
    with pytest.raises(ConfigError, match="attribute 'speaker' is not a label attribute"):
        model.classify([np.zeros(16000, np.float32)], 16000, "speaker")


def test_a_labels_table_for_an_expert_of_float_targets_is_named(experiment, tmp_path) -> None:
    data = copy.deepcopy(experiment)
    dump = Path(data["data"]["target_pattern"]).parent.parent
    utts = [line.split()[0] for line in (Path(data["data"]["train"]) / "utt2spk").read_text().splitlines()]
    write_table(dump / "rate" / "train", {utt: np.array([0], np.float32) for utt in utts}, classes=["fast", "slow"])
    data["attributes"]["rate"] = {"expert": "distill"}
    with pytest.raises(ConfigError, match=r"^attributes\.rate\.expert: .*dump/rate/train/meta\.json is a labels "
                                          r"table \(class indices of fast, slow\), but expert 'distill' learns float"):
        Trainer(build_config(data), tmp_path / "exp")


def test_label_experts_registered_as_factories_or_with_losses_without_scores(experiment, tmp_path, monkeypatch):
    """A factory function (not a class) under a labels table is not checked as a class; a plug-in classification
    loss that gives no class scores still trains, without a dev accuracy, and classify says why it cannot."""
    from uattr.attributes.label import LabelExpert
    from uattr.losses import ClassificationLoss
    from uattr.registry import ATTRIBUTE_EXPERTS, LOSSES

    monkeypatch.setattr(ATTRIBUTE_EXPERTS, "_items", dict(ATTRIBUTE_EXPERTS._items))
    monkeypatch.setattr(LOSSES, "_items", dict(LOSSES._items))

    @ATTRIBUTE_EXPERTS.register("label_factory")
    def label_factory(*args):
        return LabelExpert(*args)

    @LOSSES.register("plain_ce")
    class PlainCrossEntropy(ClassificationLoss):
        def __init__(self, num_classes: int, embedding_dim: int) -> None:
            super().__init__(num_classes, embedding_dim)
            self.classifier = nn.Linear(embedding_dim, num_classes)

        def forward(self, embedding, target):
            return nn.functional.cross_entropy(self.classifier(embedding), target)

    data = copy.deepcopy(experiment)
    dump = Path(data["data"]["target_pattern"]).parent.parent
    for split in (data["data"]["train"], data["data"]["valid"]):
        utts = [line.split()[0] for line in (Path(split) / "utt2spk").read_text().splitlines()]
        write_table(dump / "oddity" / Path(split).name, {utt: np.array([len(utt) % 2], np.float32) for utt in utts},
                    classes=["even", "odd"])
    data["attributes"]["oddity"] = {"expert": "label_factory", "loss": {"name": "plain_ce"}}
    trainer = Trainer(build_config(data, trainer={"max_steps": 3}), tmp_path / "exp")
    trainer.run()
    assert "valid/oddity/loss" in trainer.history[-1] and "valid/oddity/acc" not in trainer.history[-1]
    with pytest.raises(ConfigError, match="attribute 'oddity': its loss PlainCrossEntropy gives no class scores"):
        trainer.model.classify([np.zeros(16000, np.float32)], 16000, "oddity")


def test_a_missing_data_dir_is_named_before_its_teacher_tables(experiment, tmp_path) -> None:
    missing = str(tmp_path / "data" / "trian")
    with pytest.raises(ConfigError, match=rf"^data\.train: {re.escape(missing)}: no such data directory$"):
        Trainer(build_config(experiment, data={"train": missing}), tmp_path / "exp")


def test_an_encoder_whose_frames_depend_on_the_padding_is_validated_one_utterance_at_a_time(
    experiment, tmp_path
) -> None:
    """A GroupNorm front end (wav2vec 2.0 Base) sees a batch's padding: dev embeddings, and the model selection
    that rests on them, must be those extraction gives, which encodes such a model one utterance at a time."""
    from uattr.upstream.create import create_upstream

    assert any(len(batch) > 1 for batch in Trainer(build_config(experiment), tmp_path / "a").valid_data.sampler)
    group_norm = create_upstream("wav2vec2", tmp_path / "w2v2", hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 7,
                                 feat_extract_norm="group", num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    config = build_config(experiment, upstream={"name": f"hf:{group_norm}"})
    trainer = Trainer(config, tmp_path / "b")
    assert not trainer.model.upstream.padding_invariant
    assert [len(batch) for batch in trainer.valid_data.sampler] == [1] * 6
    assert max(len(batch) for batch in trainer.train_data.sampler) == 2  # training batches stay as configured


def test_resume_refuses_data_that_changed_under_the_same_paths(tmp_path, monkeypatch) -> None:
    """New teacher vectors or a wav.scp pointing elsewhere, same ids and count: refused by name; the data put
    back, the run resumes."""
    root = tmp_path / "root"
    config = from_dict(ExperimentConfig, make_experiment(root))
    exp = tmp_path / "exp"
    run_until_killed(config, exp, monkeypatch, step=3)
    train_dir = Path(config.data.train)

    def rewrite_teacher_tables(seed: int) -> None:
        for attr in ("semantic", "speaker"):
            shutil.rmtree(root / "dump" / attr / "train")
        write_teacher_tables(root, train_dir, seed=seed)

    rewrite_teacher_tables(seed=99)
    with pytest.raises(ConfigError, match=r"data changed since this checkpoint \(train targets of 'semantic', "
                       r"train targets of 'speaker'\).*--exp-dir"):
        Trainer(config, exp)
    rewrite_teacher_tables(seed=1)  # as make_experiment wrote them

    wav_scp = train_dir / "wav.scp"
    original = wav_scp.read_text()
    (first, first_path), (second, second_path) = [line.split(maxsplit=1) for line in original.splitlines()[:2]]
    swapped = original.replace(first_path, "@").replace(second_path, first_path).replace("@", second_path)
    wav_scp.write_text(swapped)
    with pytest.raises(ConfigError, match=r"\(train audio \(wav.scp, segments\)\)"):
        Trainer(config, exp)
    wav_scp.write_text(original)
    assert Trainer(config, exp).step == 3


def test_augmented_training_resumes_bit_identically_and_refuses_other_noise(experiment, tmp_path, monkeypatch) -> None:
    """Noise and reverberation drawn per (seed, epoch, item): a killed and resumed run ends with the weights of the
    uninterrupted one (and not those of a run without augmentation); noise recordings changed under the same data
    dir are refused on resume."""
    rng = np.random.default_rng(0)
    wav_scp = {}
    recordings = {"n1": rng.normal(size=8000), "n2": rng.normal(size=3000), "r1": [1.0, 0.0, 0.5, 0.25]}
    for name, samples in recordings.items():
        wav_scp[name] = str(tmp_path / f"{name}.wav")
        soundfile.write(wav_scp[name], np.asarray(samples, np.float32) * 0.1, 16000)
    noise = write_data_dir(tmp_path / "noise", wav_scp={k: v for k, v in wav_scp.items() if k != "r1"})
    rirs = write_data_dir(tmp_path / "rirs", wav_scp={"r1": wav_scp["r1"]})
    augment = {"prob": 0.8, "noise": {"noise": {"data": str(noise), "snr": [0, 10]}}, "rir": str(rirs)}
    config = build_config(experiment, data={"augment": augment})
    Trainer(config, tmp_path / "straight").run()
    run_until_killed(config, tmp_path / "resumed", monkeypatch, step=3)
    Trainer(config, tmp_path / "resumed").run()
    Trainer(build_config(experiment), tmp_path / "clean").run()
    final = {
        run: safetensors.torch.load_file(tmp_path / run / "model" / "model.safetensors")
        for run in ("straight", "resumed", "clean")
    }
    assert all(torch.equal(final["straight"][key], final["resumed"][key]) for key in final["straight"])
    assert not all(torch.equal(final["straight"][key], final["clean"][key]) for key in final["straight"])

    run_until_killed(config, tmp_path / "changed", monkeypatch, step=3)
    (noise / "wav.scp").write_text(f"n1 {wav_scp['n2']}\nn2 {wav_scp['n1']}\n")
    with pytest.raises(ConfigError, match=r"data changed since this checkpoint \(train augmentation 'noise'"):
        Trainer(config, tmp_path / "changed")


@pytest.mark.parametrize(
    ("valid_every", "expected"),
    [(None, [(5, 1), (10, 2)]), (5, [(5, 1), (10, 2)]), (2, [(2, 1), (4, 1), (6, 2), (8, 2), (10, 2)])],
)
def test_each_validation_records_the_epoch_of_its_step(experiment, tmp_path, valid_every, expected) -> None:
    """5 batches an epoch: step 5 is epoch 1's last update, validated after the epoch or inside it."""
    config = build_config(experiment, trainer={"max_steps": None, "max_epochs": 2, "valid_every": valid_every})
    Trainer(config, tmp_path / "exp").run()
    history = json.loads((tmp_path / "exp" / "valid_metrics.json").read_text())
    assert [(entry["step"], entry["epoch"]) for entry in history] == expected


def test_a_checkpoint_save_cut_short_leaves_no_temporary_file_behind(experiment, tmp_path, monkeypatch) -> None:
    config = build_config(experiment)
    exp = tmp_path / "exp"
    run_until_killed(config, exp, monkeypatch, step=3)
    leftover = exp / "checkpoints" / ".ckpt-6.pt.x1y2z3.tmp"  # as a kill during torch.save leaves it
    leftover.write_bytes(b"half a checkpoint")
    trainer = Trainer(config, exp)
    assert trainer.step == 3 and not leftover.exists()


def test_the_logged_lr_is_the_one_each_update_used(experiment, tmp_path) -> None:
    warmup = {"optim": {"upstream": {"optimizer": {"lr": 1e-3},
                                     "scheduler": {"name": "warmup_linear", "warmup_steps": 2}}}}
    config = build_config({**experiment, **warmup}, trainer={"max_steps": 3, "log_every": 1, "valid_every": None})
    train(config, tmp_path / "exp", show_progress=False)
    logged = re.findall(r"step (\d)/3 .*lr upstream ([\d.e-]+),", (tmp_path / "exp" / "train.log").read_text())
    assert [(int(step), float(lr)) for step, lr in logged] == [(1, 0.0), (2, 5e-4), (3, 1e-3)]  # warm-up, then full


def test_a_log_line_covers_every_update_since_the_last_across_epochs(experiment, tmp_path) -> None:
    """5 updates an epoch, a line every 2: the line of update 6 is the mean of updates 5 (epoch 1) and 6."""
    config = build_config(experiment, trainer={"max_steps": None, "max_epochs": 2, "valid_every": None})
    trainer = Trainer(config, tmp_path / "exp", show_progress=False)
    assert len(trainer.train_data.sampler) == 5 and config.trainer.log_every == 2
    losses, logged = [], {}
    forward_backward = trainer._forward_backward

    def recorded(*args, **kwargs):
        values = forward_backward(*args, **kwargs)
        losses.append(float(values["loss"]))
        return values

    trainer._forward_backward = recorded
    trainer._log_training = lambda running, grad_norm, seconds: logged.update(
        {trainer.step: float(running["loss"] / running["micro_batches"])}
    )
    trainer.run()
    assert sorted(logged) == [2, 4, 6, 8, 10]
    assert logged[6] == pytest.approx((losses[4] + losses[5]) / 2, rel=1e-6)


def _sum_over_two_ranks(rank: int, store: str, results: Any) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        context = DistributedContext(rank=rank, world_size=2)
        results[rank] = context.sum_over_ranks({"loss": torch.tensor(1.5 + rank), "micro_batches": 2})
    finally:
        torch.distributed.destroy_process_group()


def test_sum_over_ranks_all_reduces(tmp_path) -> None:
    """Two gloo processes: each gets the sums of both."""
    results = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(_sum_over_two_ranks, args=(str(tmp_path / "store"), results), nprocs=2)
    assert dict(results) == {0: {"loss": 4.0, "micro_batches": 4.0}, 1: {"loss": 4.0, "micro_batches": 4.0}}


def test_a_ddp_run_refuses_one_named_gpu_for_every_rank(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"trainer\.device 'cuda:0': in a DDP run each process takes its local "
                                          r"rank's GPU; give 'cuda'"):
        init_distributed("cuda:0")


def test_a_gpu_index_this_machine_lacks_is_a_config_error(monkeypatch) -> None:
    from uattr.train.distributed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0", option="--device") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"^--device 'cuda:5': this machine has 1 CUDA device\(s\)$"):
        resolve_device("cuda:5", option="--device")


def test_a_log_line_averages_over_every_ranks_micro_batches(experiment, tmp_path, caplog) -> None:
    """Under DDP each rank sums its own micro-batches' losses: the line (and TensorBoard) must show the mean over
    all ranks, not rank 0's share. Here another rank's sums are added as the all-reduce would."""
    trainer = Trainer(build_config(experiment, trainer={"log_every": 1}), tmp_path / "exp", show_progress=False)
    other_rank = {"loss": 30.0, "semantic/loss": 10.0, "speaker/loss": 20.0, "micro_batches": 2.0}

    def with_the_other_rank(values):
        return {name: float(value) + other_rank[name] for name, value in values.items()}

    trainer.context.sum_over_ranks = with_the_other_rank
    running = {"loss": torch.tensor(6.0), "semantic/loss": torch.tensor(2.0), "speaker/loss": torch.tensor(4.0),
               "micro_batches": torch.tensor(2.0), "updates": torch.tensor(1.0)}
    trainer.step, trainer.update_lrs = 1, {"upstream": 1e-5}
    with caplog.at_level(logging.INFO, logger="uattr.train.trainer"):
        trainer._log_training(running, 1.0, 1.0)
    assert "loss 9 (semantic 3, speaker 6)" in caplog.text


def test_resume_refuses_another_length_of_a_decaying_schedule(experiment, tmp_path, monkeypatch) -> None:
    """warmup_cosine decays over max_steps: resumed with another length, the lr would jump (step 3 of 6 is the
    half-way point, of 12 a quarter of the way)."""
    cosine = {"optim": {"branches": {"scheduler": {"name": "warmup_cosine"}}}}
    config = build_config({**experiment, **cosine})
    exp = tmp_path / "exp"
    run_until_killed(config, exp, monkeypatch, step=3)
    with pytest.raises(ConfigError, match=r"scheduler 'warmup_cosine' decays over the run's length: 6 updates .*"
                                          r"written, 12 now; a resumed run keeps trainer\.max_steps"):
        Trainer(build_config({**experiment, **cosine}, trainer={"max_steps": 12}), exp)
    assert Trainer(build_config({**experiment, **cosine}, trainer={"log_every": 1}), exp).step == 3


def test_total_updates_adds_up_every_epochs_own_batch_plan() -> None:
    """Duration buckets and weighted draws give each epoch its own number of batches; planning them leaves the
    training sampler where it was."""
    rng = np.random.default_rng(0)
    durations, weights = rng.uniform(1, 10, 300), rng.uniform(0.1, 1, 300)
    sampler = DynamicBatchSampler(durations, max_batch_seconds=40, max_batch_size=8, bucket_size=2, weights=weights)
    per_epoch = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        per_epoch.append(len(sampler))
    assert len(set(per_epoch)) > 1
    sampler.set_epoch(1)
    first = next(iter(sampler))
    sampler.set_epoch(1)

    def total(**settings: Any) -> int:
        return total_updates(TrainerConfig(**settings), sampler)

    assert total(max_epochs=4) == sum(per_epoch)
    assert total(max_epochs=4, grad_accum=3) == sum(-(-n // 3) for n in per_epoch)
    assert total(max_epochs=4, max_steps=per_epoch[0] + 1) == per_epoch[0] + 1
    assert total(max_epochs=None, max_steps=5) == 5
    assert sampler.epoch == 1 and next(iter(sampler)) == first
