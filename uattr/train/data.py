"""The trainer's data: a split's utterances, their cached teacher targets, the batch sampler and the loader.

Train and dev are built the same way (duration bounds, target join), except that dev batches come in a
fixed order, dev audio is never cropped at random, and dev is never sampled with weights.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from uattr.data.audio import AudioSource
from uattr.data.augment import Augmenter
from uattr.data.collate import collate_batch
from uattr.data.dataset import UtteranceDataset, filter_by_duration, join_targets
from uattr.data.kaldi import DataDir, digest
from uattr.data.sampler import DynamicBatchSampler, language_balanced_weights, speaker_balanced_weights
from uattr.data.tables import META_NAME, read_embedding_table, read_table_meta
from uattr.errors import ConfigError, DataError
from uattr.train.config import DataConfig, SplitName, table_files
from uattr.train.distributed import DistributedContext

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SplitData:
    """One split ready to iterate: ``loader`` yields batches of ``dataset`` in the order ``sampler`` plans."""

    data: DataDir
    dataset: UtteranceDataset
    sampler: DynamicBatchSampler
    loader: DataLoader
    seed: int

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's batches, crops and DataLoader worker seeds (all functions of seed and epoch)."""
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.loader.generator.manual_seed(self.seed + epoch)


def data_fingerprint(split: SplitData, name: str) -> dict[str, str]:
    """Digests of what ``split`` feeds the model: its utterance ids in order, where their audio is (wav.scp
    entry, segment), their seconds and draw weights, and each cached attribute's targets.

    A checkpoint keeps them so that a resumed run notices data changed under the same paths and count, which
    the config (paths only) and the sampler state (counts) cannot: the resumed run would go on with the old
    run's optimiser state and sampler plan over other data.
    """
    dataset, sampler = split.dataset, split.sampler
    digests = {
        f"{name} utterance ids": digest(utt.encode() for utt in dataset.utt_ids),
        f"{name} audio (wav.scp, segments)": split.data.inputs_digest(utt_ids=dataset.utt_ids),
        f"{name} durations": digest([sampler.durations.tobytes()]),
    }
    if sampler.probabilities is not None:
        digests[f"{name} sampling weights"] = digest([sampler.probabilities.tobytes()])
    for attr, table in dataset.targets.items():
        values = (np.asarray(table[utt]).tobytes() for utt in dataset.utt_ids)
        digests[f"{name} targets of '{attr}'"] = digest(values)
    if dataset.augment is not None:
        digests |= {f"{name} {key}": value for key, value in dataset.augment.fingerprint().items()}
    return digests


def read_targets(config: DataConfig, attributes: Sequence[str], split: SplitName) -> dict[str, Mapping[str, Any]]:
    """Each attribute's cached teacher table; label tables (their meta.json lists classes) become int indices.
    A dev table must hold what the train table holds (:func:`_require_like_train`)."""
    targets: dict[str, Mapping[str, Any]] = {}
    for attr in attributes:
        scp, table_dir = table_files(config.target_table(attr, split))
        table = read_embedding_table(scp)
        meta = read_table_meta(table_dir)
        if split != "train":
            _require_like_train(config, attr, meta, table_dir)
        if meta.get("classes") is not None:
            table = {utt: int(vector[0]) for utt, vector in table.items()}
        targets[attr] = table
    return targets


def _require_like_train(config: DataConfig, attr: str, meta: Mapping[str, Any], table_dir: Path) -> None:
    """Label indices of the train table's classes, or vectors of its dimension: found only at the first
    validation, a mismatch would cost a whole training interval."""
    _, train_dir = table_files(config.target_table(attr, "train"))
    train_meta = read_table_meta(train_dir)
    classes, train_classes = meta.get("classes"), train_meta.get("classes")
    if classes is not None and classes != train_classes:
        raise DataError(
            f"{table_dir}: its label indices stand for the classes {classes}, the train table's ({train_dir}) for "
            f"{train_classes}; extract it again with --classes-from {train_dir}"
        )
    if classes is None and train_classes is None and meta.get("dim") != train_meta.get("dim"):
        raise ConfigError(
            f"{table_dir / META_NAME}: {meta.get('dim')}-d dev targets of '{attr}', but the train targets "
            f"({train_dir / META_NAME}) are {train_meta.get('dim')}-d; extract both with the same teacher"
        )


def sampling_weights(config: DataConfig, data: DataDir, utt_ids: Sequence[str]) -> np.ndarray | None:
    """Per-utterance draw weights of ``data.sampling`` (None: every utterance once per epoch)."""
    if config.sampling == "none":
        return None
    labels = data.utt2lang if config.sampling == "language" else data.utt2spk
    if labels is None:
        table = "utt2lang" if config.sampling == "language" else "utt2spk"
        raise DataError(f"{data.path}/{table}: no such file, needed for data.sampling: {config.sampling}")
    if config.sampling == "language":
        return language_balanced_weights(utt_ids, labels, config.alpha)
    return speaker_balanced_weights(utt_ids, labels)


def build_split(
    config: DataConfig,
    split: SplitName,
    cached_attributes: Sequence[str],
    sample_rate: int,
    seed: int,
    context: DistributedContext,
    keep_clean: bool = False,
) -> SplitData:
    """Dataset, batch sampler and loader of the train or valid split. Training audio is augmented as
    ``config.augment`` says; ``keep_clean`` keeps its clean audio in the batches too (for on-the-fly teachers)."""
    training = split == "train"
    data = DataDir.load(config.train if training else config.valid)
    audio = AudioSource(data, sample_rate)
    durations = audio.durations()
    utt_ids = filter_by_duration(durations, min_seconds=config.min_seconds, max_seconds=config.max_seconds)
    if not utt_ids:
        raise DataError(f"{data.path}: no utterance within data.min_seconds/max_seconds")
    targets = read_targets(config, cached_attributes, split)
    sources = {attr: str(table_files(config.target_table(attr, split))[0]) for attr in cached_attributes}
    utt_ids = join_targets(utt_ids, targets, drop_missing=config.drop_missing, sources=sources, data=str(data.path))
    augment = Augmenter(config.augment, sample_rate) if training and config.augment.enabled else None
    dataset = UtteranceDataset(
        utt_ids, audio, targets, max_seconds=config.crop_seconds, crop="random" if training else "start", seed=seed,
        augment=augment, keep_clean=keep_clean and augment is not None,
    )
    seconds = dataset.item_seconds(durations)
    # Without a seconds budget, batches are bounded by their size alone.
    budget = config.max_batch_seconds or config.max_batch_size * max(seconds)
    sampler = DynamicBatchSampler(
        seconds,
        max_batch_seconds=budget,
        max_batch_size=config.max_batch_size,
        shuffle=training,
        seed=seed,
        weights=sampling_weights(config, data, utt_ids) if training else None,
        num_replicas=context.world_size,
        rank=context.rank,
        uneven=not training,  # dev: every batch once, shared out among the ranks
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_batch,
        num_workers=config.num_workers,
        pin_memory=context.device.type == "cuda",
        # Its own generator: creating an iterator then draws no number from the global torch RNG, which a
        # resumed run must find exactly where the checkpoint left it.
        generator=torch.Generator().manual_seed(seed),
    )
    logger.info("%s: %d utterances, %d batches per epoch on this rank", data.path, len(dataset), len(sampler))
    return SplitData(data, dataset, sampler, loader, seed)
