"""DynamicBatchSampler (budget, coverage, determinism, resume, DDP) and the balanced sampling weights."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch

from uattr.data.sampler import DynamicBatchSampler, language_balanced_weights, speaker_balanced_weights
from uattr.errors import ConfigError, DataError


def random_durations(count: int = 500, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 9.9, size=count)


def padded_cost(batch: list[int], durations: np.ndarray) -> float:
    return len(batch) * float(np.max(durations[batch]))


def test_no_batch_exceeds_the_budget_and_sizes_are_capped():
    durations = random_durations()
    sampler = DynamicBatchSampler(durations, max_batch_seconds=30.0, max_batch_size=5)
    batches = list(sampler)
    assert all(padded_cost(b, durations) <= 30.0 for b in batches)
    assert all(1 <= len(b) <= 5 for b in batches)
    assert len(batches) == len(sampler)


def test_bucketing_keeps_padding_small():
    durations = random_durations(2000)
    bucketed = list(DynamicBatchSampler(durations, max_batch_seconds=60.0, bucket_size=50))
    unsorted = list(DynamicBatchSampler(durations, max_batch_seconds=60.0, bucket_size=1))

    def padding(batches):
        return sum(padded_cost(b, durations) - durations[b].sum() for b in batches)

    assert padding(bucketed) < 0.5 * padding(unsorted)


def test_an_utterance_over_budget_forms_its_own_batch_with_one_warning(caplog):
    durations = np.array([1.0, 2.0, 25.0, 30.0, 1.5])
    with caplog.at_level(logging.WARNING, logger="uattr.data.sampler"):
        sampler = DynamicBatchSampler(durations, max_batch_seconds=10.0)
        batches = list(sampler) + list(sampler)
    assert [2] in batches and [3] in batches
    assert len([r for r in caplog.records if "longer than max_batch_seconds" in r.message]) == 1


def test_every_utterance_is_used_once_per_epoch():
    durations = random_durations()
    sampler = DynamicBatchSampler(durations, max_batch_seconds=20.0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert sorted(i for b in sampler for i in b) == list(range(len(durations)))


def test_same_seed_and_epoch_give_the_same_order_others_differ():
    durations = random_durations()

    def batches(seed, epoch):
        sampler = DynamicBatchSampler(durations, max_batch_seconds=20.0, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert batches(3, 1) == batches(3, 1)
    assert batches(3, 1) != batches(4, 1)
    assert batches(3, 1) != batches(3, 2)


def test_no_shuffle_keeps_a_fixed_order_across_epochs():
    sampler = DynamicBatchSampler(random_durations(), max_batch_seconds=20.0, shuffle=False)
    first = list(sampler)
    sampler.set_epoch(5)
    assert list(sampler) == first


@pytest.mark.parametrize("through_torch_save", [False, True])
def test_resume_mid_epoch_yields_exactly_the_remaining_batches(through_torch_save):
    durations = random_durations()
    sampler = DynamicBatchSampler(durations, max_batch_seconds=20.0, seed=7)
    sampler.set_epoch(2)
    full = list(sampler)

    interrupted = DynamicBatchSampler(durations, max_batch_seconds=20.0, seed=7)
    interrupted.set_epoch(2)
    iterator = iter(interrupted)
    done = [next(iterator) for _ in range(11)]
    state = interrupted.state_dict()
    if through_torch_save:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        state = torch.load(buffer)

    resumed = DynamicBatchSampler(durations, max_batch_seconds=20.0, seed=7)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what a resumed trainer does anyway: keeps the position
    assert state["epoch"] == 2 and state["batches_done"] == 11
    assert done + list(resumed) == full
    assert list(resumed) == full  # the next pass of the epoch is whole again


def test_trainer_can_record_the_batches_it_consumed():
    durations = random_durations()
    sampler = DynamicBatchSampler(durations, max_batch_seconds=20.0)
    full = list(sampler)  # a prefetching loader ran the sampler to the end ...
    state = sampler.state_dict(batches_done=4)  # ... but training finished only 4 steps
    resumed = DynamicBatchSampler(durations, max_batch_seconds=20.0)
    resumed.load_state_dict(state)
    assert list(resumed) == full[4:]


def test_a_new_epoch_after_loading_starts_from_its_beginning():
    durations = random_durations()
    sampler = DynamicBatchSampler(durations, max_batch_seconds=20.0)
    sampler.load_state_dict(sampler.state_dict(batches_done=3))
    sampler.set_epoch(1)
    assert len(list(sampler)) == len(sampler)


def test_resume_refuses_changed_settings():
    durations = random_durations()
    state = DynamicBatchSampler(durations, max_batch_seconds=20.0).state_dict()
    with pytest.raises(ConfigError, match="max_batch_seconds"):
        DynamicBatchSampler(durations, max_batch_seconds=30.0).load_state_dict(state)
    with pytest.raises(ConfigError, match="batch 9999"):
        DynamicBatchSampler(durations, max_batch_seconds=20.0).load_state_dict({**state, "batches_done": 9999})


def shards(durations, replicas, epoch=0, **options):
    samplers = [
        DynamicBatchSampler(durations, max_batch_seconds=20.0, num_replicas=replicas, rank=rank, **options)
        for rank in range(replicas)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return samplers, [list(s) for s in samplers]


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_ddp_shards_are_disjoint_cover_the_epoch_and_have_equal_lengths(epoch):
    durations = random_durations()
    whole = DynamicBatchSampler(durations, max_batch_seconds=20.0)
    whole.set_epoch(epoch)
    global_batches = list(whole)
    samplers, per_rank = shards(durations, 4, epoch)
    lengths = {len(b) for b in per_rank}
    assert lengths == {len(samplers[0])} and len(lengths) == 1
    padding = 4 * len(per_rank[0]) - len(global_batches)
    assert 0 <= padding < 4
    # the padding repeats the first global batches; everything else is used by exactly one rank
    flat = [tuple(b) for rank in per_rank for b in rank]
    assert sorted(flat) == sorted([tuple(b) for b in global_batches + global_batches[:padding]])
    used = [i for rank in per_rank for b in rank for i in b]
    assert set(used) == set(range(len(durations)))
    assert len(used) == len(durations) + sum(len(b) for b in global_batches[:padding])


def test_ddp_drop_last_gives_disjoint_equal_shards():
    durations = random_durations()
    _, per_rank = shards(durations, 3, drop_last=True)
    assert len({len(b) for b in per_rank}) == 1
    used = [i for rank in per_rank for b in rank for i in b]
    assert len(used) == len(set(used))


@pytest.mark.parametrize("replicas", [2, 3, 7])
def test_uneven_shards_use_every_batch_exactly_once(replicas):
    """Evaluation: the ranks' shares are the unsharded plan's batches, each once, with no padding."""
    durations = random_durations()
    whole = list(DynamicBatchSampler(durations, max_batch_seconds=20.0, shuffle=False))
    samplers, per_rank = shards(durations, replicas, shuffle=False, uneven=True)
    assert sorted(tuple(b) for rank in per_rank for b in rank) == sorted(tuple(b) for b in whole)
    assert [len(s) for s in samplers] == [len(b) for b in per_rank]
    assert max(map(len, per_rank)) - min(map(len, per_rank)) == (len(whole) % replicas > 0)
    _, few = shards(np.array([1.0, 2.0]), 4, max_batch_size=1, uneven=True)
    assert [len(b) for b in few] == [1, 1, 0, 0]
    with pytest.raises(ConfigError, match="exclude each other"):
        DynamicBatchSampler(durations, max_batch_seconds=20.0, drop_last=True, uneven=True)


def test_ddp_with_fewer_batches_than_ranks_still_gives_every_rank_a_step():
    _, per_rank = shards(np.array([1.0, 2.0]), 4)
    assert [len(b) for b in per_rank] == [1, 1, 1, 1]


def test_ddp_resume_per_rank():
    durations = random_durations()
    samplers, per_rank = shards(durations, 2, epoch=1)
    iterator = iter(samplers[1])
    for _ in range(5):
        next(iterator)
    resumed = DynamicBatchSampler(durations, max_batch_seconds=20.0, num_replicas=2, rank=1)
    resumed.load_state_dict(samplers[1].state_dict())
    assert list(resumed) == per_rank[1][5:]
    with pytest.raises(ConfigError, match=r"\(num_replicas: 2 → 1\); num_replicas is the number of training "
                                          r"processes \(GPUs × nodes\): resume with as many"):
        DynamicBatchSampler(durations, max_batch_seconds=20.0).load_state_dict(samplers[1].state_dict())


def language_table(counts: dict[str, int]) -> tuple[list[str], dict[str, str]]:
    utt2lang = {f"{lang}-{i:05d}": lang for lang, n in counts.items() for i in range(n)}
    return list(utt2lang), utt2lang


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0])
def test_weighted_sampling_follows_the_language_formula(alpha):
    counts = {"en": 2000, "fr": 300, "de": 60, "ga": 8}
    utt_ids, utt2lang = language_table(counts)
    weights = language_balanced_weights(utt_ids, utt2lang, alpha)
    sampler = DynamicBatchSampler(
        np.ones(len(utt_ids)), max_batch_seconds=200.0, weights=weights, num_samples=200_000, seed=3
    )
    drawn = np.array([utt2lang[utt_ids[i]] for batch in sampler for i in batch])
    assert len(drawn) == 200_000
    shares = np.array(list(counts.values())) / sum(counts.values())
    expected = shares**alpha / np.sum(shares**alpha)
    observed = np.array([np.mean(drawn == lang) for lang in counts])
    np.testing.assert_allclose(observed, expected, atol=0.005)


def test_an_utterance_drawn_several_times_is_spread_over_batches():
    """A rare language's utterances are drawn many times an epoch; sorted by duration alone, their copies sat side
    by side and one batch could be 20 copies of one utterance."""
    utt_ids, utt2lang = language_table({"en": 900, "fr": 90, "sw": 10})
    durations = np.random.default_rng(0).uniform(1, 10, len(utt_ids))
    sampler = DynamicBatchSampler(durations, max_batch_seconds=200.0, max_batch_size=20,
                                  weights=language_balanced_weights(utt_ids, utt2lang, 0.05), seed=0)
    batches = list(sampler)
    distinct = [len(set(batch)) / len(batch) for batch in batches]
    assert np.mean(distinct) > 0.7  # sorted by duration alone: 0.41, with batches of 20 copies of one utterance
    padded = sum(float(durations[batch].max()) * len(batch) for batch in batches)
    assert padded / sum(float(durations[batch].sum()) for batch in batches) < 1.1  # little padding still (1.015)
    assert max(float(durations[batch].max()) * len(batch) for batch in batches) <= 200.0
    drawn = np.random.default_rng([0, 0]).choice(len(durations), len(durations), p=sampler.probabilities)
    assert sorted(i for batch in batches for i in batch) == sorted(drawn.tolist())  # every draw, once
    numbers: dict[int, list[int]] = {}
    for index in (index for batch in batches for index in batch):  # each copy knows which draw it is
        numbers.setdefault(int(index), []).append(index.number)
    assert all(sorted(drawn) == list(range(len(drawn))) for drawn in numbers.values())


def test_weighted_draws_are_deterministic_per_seed_and_epoch():
    utt_ids, utt2lang = language_table({"en": 50, "fr": 5})
    weights = language_balanced_weights(utt_ids, utt2lang)

    def draw(epoch):
        sampler = DynamicBatchSampler(np.ones(len(utt_ids)), max_batch_seconds=5.0, weights=weights, seed=1)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw(0) == draw(0) and draw(0) != draw(1)


def test_speaker_balanced_weights_make_speakers_equally_likely():
    utt2spk = {"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
    weights = speaker_balanced_weights(list(utt2spk), utt2spk)
    np.testing.assert_allclose(weights, [1 / 6, 1 / 6, 1 / 6, 1 / 2])


def test_language_weights_need_a_language_for_every_utterance():
    with pytest.raises(DataError, match="'u2'"):
        language_balanced_weights(["u1", "u2"], {"u1": "en"})


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        DynamicBatchSampler([1.0], max_batch_seconds=0)
    with pytest.raises(ConfigError):
        DynamicBatchSampler([1.0], max_batch_seconds=5, num_replicas=2, rank=2)
    with pytest.raises(ConfigError):
        DynamicBatchSampler([1.0], max_batch_seconds=5, num_samples=10)
    with pytest.raises(DataError, match="index 1"):
        DynamicBatchSampler([1.0, float("nan")], max_batch_seconds=5)
