"""Utterance selection, target joins, UtteranceDataset items and crops, and collate_batch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from uattr.data.collate import collate_batch
from uattr.data.dataset import Draw, UtteranceDataset, filter_by_duration, join_targets
from uattr.data.sampler import DynamicBatchSampler
from uattr.errors import DataError

SAMPLE_RATE = 100  # small rate keeps the in-memory audio tiny


class DictAudio:
    """An in-memory stand-in for uattr.data.audio.AudioSource."""

    def __init__(self, wavs: dict[str, np.ndarray], sample_rate: int = SAMPLE_RATE) -> None:
        self.wavs = wavs
        self.sample_rate = sample_rate

    def load(self, utt_id: str) -> np.ndarray:
        return self.wavs[utt_id]


def ramp(seconds: float) -> np.ndarray:
    """Distinct sample values (0, 1, 2, ...) so a crop's position can be read off its first sample."""
    return np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32)


@pytest.fixture
def corpus():
    wavs = {"u1": ramp(1.0), "u2": ramp(2.5), "u3": ramp(0.4)}
    targets = {
        "semantic": {u: np.full(4, i, dtype=np.float32) for i, u in enumerate(wavs)},
        "speaker": {u: np.ones(3, dtype=np.float64) for u in wavs},
        "lang": {"u1": 2, "u2": np.int32(0), "u3": 1},
    }
    return DictAudio(wavs), targets


def test_filter_by_duration_drops_the_upper_bound_and_logs(caplog):
    durations = {"a": 0.2, "b": 3.0, "c": 10.0, "d": 12.5, "e": 9.99}
    with caplog.at_level(logging.INFO, logger="uattr.data.dataset"):
        kept = filter_by_duration(durations, min_seconds=0.5, max_seconds=10.0)
    assert kept == ["b", "e"]
    assert "dropped 3 of 5" in caplog.text
    assert filter_by_duration(durations) == list(durations)


def test_filter_by_duration_refuses_nan():
    with pytest.raises(DataError, match="'x'"):
        filter_by_duration({"x": float("nan")})


def test_missing_targets_error_lists_ids_per_table():
    utt_ids = [f"u{i:02d}" for i in range(30)]
    tables = {"semantic": {u: 0 for u in utt_ids[:5]}, "speaker": {u: 0 for u in utt_ids if u != "u07"}}
    with pytest.raises(DataError) as error:
        join_targets(utt_ids, tables)
    message = str(error.value)
    assert "'semantic' lacks 25" in message and "'u05'" in message and "(25 in all)" in message
    assert "'u29'" not in message  # only the first ten are listed
    assert "'speaker' lacks 1: 'u07'" in message


def test_drop_missing_keeps_complete_utterances_and_logs_the_count(caplog):
    utt_ids = ["a", "b", "c", "d"]
    tables = {"semantic": {"a": 0, "b": 0, "c": 0}, "speaker": {"a": 0, "c": 0, "d": 0}}
    with caplog.at_level(logging.WARNING, logger="uattr.data.dataset"):
        kept = join_targets(utt_ids, tables, drop_missing=True)
    assert kept == ["a", "c"]
    assert "dropped 2 of 4" in caplog.text and "semantic: 1" in caplog.text and "speaker: 1" in caplog.text


def test_drop_missing_with_nothing_left_is_an_error():
    with pytest.raises(DataError, match="no utterance"):
        join_targets(["a"], {"speaker": {}}, drop_missing=True)


def test_item_has_audio_and_typed_targets(corpus):
    audio, targets = corpus
    item = UtteranceDataset(["u1", "u2"], audio, targets)[1]
    assert item["id"] == "u2"
    assert item["wav"].dtype == torch.float32 and item["wav"].shape == (250,)
    assert item["targets"]["semantic"].dtype == torch.float32
    assert torch.equal(item["targets"]["semantic"], torch.full((4,), 1.0))
    assert item["targets"]["speaker"].dtype == torch.float32
    assert item["targets"]["lang"].dtype == torch.int64 and item["targets"]["lang"].item() == 0


def test_dataset_refuses_missing_targets_and_duplicate_ids(corpus):
    audio, targets = corpus
    with pytest.raises(DataError, match="'u9'"):
        UtteranceDataset(["u1", "u9"], audio, targets)
    with pytest.raises(DataError, match="duplicate.*'u1'"):
        UtteranceDataset(["u1", "u2", "u1"], audio, targets)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_target_names_utterance_and_attribute(corpus, bad):
    audio, targets = corpus
    targets["speaker"]["u2"] = np.array([1.0, bad, 0.0], dtype=np.float32)
    dataset = UtteranceDataset(["u1", "u2"], audio, targets)
    dataset[0]
    with pytest.raises(DataError, match="'u2'.*'speaker'"):
        dataset[1]


def test_random_crop_is_deterministic_per_seed_epoch_and_index(corpus):
    audio, targets = corpus

    def dataset(seed, epoch):
        data = UtteranceDataset(["u1", "u2", "u3"], audio, targets, max_seconds=0.5, seed=seed)
        data.set_epoch(epoch)
        return data

    crop = dataset(0, 0)[1]["wav"]
    start = int(crop[0])
    assert torch.equal(crop, torch.arange(start, start + 50, dtype=torch.float32))  # one 0.5 s window
    assert torch.equal(dataset(0, 0)[1]["wav"], crop)  # same (seed, epoch, index), same window
    assert [len(dataset(0, 0)[i]["wav"]) for i in (0, 2)] == [50, 40]  # short ones untouched
    starts = {int(dataset(seed, epoch)[1]["wav"][0]) for seed in range(3) for epoch in range(3)}
    assert len(starts) > 1  # other seeds and epochs move the window


def test_each_draw_of_an_utterance_gets_a_crop_of_its_own(corpus):
    """Weighted sampling draws an utterance several times an epoch: each copy is cropped anew, reproducibly, also
    in DataLoader workers (the draw number travels with the index); a first draw keeps the plain index's crop."""
    audio, targets = corpus
    data = UtteranceDataset(["u1", "u2", "u3"], audio, targets, max_seconds=0.05, seed=0)
    assert torch.equal(data[Draw(1, 0)]["wav"], data[1]["wav"])
    starts = [int(data[Draw(1, number)]["wav"][0]) for number in range(8)]
    assert len(set(starts)) > 4 and starts == [int(data[Draw(1, number)]["wav"][0]) for number in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_sampler=[[Draw(1, n) for n in range(8)]], num_workers=1,
                                         collate_fn=lambda items: [int(item["wav"][0]) for item in items])
    assert next(iter(loader)) == starts


def test_start_crop_keeps_the_beginning(corpus):
    audio, targets = corpus
    wav = UtteranceDataset(["u2"], audio, targets, max_seconds=0.5, crop="start")[0]["wav"]
    assert torch.equal(wav, torch.arange(50, dtype=torch.float32))


def test_item_seconds_are_capped_by_the_crop(corpus):
    audio, targets = corpus
    dataset = UtteranceDataset(["u1", "u2", "u3"], audio, targets, max_seconds=2.0)
    assert dataset.item_seconds({"u1": 1.0, "u2": 2.5, "u3": 0.4}) == [1.0, 2.0, 0.4]
    with pytest.raises(DataError, match="'u3'"):
        dataset.item_seconds({"u1": 1.0, "u2": 2.5})


def test_collate_pads_with_zeros_and_keeps_lengths(corpus):
    audio, targets = corpus
    dataset = UtteranceDataset(["u1", "u2", "u3"], audio, targets)
    batch = collate_batch([dataset[i] for i in range(3)])
    assert batch["ids"] == ["u1", "u2", "u3"]
    assert batch["wavs"].shape == (3, 250) and batch["wavs"].dtype == torch.float32
    assert batch["wav_lens"].tolist() == [100, 250, 40] and batch["wav_lens"].dtype == torch.long
    assert torch.equal(batch["wavs"][2, :40], torch.arange(40, dtype=torch.float32))
    assert not batch["wavs"][0, 100:].any() and not batch["wavs"][2, 40:].any()
    assert batch["targets"]["semantic"].shape == (3, 4)
    assert batch["targets"]["lang"].tolist() == [2, 0, 1]


def test_collate_refuses_mixed_target_dimensions(corpus):
    audio, targets = corpus
    targets["speaker"]["u3"] = np.ones(5, dtype=np.float32)
    dataset = UtteranceDataset(["u1", "u3"], audio, targets)
    with pytest.raises(DataError, match="'speaker'.*'u3'"):
        collate_batch([dataset[0], dataset[1]])


def test_works_with_a_dataloader_and_the_batch_sampler(corpus):
    audio, targets = corpus
    dataset = UtteranceDataset(["u1", "u2", "u3"], audio, targets)
    sampler = DynamicBatchSampler(
        dataset.item_seconds({"u1": 1.0, "u2": 2.5, "u3": 0.4}), max_batch_seconds=3.0, seed=0
    )
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch)
    seen = [utt for batch in loader for utt in batch["ids"]]
    assert sorted(seen) == ["u1", "u2", "u3"]
