"""Trainer paths the end-to-end tests leave out: weighted sampling by language or speaker, a run without a dev set,
extra checkpoints every ``save_every`` updates, a frozen encoder, and cropped training utterances."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch

from data_fixtures import ramp
from train_fixtures import (  # noqa: F401  (one_thread: autouse fixture)
    RecordingWriter,
    build_config,
    make_experiment,
    one_thread,
)
import uattr.train.trainer as trainer_module
from uattr.data.kaldi import DataDir
from uattr.errors import DataError
from uattr.train.checkpoint import list_checkpoints, load_checkpoint
from uattr.train.trainer import Trainer

SAMPLE_RATE = 16000
UTTERANCE_SAMPLES = 4800  # make_experiment's utterances: 0.3 s

# A skewed train set for the sampling tests: speakers a, b, c with 3, 3 and 1 utterances, and two languages that
# cut across the speakers (5 "en", 2 "fr"), so that balancing by language and by speaker give different draws.
SKEWED_LANGUAGES = {"a-u1": "en", "a-u2": "en", "a-u3": "en", "b-u1": "en", "b-u2": "en", "b-u3": "fr", "c-u1": "fr"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict[str, Any]:
    return make_experiment(tmp_path_factory.mktemp("experiment"))


def skewed_train_dir(experiment: dict[str, Any], root: Path, drop: str | None = None) -> Path:
    """``root/data/train`` (so the target pattern still finds the fixture's train tables): the fixture's train
    utterances of :data:`SKEWED_LANGUAGES`, with those languages, and without the table ``drop``."""
    source = DataDir.load(experiment["data"]["train"])
    keep = sorted(SKEWED_LANGUAGES)
    tables = {
        "wav_scp": {utt: source.wav_scp[utt] for utt in keep},
        "utt2spk": {utt: source.utt2spk[utt] for utt in keep},
        "utt2lang": dict(SKEWED_LANGUAGES),
    }
    if drop is not None:
        tables[drop] = None
    target = root / "data" / "train"
    DataDir(path=target, utt_ids=keep, **tables).save(target)
    return target


def group_balanced(labels: list[str], alpha: float) -> np.ndarray:
    """Each group gets the share ``p_g^alpha / sum_h p_h^alpha`` (``p_g``: its share of the utterances), split
    evenly among its utterances: the paper's sampling, written out here independently of uattr.data.sampler."""
    counts = Counter(labels)
    shares = {group: (count / len(labels)) ** alpha for group, count in counts.items()}
    total = sum(shares.values())
    return np.array([shares[label] / total / counts[label] for label in labels])


@pytest.mark.parametrize("sampling", ["language", "speaker"])
def test_weighted_sampling_draws_follow_the_balanced_weights(experiment, tmp_path, sampling) -> None:
    """Language sampling (alpha 0.05) nearly evens out 5 "en" against 2 "fr" utterances, speaker sampling evens
    out 3, 3 and 1 utterances: the trainer's sampler holds those weights, and its loader draws by them."""
    train_dir = skewed_train_dir(experiment, tmp_path)
    trainer = Trainer(build_config(experiment, data={"train": str(train_dir), "sampling": sampling}), tmp_path / "exp")
    split = trainer.train_data
    utt_ids = split.dataset.utt_ids
    assert sorted(utt_ids) == sorted(SKEWED_LANGUAGES)
    group_of = SKEWED_LANGUAGES if sampling == "language" else {utt: utt.split("-")[0] for utt in utt_ids}
    labels = [group_of[utt] for utt in utt_ids]
    expected = group_balanced(labels, alpha=0.05 if sampling == "language" else 0.0)
    np.testing.assert_allclose(split.sampler.probabilities, expected, rtol=1e-12)

    epochs = 60
    drawn: Counter[str] = Counter()
    for epoch in range(epochs):
        split.set_epoch(epoch)
        ids = [utt for batch in split.loader for utt in batch["ids"]]
        assert len(ids) == len(utt_ids)  # an epoch draws as many utterances as the split holds
        drawn.update(group_of[utt] for utt in ids)
    observed = {group: drawn[group] / (epochs * len(utt_ids)) for group in set(labels)}
    wanted = {group: float(expected[np.array(labels) == group].sum()) for group in set(labels)}
    natural = {group: labels.count(group) / len(labels) for group in set(labels)}
    # 420 draws: the standard error of a share is about 0.024; the natural shares are 0.19 or more away.
    assert observed == pytest.approx(wanted, abs=0.07)
    assert max(abs(observed[group] - natural[group]) for group in observed) > 0.15


@pytest.mark.parametrize(("sampling", "table"), [("language", "utt2lang"), ("speaker", "utt2spk")])
def test_weighted_sampling_without_its_labels_names_the_missing_table(experiment, tmp_path, sampling, table) -> None:
    train_dir = skewed_train_dir(experiment, tmp_path, drop=table)
    assert not (train_dir / table).exists()
    config = build_config(experiment, data={"train": str(train_dir), "sampling": sampling})
    with pytest.raises(DataError, match=rf"^{re.escape(str(train_dir))}/{table}: no such file, needed for "
                                        rf"data\.sampling: {sampling}$"):
        Trainer(config, tmp_path / "exp")


@dataclasses.dataclass
class Save:
    step: int
    on_disk: list[int]  # the checkpoints on disk just before it
    validated: list[int]  # the validated steps the saved state holds


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[Save]:
    """Every checkpoint the trainer writes, in order."""
    real_save, written = trainer_module.save_checkpoint, []

    def recording_save(state: dict[str, Any], path: Path) -> None:
        written.append(Save(state["step"], list(list_checkpoints(path.parent)), [e["step"] for e in state["history"]]))
        real_save(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", recording_save)
    return written


def test_a_run_without_a_dev_set_keeps_its_last_parameters(experiment, tmp_path, saves) -> None:
    """``data.valid: null``: training runs, nothing is validated (no metrics, NewBob never anneals), each
    checkpoint is written once, and the final model is the last parameters, not a mean of checkpoints."""
    config = build_config(
        experiment,
        data={"valid": None, "valid_trials": {}, "valid_retrieval": {}},
        trainer={"max_steps": 4, "valid_every": 2, "log_every": 1},
    )
    exp = tmp_path / "exp"
    trainer = Trainer(config, exp, show_progress=False)
    assert trainer.valid_data is None
    trainer.writer = RecordingWriter()
    trainer.run()

    assert trainer.step == 4 and trainer.history == []
    assert json.loads((exp / "valid_metrics.json").read_text()) == []
    assert sorted(trainer.writer.scalars["train/loss"]) == [1, 2, 3, 4]
    assert [tag for tag in trainer.writer.scalars if tag.startswith("valid")] == []
    assert trainer.update_lrs == {"upstream": 1e-5, "branches": 1.5}  # the lrs NewBob starts from
    checkpoints = list_checkpoints(exp / "checkpoints")
    assert list(checkpoints) == [2, 4] and [save.step for save in saves] == [2, 4]  # the last one not twice
    last, earlier = (load_checkpoint(checkpoints[step])["model"] for step in (4, 2))
    assert any(not torch.equal(last[key], earlier[key]) for key in last)  # the choice between them matters
    final = safetensors.torch.load_file(exp / "model" / "model.safetensors")
    live = trainer.model.state_dict()
    assert final and set(final) <= set(last)
    for key, value in final.items():
        assert torch.equal(value, last[key]), key
        assert torch.equal(value, live[key]), key
    assert json.loads((exp / "model" / "selection.json").read_text()) == {"steps": [4], "criterion": None}


def test_save_every_adds_checkpoints_between_validations_and_keep_last_prunes_them(
    experiment, tmp_path, saves
) -> None:
    """5 updates an epoch, validated at each epoch's end and at the last step (7), a checkpoint every 2 updates:
    saves at 2, 4, 5, 6, 7; each save prunes to the last one plus the 2 best validated ones."""
    config = build_config(
        experiment, trainer={"max_steps": 7, "valid_every": None, "save_every": 2, "keep_last": 1, "n_best": 2}
    )
    exp = tmp_path / "exp"
    trainer = Trainer(config, exp, show_progress=False)
    assert len(trainer.train_data.sampler) == 5
    trainer.run()

    assert [entry["step"] for entry in trainer.history] == [5, 7]
    # Step 5 outlives keep_last as one of the 2 best; step 6, a save_every checkpoint, does not.
    assert [(save.step, save.on_disk) for save in saves] == [(2, []), (4, [2]), (5, [4]), (6, [5]), (7, [5, 6])]
    checkpoints = list_checkpoints(exp / "checkpoints")
    assert list(checkpoints) == [5, 7]
    assert [save.validated for save in saves] == [[], [], [5], [5], [5, 7]]  # save_every adds no validation


@pytest.mark.parametrize(
    "settings, written",
    [  # 5 updates an epoch; validated at each epoch's end and at the last step
        ({"max_steps": 6, "save_every": 2}, [(2, []), (4, []), (5, [5]), (6, [5, 6])]),
        ({"max_steps": None, "max_epochs": 2, "save_every": 5}, [(5, [5]), (10, [5, 10])]),
    ],
)
def test_a_save_every_step_that_is_validated_next_is_written_once(
    experiment, tmp_path, saves, settings: dict[str, Any], written: list[tuple[int, list[int]]]
) -> None:
    """save_every steps that end the run (6) or an epoch validated at its end (5, 10) are written once, with their
    validation, not first without it."""
    config = build_config(experiment, trainer={**settings, "valid_every": None})
    Trainer(config, tmp_path / "exp", show_progress=False).run()
    assert [(save.step, save.validated) for save in saves] == written


def test_a_frozen_encoder_keeps_its_weights_while_the_branches_learn(experiment, tmp_path) -> None:
    """``upstream.finetune: frozen``: no encoder parameter takes a gradient or an optimiser, the encoder stays in
    eval mode, and after training every encoder tensor is bit-identical to its initial value (in memory and in
    EXP/model) while both branches moved."""
    config = build_config(
        experiment, upstream={"finetune": "frozen"}, trainer={"max_steps": 3, "valid_every": None}
    )
    exp = tmp_path / "exp"
    trainer = Trainer(config, exp, show_progress=False)
    assert set(trainer.optimizers) == {"branches"}
    assert not any(p.requires_grad for p in trainer.model.upstream.parameters())
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    encoder = [name for name in before if name.startswith("upstream.")]
    assert encoder
    trainer.run()

    assert trainer.step == 3 and not trainer.model.upstream.training
    after = trainer.model.state_dict()
    final = safetensors.torch.load_file(exp / "model" / "model.safetensors")
    assert set(encoder) <= set(final)
    for name in encoder:
        assert torch.equal(after[name], before[name]), name
        assert torch.equal(final[name], before[name]), name
    for attr in ("semantic", "speaker"):
        moved = [name for name in before if name.startswith(f"experts.{attr}.")
                 and not torch.equal(after[name], before[name])]
        assert moved, attr


def test_crop_seconds_cuts_training_utterances_at_random_and_dev_ones_at_the_start(experiment, tmp_path) -> None:
    """0.3 s utterances, ``crop_seconds: 0.2``: the model gets 3200-sample windows, training ones from random
    offsets (a ramp's values tell each window's first sample), dev ones from the first sample; the batch sampler
    budgets the cropped lengths."""
    config = build_config(experiment, data={"crop_seconds": 0.2}, trainer={"max_steps": 5, "valid_every": None})
    trainer = Trainer(config, tmp_path / "exp", show_progress=False)
    assert trainer.train_data.dataset.crop == "random" and trainer.valid_data.dataset.crop == "start"
    assert trainer.train_data.sampler.durations.tolist() == [0.2] * 9
    full = torch.from_numpy(ramp(UTTERANCE_SAMPLES))
    for split in (trainer.train_data, trainer.valid_data):
        assert all(len(split.dataset.audio.load(utt)) == UTTERANCE_SAMPLES for utt in split.dataset.utt_ids)
        split.dataset.audio.load = lambda utt: ramp(UTTERANCE_SAMPLES)
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}  # training mode → waveforms

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, torch.Tensor]) -> None:
        wavs, wav_lens = args
        assert wav_lens.tolist() == [wavs.shape[1]] * len(wavs)  # equal lengths: no padding to look past
        seen[module.training].extend(wavs.detach().clone())

    trainer.model.register_forward_pre_hook(record)
    trainer.run()

    crop = round(0.2 * SAMPLE_RATE)
    assert len(seen[True]) == 9 and len(seen[False]) == 6  # one epoch of training, one validation
    starts = []
    for wav in seen[True]:
        assert wav.shape == (crop,)
        start = round(float(wav[0]) * UTTERANCE_SAMPLES)
        assert 0 <= start <= UTTERANCE_SAMPLES - crop and torch.equal(wav, full[start : start + crop])
        starts.append(start)
    assert len(set(starts)) > 3  # random offsets, not one fixed window
    for wav in seen[False]:
        assert torch.equal(wav, full[:crop])
