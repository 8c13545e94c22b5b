"""Batch sampling: batches bounded in padded seconds, length bucketing, weighted draws, DDP shards, resume.

Written here rather than taken from a library because no installed one does all of it together:
speechbrain's ``DynamicBatchSampler`` has no weighted draws or resumable mid-epoch state, torch's
``WeightedRandomSampler``/``DistributedSampler`` yield single indices, not seconds-bounded batches.

The epoch's batch plan is a pure function of ``(seed, epoch)`` and the settings: every DDP rank computes the
same global list and keeps its own share, and a resumed run recomputes it and skips what was already done.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from uattr.data.dataset import Draw, describe_ids
from uattr.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def group_balanced_weights(
    utt_ids: Sequence[str], utt2group: Mapping[str, str], alpha: float, what: str = "group"
) -> np.ndarray:
    """Per-utterance probabilities that give group g the share ``p_g^alpha / Σ_h p_h^alpha``.

    ``p_g`` is g's share of the utterances. Each utterance of g gets ``p_g^alpha / p_g`` (normalised):
    alpha = 1 keeps the natural proportions, alpha = 0 makes every group equally likely, values between
    flatten a skewed distribution without ignoring it.
    """
    missing = [u for u in utt_ids if u not in utt2group]
    if missing:
        raise DataError(f"{len(missing)} utterances have no {what}: {describe_ids(missing)}")
    if not utt_ids:
        return np.zeros(0)
    groups, group_of_utt, counts = np.unique(
        [utt2group[u] for u in utt_ids], return_inverse=True, return_counts=True
    )
    shares = counts / len(utt_ids)
    per_utterance = (shares**alpha / shares)[group_of_utt]
    logger.debug("%s sampling shares: %s", what, dict(zip(groups, shares**alpha / np.sum(shares**alpha))))
    return per_utterance / per_utterance.sum()


def language_balanced_weights(utt_ids: Sequence[str], utt2lang: Mapping[str, str], alpha: float = 0.05) -> np.ndarray:
    """Per-utterance weights ∝ p_l^alpha / p_l (p_l = share of utterances in language l).

    The paper's sampling (alpha 0.05, as egs/commonvoice/uattr1/conf/train_sem_spk_w2vbert.yaml sets it): Common
    Voice is dominated by a few languages, and this makes languages near-uniformly likely so the semantic space
    is not tuned to English alone.
    """
    return group_balanced_weights(utt_ids, utt2lang, alpha, "language")


def speaker_balanced_weights(utt_ids: Sequence[str], utt2spk: Mapping[str, str]) -> np.ndarray:
    """Per-utterance weights that make every speaker equally likely (alpha = 0 in the formula above).

    Speakers with thousands of utterances otherwise dominate what a speaker branch learns.
    """
    return group_balanced_weights(utt_ids, utt2spk, 0.0, "speaker")


SPREAD_RATIO = 0.8  # a waiting copy joins a batch, even one holding its utterance, before utterances 1.25x longer


class DynamicBatchSampler(Sampler[list[int]]):
    """Yield lists of dataset indices whose padded cost ``len(batch) × max duration`` ≤ ``max_batch_seconds``.

    Without ``weights`` every index is used once per epoch; with them, each epoch draws ``num_samples``
    indices with replacement ∝ ``weights``. Indices are sorted by duration within chunks of ``bucket_size``
    batches' worth, so a batch holds similar lengths (little padding) while the order stays random; copies of an
    index drawn several times are spread over neighbouring batches (:meth:`_spread_copies`), for a little more
    padding. A single utterance longer than the budget becomes a batch of its own. Call :meth:`set_epoch` every
    epoch.

    DDP: every rank builds the same global batch list; rank r takes batches r, r+R, ...; the list is padded
    by repeating its first batches (or cut, with ``drop_last``) so that every rank runs the same number of steps.
    With ``uneven`` (evaluation) every batch is used exactly once and a rank may get one batch fewer: only for
    loops whose steps hold no collective.
    """

    def __init__(
        self,
        durations: Sequence[float],
        *,
        max_batch_seconds: float,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        bucket_size: int = 100,
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        uneven: bool = False,
    ) -> None:
        self.durations = np.asarray(durations, dtype=np.float64)
        if self.durations.ndim != 1:
            raise ValueError(f"durations must be one-dimensional, got shape {self.durations.shape}")
        bad = np.flatnonzero(~np.isfinite(self.durations) | (self.durations < 0))
        if bad.size:
            raise DataError(f"invalid duration {self.durations[bad[0]]!r} at dataset index {bad[0]}")
        if not max_batch_seconds > 0:
            raise ConfigError(f"max_batch_seconds must be positive, not {max_batch_seconds}")
        if max_batch_size is not None and max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, not {max_batch_size}")
        if bucket_size < 1:
            raise ConfigError(f"bucket_size must be at least 1, not {bucket_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is not within num_replicas {num_replicas}")
        if drop_last and uneven:
            raise ConfigError("drop_last and uneven exclude each other (cut the batch list, or keep every batch)")
        if weights is None and num_samples is not None:
            raise ConfigError("num_samples only applies to weighted sampling; give weights too")
        self.probabilities = None if weights is None else self._probabilities(weights)
        self.num_samples = len(self.durations) if num_samples is None else num_samples
        if self.num_samples < 0:
            raise ConfigError(f"num_samples must not be negative, not {num_samples}")
        self.max_batch_seconds = float(max_batch_seconds)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size = bucket_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.uneven = uneven
        self.epoch = 0
        self.batches_done = 0
        self._resume_at: int | None = None
        self._plan: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        too_long = int(np.sum(self.durations > self.max_batch_seconds))
        if too_long:
            logger.warning(
                "%d utterances are longer than max_batch_seconds=%g; each forms a batch of its own",
                too_long,
                self.max_batch_seconds,
            )

    def _probabilities(self, weights: Sequence[float]) -> np.ndarray:
        """Normalise ``weights`` to probabilities, refusing shapes and values that cannot be one."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != self.durations.shape:
            raise ValueError(f"{weights.size} weights for {self.durations.size} utterances")
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise DataError("sampling weights must be finite, non-negative and not all zero")
        return weights / weights.sum()

    def _items_per_batch(self) -> int:
        """Typical batch size, to turn ``bucket_size`` (in batches) into a number of utterances."""
        mean = float(self.durations.mean()) if self.durations.size else 0.0
        typical = int(self.max_batch_seconds // mean) if mean > 0 else len(self.durations)
        if self.max_batch_size is not None:
            typical = min(typical, self.max_batch_size)
        return max(1, typical)

    def _overflows(self, size: int, widest: float) -> bool:
        """Whether one more item, making the longest of a batch of ``size`` items ``widest``, breaks the budget: a
        new batch starts there. The cut :meth:`_pack` makes and :meth:`_spread_copies` foresees."""
        full = self.max_batch_size is not None and size + 1 > self.max_batch_size
        return size > 0 and (full or (size + 1) * widest > self.max_batch_seconds)

    def _pack(self, order: np.ndarray) -> list[int]:
        """Greedily cut duration-sorted ``order`` into batches within budget; return the batch end offsets."""
        ends: list[int] = []
        size, longest = 0, 0.0
        for position, seconds in enumerate(self.durations[order].tolist()):
            widest = max(longest, seconds)
            if self._overflows(size, widest):
                ends.append(position)
                size, widest = 0, seconds
            size, longest = size + 1, widest
        if size:
            ends.append(len(order))
        return ends

    def _spread_copies(self, order: np.ndarray) -> np.ndarray:
        """Reorder duration-sorted ``order`` so that no batch :meth:`_pack` cuts from it holds an utterance twice,
        while copies are left: weighted sampling draws a rare language's utterances many times an epoch, and
        sorted side by side their copies would fill whole batches. A copy that would join a batch holding its
        utterance waits for the next batch; being shorter than what follows in the sorted order, it adds no
        padding there. Copies left when nothing else is (one utterance drawn more often than there are batches)
        share the last batches."""
        durations = dict(zip(order.tolist(), self.durations[order].tolist()))  # this chunk's (not the corpus's)
        result: list[int] = []
        waiting: list[int] = []
        in_batch: set[int] = set()
        size, longest = 0, 0.0
        pending = iter(order.tolist())
        upcoming = next(pending, None)
        while upcoming is not None or waiting:
            ready = next((k for k, index in enumerate(waiting) if index not in in_batch), None)
            if waiting and upcoming is not None and durations[waiting[0]] < SPREAD_RATIO * durations[upcoming]:
                index = waiting.pop(0)  # waited long enough: much longer utterances follow, it would pad them
            elif ready is not None:
                index = waiting.pop(ready)
            elif upcoming is not None:
                index, upcoming = upcoming, next(pending, None)
                if index in in_batch:
                    waiting.append(index)
                    continue
            else:  # only copies of what the batch holds: they share it
                index = waiting.pop(0)
            widest = max(longest, durations[index])
            if self._overflows(size, widest):
                in_batch, size, widest = set(), 0, durations[index]
            result.append(index)
            in_batch.add(index)
            size, longest = size + 1, widest
        return np.asarray(result, dtype=order.dtype)

    def _global_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All ranks' batches of ``epoch``: (flat index order, batch starts, batch ends) in batch order."""
        rng = np.random.default_rng([self.seed, epoch])
        size = len(self.durations)
        if self.probabilities is not None:
            order = rng.choice(size, size=self.num_samples, replace=True, p=self.probabilities)
        else:
            order = rng.permutation(size) if self.shuffle else np.arange(size)
        chunk = self.bucket_size * self._items_per_batch()
        sorted_chunks, ends = [], []
        for offset in range(0, len(order), chunk):
            part = order[offset : offset + chunk]
            part = part[np.argsort(self.durations[part], kind="stable")]
            if self.probabilities is not None:
                part = self._spread_copies(part)
            sorted_chunks.append(part)
            ends.extend(offset + end for end in self._pack(part))
        flat = np.concatenate(sorted_chunks) if sorted_chunks else np.zeros(0, dtype=np.int64)
        ends_array = np.asarray(ends, dtype=np.int64)
        starts = np.concatenate([[0], ends_array[:-1]]).astype(np.int64) if ends else ends_array
        batch_order = rng.permutation(len(ends)) if self.shuffle else np.arange(len(ends))
        return flat, starts[batch_order], ends_array[batch_order]

    def _rank_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """This rank's share of ``epoch``'s batches (cached for the current epoch), and the draw number of each
        position of the plan when indices are drawn with replacement."""
        if self._plan is None or self._plan[0] != epoch:
            flat, starts, ends = self._global_plan(epoch)
            total = len(starts)
            if self.drop_last:
                batch_ids = np.arange(total - total % self.num_replicas)
            elif self.uneven:
                batch_ids = np.arange(total)
            else:
                padded = -(-total // self.num_replicas) * self.num_replicas
                batch_ids = np.resize(np.arange(total), padded) if total else np.arange(0)
            mine = batch_ids[self.rank :: self.num_replicas]
            numbers = _draw_numbers(flat) if self.probabilities is not None else None
            self._plan = (epoch, flat, starts[mine], ends[mine], numbers)
        return self._plan[1:]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate; a new epoch starts from its first batch.

        Setting the epoch a loaded state is in keeps the resume position, so a resumed trainer can call
        ``set_epoch`` as it always does.
        """
        if epoch != self.epoch:
            self._resume_at = None
            self.batches_done = 0
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._rank_plan(self.epoch)[1])

    def __iter__(self) -> Iterator[list[int]]:
        flat, starts, ends, numbers = self._rank_plan(self.epoch)
        first = self._resume_at or 0
        self._resume_at = None
        self.batches_done = first
        for start, end in zip(starts[first:].tolist(), ends[first:].tolist()):
            self.batches_done += 1
            if numbers is None:
                yield flat[start:end].tolist()
            else:  # drawn with replacement: each index says which of its draws it is
                pairs = zip(flat[start:end].tolist(), numbers[start:end].tolist())
                yield [Draw(index, number) for index, number in pairs]

    def _settings(self) -> dict[str, Any]:
        """Everything besides (seed, epoch) that shapes the batch plan; a resume must find them unchanged."""
        return {
            "seed": self.seed,
            "num_utterances": len(self.durations),
            "num_samples": self.num_samples,
            "weighted": self.probabilities is not None,
            "max_batch_seconds": self.max_batch_seconds,
            "max_batch_size": self.max_batch_size,
            "bucket_size": self.bucket_size,
            "shuffle": self.shuffle,
            "num_replicas": self.num_replicas,
            "drop_last": self.drop_last,
            "uneven": self.uneven,
        }

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """Position in the epoch plus the settings, for a checkpoint.

        ``batches_done`` defaults to the batches this sampler has handed out. A DataLoader prefetches, so
        that count runs ahead of training: a trainer should pass the number of steps it finished this epoch.
        """
        done = self.batches_done if batches_done is None else batches_done
        return {"epoch": self.epoch, "batches_done": done, **self._settings()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a position: the next iteration yields exactly the batches after ``batches_done``."""
        changed = {key: value for key, value in self._settings().items() if state.get(key) != value}
        if changed:
            listed = "; ".join(f"{key}: {state.get(key)!r} → {value!r}" for key, value in changed.items())
            hint = (
                "; num_replicas is the number of training processes (GPUs × nodes): resume with as many as the "
                "checkpoint was written by"
                if "num_replicas" in changed
                else ""
            )
            raise ConfigError(f"cannot resume the batch sampler, its settings changed ({listed}){hint}")
        self.epoch = int(state["epoch"])
        done = int(state["batches_done"])
        if not 0 <= done <= len(self):
            raise ConfigError(f"cannot resume the batch sampler at batch {done} of {len(self)} in epoch {self.epoch}")
        self.batches_done = done
        self._resume_at = done


def _draw_numbers(indices: np.ndarray) -> np.ndarray:
    """For each position of ``indices``, how many times its index occurs before it (0 for a first draw)."""
    order = np.argsort(indices, kind="stable")
    positions = np.arange(len(indices))
    first_of_run = np.r_[True, indices[order][1:] != indices[order][:-1]] if len(indices) else np.zeros(0, bool)
    run_start = np.maximum.accumulate(np.where(first_of_run, positions, 0))
    numbers = np.empty(len(indices), dtype=np.int64)
    numbers[order] = positions - run_start
    return numbers
