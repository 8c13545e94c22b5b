"""Experiment config: strict keys (errors name the dotted key), overrides, target patterns, and the CLI."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from train_fixtures import make_experiment, one_thread, write_table  # noqa: F401  (autouse fixture)
from uattr.bin.main import main as uattr_main
from uattr.config import from_dict
from uattr.data.tables import EmbeddingTableWriter, read_embedding_table
from uattr.errors import ConfigError, DataError
from uattr.model import UnifiedEncoder
from uattr.train.checkpoint import list_checkpoints, load_checkpoint
from uattr.train.config import (
    ExperimentConfig, OptimizerConfig, SchedulerConfig, load_experiment_config, on_the_fly_attributes,
)
from uattr.train.data import build_split
from uattr.train.distributed import DistributedContext
from uattr.train.trainer import Trainer
from uattr.train.validate import load_tasks, validate

MINIMAL = {"upstream": {"name": "hf:/nowhere"}, "attributes": {"semantic": {}, "speaker": {}}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict[str, Any]:
    return make_experiment(tmp_path_factory.mktemp("experiment"))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"trainr": {}}, "trainr"),
        ({"trainer": {"max_stepz": 5}}, "trainer.max_stepz"),
        ({"optim": {"branches": {"optimizer": {"nam": "sgd"}}}}, "optim.branches.optimizer.nam"),
        ({"optim": {"upstream": {"scheduler": {"warmup": 10}}}}, "optim.upstream.scheduler.warmup"),
        ({"data": {"targets": {"semantic": {"trian": "x"}}}}, "data.targets.semantic.trian"),
        ({"data": {"valid_retrieval": {"semantic": {"map": "x"}}}}, "data.valid_retrieval.semantic.map"),
        ({"attributes": {"semantic": {"dimm": 3}}}, "attributes.semantic.dimm"),
    ],
)
def test_unknown_keys_name_their_dotted_path(section, key) -> None:
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'"):
        from_dict(ExperimentConfig, {**MINIMAL, **section})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"optim": {"upstream": {"optimizer": {"name": "lamb"}}}}, r"optim\.upstream\.optimizer\.name: 'lamb'"),
        ({"optim": {"branches": {"scheduler": {"name": "step"}}}}, r"optim\.branches\.scheduler\.name: 'step'"),
        ({"trainer": {"amp": "fp8"}}, r"trainer\.amp: 'fp8'"),
        (
            {"trainer": {"max_steps": None, "max_epochs": None}},
            r"trainer: set trainer\.max_steps or trainer\.max_epochs",
        ),
        ({"trainer": {"grad_accum": 0}}, r"trainer: grad_accum must be at least 1"),
        ({"trainer": {"seed": -1}}, r"trainer: seed must be at least 0"),
        ({"data": {"sampling": "gender"}}, r"data\.sampling: 'gender'"),
        ({"trainer": {"max_steps": "many"}}, r"trainer\.max_steps"),
        ({"trainer": {"max_steps": 0}}, r"trainer: max_steps must be at least 1 \(or null\), got 0"),
        ({"trainer": {"max_epochs": -5}}, r"trainer: max_epochs must be at least 1 \(or null\), got -5"),
        ({"trainer": {"valid_every": 0}}, r"trainer: valid_every must be at least 1 \(or null\), got 0"),
        ({"trainer": {"save_every": 0}}, r"trainer: save_every must be at least 1 \(or null\), got 0"),
        ({"trainer": {"grad_clip": float("nan")}}, r"trainer\.grad_clip: expected a number, got nan"),
        ({"trainer": {"grad_clip": float("inf")}}, r"trainer: grad_clip must be a positive number"),
        ({"data": {"num_workers": -1}}, r"data: num_workers must be at least 0, got -1"),
        ({"data": {"max_batch_size": 0}}, r"data: max_batch_size must be at least 1, got 0"),
        ({"data": {"max_batch_seconds": 0}}, r"data: max_batch_seconds must be positive \(or null\), got 0"),
        ({"data": {"min_seconds": 12}}, r"data: max_seconds \(10.0\) must exceed min_seconds \(12.0\)"),
        ({"optim": {"upstream": {"optimizer": {"lr": -1}}}}, r"optim\.upstream\.optimizer: lr must be a positive"),
        ({"optim": {"branches": {"scheduler": {"factor": 2}}}}, r"optim\.branches\.scheduler: factor .* got 2"),
    ],
)
def test_bad_values_name_their_key(section, message) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(ExperimentConfig, {**MINIMAL, **section})


def test_defaults_are_the_paper_settings_and_overrides_apply(tmp_path) -> None:
    path = write_config(tmp_path / "conf.yaml", MINIMAL)
    config = load_experiment_config(path, [("trainer.max_steps", 500), ("optim.upstream.optimizer.lr", 2e-5)])
    assert config.trainer.max_steps == 500 and config.trainer.max_epochs == 10
    assert config.optim.upstream.optimizer.lr == 2e-5
    assert config.optim.branches.optimizer.name == "adadelta" and config.optim.branches.scheduler.patience == 2
    assert config.data.max_seconds == 10.0 and config.data.alpha == 0.05
    assert config.data.target_table("speaker", "valid") == Path("dump/teacher/speaker/dev")
    assert config.trainer.criterion_mode() == "min"
    config.trainer.best_criterion = "valid/semantic/r@1"
    assert config.trainer.criterion_mode() == "max"


def test_a_partial_optimiser_group_keeps_the_paper_defaults_of_the_rest(tmp_path) -> None:
    path = write_config(tmp_path / "conf.yaml", MINIMAL)
    config = load_experiment_config(path, [("optim.branches.optimizer.lr", 1.0), ("optim.upstream.optimizer.lr", 2e-5)])
    assert config.optim.branches.optimizer == OptimizerConfig("adadelta", 1.0, {"rho": 0.95, "eps": 1e-8})
    assert config.optim.branches.scheduler.patience == 2 and config.optim.upstream.scheduler.factor == 0.9
    # Another optimiser or schedule inherits nothing of the one it replaces (Adam has no rho).
    config = load_experiment_config(path, [("optim.branches.optimizer", {"name": "adam", "lr": 1e-3}),
                                           ("optim.upstream.scheduler", {"name": "warmup_cosine"})])
    assert config.optim.branches.optimizer == OptimizerConfig("adam", 1e-3, {})
    assert config.optim.upstream.scheduler == SchedulerConfig("warmup_cosine")
    assert config.optim.upstream.optimizer == OptimizerConfig("adam", 1e-5)


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path) -> None:
    # PyYAML (YAML 1.1) reads 1e-5 as a string, in a file and in a --key value override alike.
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(MINIMAL) + "optim:\n  upstream:\n    optimizer: {name: adam, lr: 1e-5}\n")
    config = load_experiment_config(path, [("attributes.speaker.weight", yaml.safe_load("1E+2"))])
    assert config.optim.upstream.optimizer.lr == 1e-5 and config.attributes["speaker"].weight == 100.0
    with pytest.raises(ConfigError, match=r"optim\.upstream\.optimizer\.lr: expected a number, got 'e-5'"):
        load_experiment_config(path, [("optim.upstream.optimizer.lr", "e-5")])


@pytest.mark.parametrize("key, value", [("valid_trials", "trials"), ("valid_retrieval", {}),
                                        ("targets", {"train": "t", "valid": "v"})])
def test_attribute_lists_are_checked(experiment, key, value) -> None:
    data = copy.deepcopy(experiment)
    data["data"][key] = {"spk": value}  # a misspelt attribute would be ignored
    with pytest.raises(ConfigError, match=rf"data\.{key}\.spk: no such attribute; attributes: semantic, speaker"):
        from_dict(ExperimentConfig, data)



def test_on_the_fly_attributes_are_checked(experiment) -> None:
    data = copy.deepcopy(experiment)
    data["trainer"].update(teacher_mode="on_the_fly", on_the_fly=["lang"])
    with pytest.raises(ConfigError, match=r"trainer\.on_the_fly: unknown attribute 'lang'"):
        on_the_fly_attributes(from_dict(ExperimentConfig, data))


def test_validation_set_up_is_checked_before_training(experiment, tmp_path, monkeypatch) -> None:
    """Each of these showed only at the first validation, after a whole training interval."""
    import uattr.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module.Trainer, "run", lambda self: pytest.fail("trained first"))
    trials = Path(experiment["data"]["valid_trials"]["speaker"])
    lines = trials.read_text().splitlines()
    (tmp_path / "unlabelled").write_text("".join(" ".join(line.split()[:2]) + "\n" for line in lines))
    (tmp_path / "targets_only").write_text("".join(line + "\n" for line in lines if line.endswith(" target")))
    dev_table = tmp_path / "dev6"
    with EmbeddingTableWriter(dev_table, meta={"dim": 6}) as writer:
        writer.write(["x"], np.zeros((1, 6), dtype=np.float32))
    cases = [
        ({"trainer": {"best_criterion": "valid/speaker/EER"}},
         r"trainer\.best_criterion 'valid/speaker/EER' is not a validation metric; metrics: valid/loss, "
         r"valid/semantic/loss, valid/speaker/loss, valid/semantic/r@1, valid/speaker/eer"),
        ({"data": {"valid_retrieval": {"semantic": {"query2ref": str(tmp_path / "nowhere")}}}},
         r"data\.valid_retrieval\.semantic\.query2ref: no such file .*nowhere"),
        ({"data": {"valid_trials": {"speaker": str(tmp_path / "unlabelled")}}},
         r"data\.valid_trials\.speaker: .*unlabelled must label its trials target/nontarget, with both classes"),
        ({"data": {"valid_trials": {"speaker": str(tmp_path / "targets_only")}}}, r"targets_only must label"),
        ({"data": {"targets": {"semantic": {"train": experiment["data"]["target_pattern"].format(
            attr="semantic", set="train"), "valid": str(dev_table)}}}},
         r"dev6/meta\.json: 6-d dev targets of 'semantic', but the train targets .* are 8-d"),
    ]
    for change, message in cases:
        data = copy.deepcopy(experiment)
        for section, values in change.items():
            data[section].update(values)
        with pytest.raises(ConfigError, match=message):
            Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp", show_progress=False)


def test_an_mse_loss_between_unit_vectors_and_raw_targets_is_refused(experiment, tmp_path) -> None:
    """Unit-norm outputs can never reach the lengths of raw targets (an ECAPA table): the loss cannot fall."""
    data = copy.deepcopy(experiment)
    tables = {}
    for split in ("train", "dev"):
        source = Path(data["data"]["target_pattern"].format(attr="speaker", set=split))
        vectors = read_embedding_table(source / "emb.scp")
        tables[split] = write_table(tmp_path / "raw" / split, vectors, normalized=False)
    data["data"]["targets"] = {"speaker": {"train": str(tables["train"]), "valid": str(tables["dev"])}}
    data["attributes"]["speaker"]["loss"] = {"name": "mse"}
    with pytest.raises(ConfigError, match=r"attributes\.speaker: the mse loss compares lengths, but the branch outputs "
                                          r"unit vectors \(branch\.normalize\) and .*raw/train/meta\.json says"):
        Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp", show_progress=False)
    data["attributes"]["speaker"]["branch"]["normalize"] = False
    Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp", show_progress=False)


def test_a_missing_target_names_its_table_and_data_dir(experiment, tmp_path) -> None:
    data = copy.deepcopy(experiment)
    table = Path(data["data"]["target_pattern"].format(attr="semantic", set="train"))
    shutil.copytree(table, tmp_path / "semantic")
    scp = tmp_path / "semantic" / "emb.scp"
    scp.write_text("".join(scp.read_text().splitlines(keepends=True)[1:]))
    data["data"]["targets"] = {"semantic": {"train": str(scp), "valid": str(table.parent / "dev")}}
    with pytest.raises(DataError, match=rf"utterances of {data['data']['train']} missing from target tables: "
                                        rf"'semantic' \({scp}\) lacks 1: 'a-u1'"):
        Trainer(from_dict(ExperimentConfig, data), tmp_path / "exp", show_progress=False)


def test_cli_trains_with_overrides_and_refuses_bad_ones(experiment, tmp_path, capsys) -> None:
    config = write_config(tmp_path / "conf.yaml", experiment)
    exp = tmp_path / "exp"
    args = [
        "train",
        "--config",
        str(config),
        "--exp-dir",
        str(exp),
        "--trainer.max_steps",
        "2",
        "--trainer.valid_every=1",
    ]
    assert uattr_main(args) == 0
    assert "step 2 validation" in (exp / "train.log").read_text()
    assert load_experiment_config(exp / "config.yaml").trainer.max_steps == 2
    assert [entry["step"] for entry in json.loads((exp / "valid_metrics.json").read_text())] == [1, 2]
    assert (exp / "model" / "model.safetensors").is_file()
    written = (exp / "model" / "model.safetensors").stat().st_mtime_ns
    assert uattr_main(args) == 0
    assert (exp / "model" / "model.safetensors").stat().st_mtime_ns == written  # a finished run is left alone
    capsys.readouterr()
    assert uattr_main([*args, "--resume", "never"]) == 1
    assert "--resume is 'never'" in capsys.readouterr().err
    assert uattr_main([*args[:5], "--trainer.max_stepz", "2"]) == 1
    assert "unknown config key 'trainer.max_stepz'" in capsys.readouterr().err


def test_a_quiet_run_still_records_everything_in_train_log(experiment, tmp_path, capsys) -> None:
    """-q quiets the console (no progress bar, no INFO lines); EXP/train.log is the run's record all the same."""
    config = write_config(tmp_path / "conf.yaml", experiment)
    exp = tmp_path / "exp"
    capsys.readouterr()
    assert uattr_main(["train", "-q", "--config", str(config), "--exp-dir", str(exp), "--trainer.max_steps", "2"]) == 0
    console = capsys.readouterr()
    assert "INFO" not in console.err and "train:" not in console.err, console.err
    log = (exp / "train.log").read_text()
    assert "INFO" in log and "step 2 validation" in log


def test_the_error_that_stops_a_run_ends_its_train_log(experiment, tmp_path, capsys) -> None:
    """A recipe points a failed run to EXP/train.log: the error must be there, not only on the console."""
    config = write_config(tmp_path / "conf.yaml", experiment)
    exp = tmp_path / "exp"
    capsys.readouterr()
    assert uattr_main(["train", "--config", str(config), "--exp-dir", str(exp), "--attributes.speaker.dim", "7"]) == 1
    last = (exp / "train.log").read_text().splitlines()[-1]
    assert " ERROR: training stopped: attributes.speaker.dim: 7, but " in last
    assert capsys.readouterr().err.count("attributes.speaker.dim: 7, but") == 1  # the console has it once


def torchrun_train(config: Path, exp: Path, *overrides: str) -> None:
    """``uattr train`` in two processes (DDP, gloo on CPU)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "uattr", "train", "--config", str(config), "--exp-dir", str(exp), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(experiment, tmp_path) -> None:
    """DDP (gloo): two ranks train a few steps; rank 0's checkpoint and model load; each rank's RNG is saved.
    Learned loss weights, used by the loss only, train with find_unused_parameters on."""
    config = write_config(tmp_path / "conf.yaml", experiment)
    exp = tmp_path / "exp"
    overrides = ["--loss_weighting", "uncertainty", "--trainer.find_unused_parameters", "true"]
    torchrun_train(config, exp, "--trainer.max_steps", "3", *overrides)
    checkpoints = list_checkpoints(exp / "checkpoints")
    assert 3 in checkpoints
    state = load_checkpoint(checkpoints[3])
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert state["sampler"]["num_replicas"] == 2
    assert torch.count_nonzero(state["model"]["loss_log_vars.speaker"]) == 1  # it learned
    model = UnifiedEncoder.from_pretrained(exp / "model")
    assert set(model.attributes) == {"semantic", "speaker"}
    assert (exp / "train.log").read_text().count("step 3 validation") == 1  # rank 0 alone logs
    # Each rank validated its share of the dev batches (3 batches of 2: one rank got one, the other two); rank 0's
    # metrics are those of the same weights validated in one process.
    saved = load_experiment_config(exp / "config.yaml")
    alone = UnifiedEncoder(saved.model_config())
    alone.load_state_dict(state["model"])
    attributes = ["semantic", "speaker"]
    dev = build_split(saved.data, "valid", attributes, 16000, 0, DistributedContext())
    expected = validate(alone, dev.loader, torch.device("cpu"), load_tasks(saved.data))
    assert len(dev.sampler) == 3
    assert f"{saved.data.valid}: 6 utterances, 2 batches per epoch on this rank" in (exp / "train.log").read_text()
    assert {name: state["history"][-1][name] for name in expected} == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_torchrun_resume_is_exact_with_dropout_and_the_unused_parameter_probe(experiment, tmp_path) -> None:
    """Two ranks: 6 steps in one go == the same run resumed from its step-3 checkpoint, with dropout on and
    ``find_unused_parameters: auto`` probing (a training-mode forward) in the resumed run too."""
    data = copy.deepcopy(experiment)
    data["upstream"]["options"] = {"hidden_dropout": 0.1}
    config = write_config(tmp_path / "conf.yaml", data)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    torchrun_train(config, straight)
    # What a run killed after its step-3 checkpoint leaves behind.
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns("ckpt-6.pt", "model", "valid_metrics.json"))
    torchrun_train(config, resumed)
    assert "resumed from" in (resumed / "train.log").read_text()
    final = [load_checkpoint(list_checkpoints(exp / "checkpoints")[6]) for exp in (straight, resumed)]
    for key, value in final[0]["model"].items():
        assert torch.equal(value, final[1]["model"][key]), key
    assert final[0]["history"] == final[1]["history"]
