"""The training dataset: which utterances take part, and one item per utterance (audio + teacher targets).

Audio sources and target tables are passed in as objects (duck typing: anything with ``.load(utt_id)`` and
``.sample_rate``; any ``Mapping[utt_id, value]``), so the dataset never opens files itself and is testable
with in-memory stand-ins. Utterances are joined to their targets by id, never by position.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Literal, Mapping, Protocol, Sequence

import numpy as np
import torch

from uattr.data.augment import Augmenter
from uattr.errors import DataError

logger = logging.getLogger(__name__)

# How many missing ids an error message lists before it only gives the count.
_SHOWN_IDS = 10


class AudioLoader(Protocol):
    """What the dataset needs from an audio source (``uattr.data.audio.AudioSource`` is one)."""

    sample_rate: int

    def load(self, utt_id: str) -> np.ndarray:
        """Return the utterance as float32 mono samples."""
        ...


def describe_ids(ids: Sequence[str]) -> str:
    """Name the first few ids and the total, so an error stays readable for a million missing ids."""
    shown = ", ".join(repr(i) for i in ids[:_SHOWN_IDS])
    more = f", ... ({len(ids)} in all)" if len(ids) > _SHOWN_IDS else ""
    return shown + more


def filter_by_duration(
    durations: Mapping[str, float], *, min_seconds: float = 0.0, max_seconds: float | None = None
) -> list[str]:
    """Keep utterances with ``min_seconds <= duration < max_seconds`` (in the mapping's order).

    The upper bound is exclusive because the paper drops utterances of 10 s and more; the count and hours
    dropped are logged so a recipe's log shows how much data a bound costs.
    """
    kept: list[str] = []
    dropped_seconds = 0.0
    for utt_id, seconds in durations.items():
        seconds = float(seconds)
        if not np.isfinite(seconds) or seconds < 0:
            raise DataError(f"utterance '{utt_id}': invalid duration {seconds!r}")
        if seconds >= min_seconds and (max_seconds is None or seconds < max_seconds):
            kept.append(utt_id)
        else:
            dropped_seconds += seconds
    dropped = len(durations) - len(kept)
    if dropped:
        bounds = f"[{min_seconds}, {max_seconds if max_seconds is not None else 'inf'}) s"
        logger.info(
            "dropped %d of %d utterances (%.2f h) outside %s", dropped, len(durations), dropped_seconds / 3600, bounds
        )
    return kept


def join_targets(
    utt_ids: Sequence[str],
    tables: Mapping[str, Mapping[str, Any]],
    *,
    drop_missing: bool = False,
    sources: Mapping[str, str] | None = None,
    data: str = "",
) -> list[str]:
    """Return the utterances present in every target table (in the order of ``utt_ids``).

    A missing target is an error by default, because it usually means a teacher stage ran on another data
    dir; ``drop_missing`` accepts the loss (e.g. transcripts the semantic teacher skipped) and logs the count.
    ``sources`` (the tables' files) and ``data`` (the data dir) name them in messages.
    """
    sources = sources or {}
    missing_by_table = {name: [u for u in utt_ids if u not in table] for name, table in tables.items()}
    missing_by_table = {name: ids for name, ids in missing_by_table.items() if ids}
    if not missing_by_table:
        return list(utt_ids)
    if not drop_missing:
        details = "; ".join(
            f"'{name}'{f' ({sources[name]})' if name in sources else ''} lacks {len(ids)}: {describe_ids(ids)}"
            for name, ids in missing_by_table.items()
        )
        of_data = f" of {data}" if data else ""
        raise DataError(
            f"utterances{of_data} missing from target tables: {details} (was the teacher run on another data dir? "
            "data.drop_missing: true drops them)"
        )
    missing = set().union(*missing_by_table.values())
    kept = [u for u in utt_ids if u not in missing]
    per_table = ", ".join(f"{name}: {len(ids)}" for name, ids in missing_by_table.items())
    logger.warning("dropped %d of %d utterances missing a target (%s)", len(missing), len(utt_ids), per_table)
    if not kept:
        raise DataError(f"no utterance has every target ({', '.join(tables)}); missing per table: {per_table}")
    return kept


def target_tensor(utt_id: str, attr: str, value: Any) -> torch.Tensor:
    """Turn one table value into a tensor: an integer label → int64, an embedding → finite float32."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":
        return torch.as_tensor(array, dtype=torch.int64)
    if array.dtype.kind != "f":
        raise DataError(f"utterance '{utt_id}': target '{attr}' has unsupported type {array.dtype}")
    if not np.isfinite(array).all():
        raise DataError(f"utterance '{utt_id}': target '{attr}' contains NaN or inf")
    return torch.tensor(array, dtype=torch.float32)  # a copy: cached tables are read-only memory maps


class Draw(int):
    """A dataset index drawn for the ``number``-th time in its epoch (weighted sampling draws with replacement), so
    that each copy of an utterance gets a crop of its own."""

    number: int

    def __new__(cls, index: int, number: int) -> "Draw":
        draw = super().__new__(cls, index)
        draw.number = number
        return draw

    def __reduce__(self) -> tuple[type, tuple[int, int]]:  # to DataLoader workers
        return Draw, (int(self), self.number)


class UtteranceDataset(torch.utils.data.Dataset):
    """Item i = ``{"id", "wav": FloatTensor[S], "targets": {attr: Tensor}}`` for the i-th utterance id.

    Utterances longer than ``max_seconds`` are cropped (``crop="random"`` picks the window from
    ``(seed, epoch, index)`` so runs and DataLoader workers agree; ``"start"`` keeps the beginning). ``augment``
    (an :class:`~uattr.data.augment.Augmenter`) then adds noise or reverberation, drawn from the same
    ``(seed, epoch, index)``; with ``keep_clean`` the item also holds the clean crop as ``"clean_wav"`` (what an
    on-the-fly teacher embeds). Call :meth:`set_epoch` each epoch for fresh crops and augmentation; with
    ``persistent_workers=True`` the workers keep the epoch they were started with, so leave persistent workers off.
    """

    def __init__(
        self,
        utt_ids: Sequence[str],
        audio: AudioLoader,
        targets: Mapping[str, Mapping[str, np.ndarray | int]],
        *,
        max_seconds: float | None = None,
        crop: Literal["random", "start"] = "random",
        seed: int = 0,
        augment: Augmenter | None = None,
        keep_clean: bool = False,
    ) -> None:
        if crop not in ("random", "start"):
            raise ValueError(f"crop must be 'random' or 'start', not {crop!r}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds}")
        duplicates = [u for u, count in Counter(utt_ids).items() if count > 1]
        if duplicates:
            raise DataError(f"duplicate utterance ids: {describe_ids(duplicates)}")
        join_targets(utt_ids, targets)
        self.utt_ids = list(utt_ids)
        self.audio = audio
        self.targets = targets
        self.max_samples = None if max_seconds is None else int(round(max_seconds * audio.sample_rate))
        self.crop = crop
        self.seed = seed
        self.augment = augment
        self.keep_clean = keep_clean
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops the following items use."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utt_ids)

    def item_seconds(self, utt2dur: Mapping[str, float]) -> list[float]:
        """Seconds of each item after cropping, in index order: the durations a batch sampler should budget."""
        missing = [u for u in self.utt_ids if u not in utt2dur]
        if missing:
            raise DataError(f"utterances without a duration: {describe_ids(missing)}")
        limit = np.inf if self.max_samples is None else self.max_samples / self.audio.sample_rate
        return [min(float(utt2dur[u]), limit) for u in self.utt_ids]

    def _crop(self, wav: np.ndarray, index: int) -> np.ndarray:
        """Cut ``wav`` to ``max_samples``; the random window depends only on (seed, epoch, index) and, for a
        :class:`Draw` after the first, on its draw number."""
        if self.max_samples is None or len(wav) <= self.max_samples:
            return wav
        start = 0
        if self.crop == "random":
            number = getattr(index, "number", 0)
            rng = np.random.default_rng([self.seed, self.epoch, int(index)] + ([number] if number else []))
            start = int(rng.integers(0, len(wav) - self.max_samples + 1))
        return wav[start : start + self.max_samples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        utt_id = self.utt_ids[index]
        wav = np.asarray(self.audio.load(utt_id), dtype=np.float32)
        if wav.ndim != 1:
            raise DataError(f"utterance '{utt_id}': expected mono audio, got shape {wav.shape}")
        targets = {attr: target_tensor(utt_id, attr, table[utt_id]) for attr, table in self.targets.items()}
        clean = np.ascontiguousarray(self._crop(wav, index))
        item = {"id": utt_id, "wav": torch.from_numpy(clean), "targets": targets}
        if self.augment is not None:
            # A stream of its own (spawn key 1), so that switching augmentation on leaves the crops as they were.
            entropy = [self.seed, self.epoch, int(index), getattr(index, "number", 0)]
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1,)))
            item["wav"] = torch.from_numpy(np.ascontiguousarray(self.augment(clean, rng), dtype=np.float32))
        if self.keep_clean:
            item["clean_wav"] = torch.from_numpy(clean)
        return item
