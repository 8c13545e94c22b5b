"""Embeddings of every requested attribute in one encoder pass per batch.

Output layout: ``<out>/<attr>/<set>/emb.{ark,scp}`` + ``meta.json`` per attribute, and ``<out>/layer_weights.json``.
Utterances are batched by duration (little padding; padding never changes an embedding because every pooling is
masked; an encoder that is not ``padding_invariant`` gets one utterance per batch), audio is read in DataLoader
workers, and each attribute's table is written through the resumable
:class:`~uattr.data.tables.EmbeddingTableWriter`: an interrupted run resumes where it stopped. Utterances that
occur in several data dirs of one run (retrieval queries and galleries cut from an evaluation set) are encoded
once (:class:`RepeatedUtterances`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from uattr.data.audio import AudioSource
from uattr.data.collate import collate_batch
from uattr.data.dataset import UtteranceDataset
from uattr.data.kaldi import DataDir
from uattr.data.sampler import DynamicBatchSampler
from uattr.data.tables import (
    EmbeddingTableWriter,
    job_dir,
    keep_current_table,
    merge_split,
    split_ids,
)
from uattr.errors import ConfigError, DataError, naming_batch
from uattr.fileio import atomic_write
from uattr.hub import model_folder
from uattr.model import UnifiedEncoder
from uattr.precision import autocast, autocast_dtype

logger = logging.getLogger(__name__)


def resolve_model_dir(path: str | Path) -> Path:
    """Accept an experiment dir (``exp/<tag>``, whose ``model/`` holds the final model), a model dir, or a model
    dir's Hugging Face Hub id (``org/name``: downloaded, or taken from the Hub cache)."""
    path = model_folder(path)
    if (path / "model" / "config.yaml").is_file():
        return path / "model"
    if (path / "config.yaml").is_file() and (path / "model.safetensors").is_file():
        return path
    raise ConfigError(f"{path}: not a uattr model dir (no config.yaml + model.safetensors, nor model/ inside)")


UtteranceKey = tuple[str, str, float, float | None]


def utterance_key(audio: AudioSource, utt_id: str) -> UtteranceKey:
    """What makes two utterances of different data dirs the same: the id and the audio it points at."""
    return (utt_id, *audio.data.locate(utt_id))


class RepeatedUtterances:
    """Embeddings of the utterances that several data dirs of one extraction run share, so each is encoded once.

    Only the shared ones are kept (a few vectors each), so memory stays bounded by the overlap, not the sets.
    """

    def __init__(self, data_dirs: Sequence[str | Path]) -> None:
        sources = [AudioSource(data) for data in data_dirs]
        counts = Counter(utterance_key(source, utt) for source in sources for utt in source.ids)
        self._repeated = {key for key, count in counts.items() if count > 1}
        self._vectors: dict[UtteranceKey, dict[str, np.ndarray]] = {}

    def lookup(self, key: UtteranceKey, attributes: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The vectors of every attribute in ``attributes`` if all were remembered, else None."""
        known = self._vectors.get(key, {})
        return known if all(attr in known for attr in attributes) else None

    def remember(self, key: UtteranceKey, attribute: str, vector: np.ndarray) -> None:
        if key in self._repeated:
            self._vectors.setdefault(key, {})[attribute] = vector


def extract_embeddings(
    model: UnifiedEncoder,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    set_name: str | None = None,
    attributes: Sequence[str] | None = None,
    job: int | None = None,
    num_jobs: int | None = None,
    model_name: str | None = None,
    max_batch_seconds: float = 200.0,
    max_batch_size: int = 64,
    num_workers: int = 0,
    device: str = "cpu",
    amp: str = "none",
    show_progress: bool = True,
    repeated: RepeatedUtterances | None = None,
) -> dict[str, Path]:
    """Write one embedding table per attribute for every utterance of ``data_dir``; return the table dirs.

    With ``job``/``num_jobs`` only that share of the utterances is embedded, into ``<table>/split<N>/<job>``
    (joined afterwards by :func:`merge_jobs`). With ``repeated``, utterances already encoded for an earlier
    data dir of the run are copied from it. ``amp`` ("bf16", "fp16") runs the model under autocast; the tables
    record it, so a table made at another precision is written again rather than resumed or kept.
    """
    data = DataDir.load(data_dir)
    data.require_utterances("extract")  # a job's empty share is fine
    data.require_audio()  # before any table folder is made
    set_name = set_name or data.path.name
    attributes = list(attributes or model.experts.keys())
    unknown = sorted(set(attributes) - set(model.experts.keys()))
    if unknown:
        raise ConfigError(f"unknown attribute(s) {unknown}; the model has {sorted(model.experts.keys())}")

    out_dir = Path(out_dir)
    table_dirs = {attr: job_dir(out_dir / attr / set_name, job, num_jobs) for attr in attributes}
    utt_ids = split_ids(data.utt_ids, job, num_jobs)
    amp_dtype = autocast_dtype(amp, torch.device(device), "--amp")
    made_by = {
        "model_sha256": model.weights_sha256(), "inputs_sha256": data.inputs_digest(),
        "autocast": None if amp_dtype is None else amp,  # None: as in the tables written before the option
    }
    merged_dirs = {attr: out_dir / attr / set_name for attr in attributes} if num_jobs else {}
    pending = [
        attr for attr in attributes
        if not keep_current_table(table_dirs[attr], utt_ids, made_by, merged_dirs.get(attr))
    ]
    writers = {
        attr: EmbeddingTableWriter(
            table_dirs[attr],
            meta={"attribute": attr, "dim": model.embedding_dim(attr), "normalized": model.is_normalized(attr),
                  "data": str(data.path), "model": model_name, **made_by},
            provenance=("data", "model"),  # the model is identified by its weights' digest, not by its path
        )
        for attr in pending
    }
    already_done = {attr: writer.done_ids for attr, writer in writers.items()}
    todo = [utt for utt in utt_ids if any(utt not in done for done in already_done.values())]
    if len(todo) < len(utt_ids):
        logger.info("%s: %d of %d utterances already extracted", set_name, len(utt_ids) - len(todo), len(utt_ids))
    audio = AudioSource(data, sample_rate=model.sample_rate)
    keys: dict[str, UtteranceKey] = {}
    if repeated is not None:
        keys = {utt: utterance_key(audio, utt) for utt in todo}
        copied = _write_remembered(todo, keys, repeated, writers, already_done)
        todo = [utt for utt in todo if utt not in copied]
    if todo:
        if not model.upstream.padding_invariant and max_batch_size > 1:
            logger.info("%s: its hidden states depend on padding; one utterance per batch", model.upstream.name)
            max_batch_size = 1
        durations = audio.durations(todo)
        dataset = UtteranceDataset(todo, audio, {})
        sampler = DynamicBatchSampler(
            [durations[utt] for utt in todo], max_batch_seconds=max_batch_seconds,
            max_batch_size=max_batch_size, shuffle=False,
        )
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate_batch, num_workers=num_workers
        )
        model.eval().to(device)
        progress = tqdm(total=len(todo), desc=f"extract {set_name}", unit="utt", disable=not show_progress)
        with torch.inference_mode():
            for batch in loader:
                with naming_batch(data.path, batch["ids"]), _out_of_memory_as_data_error(batch, model.sample_rate), \
                        autocast(torch.device(device), amp_dtype):
                    embeddings = model(batch["wavs"].to(device), batch["wav_lens"].to(device), list(writers))
                for attr, writer in writers.items():
                    vectors = embeddings[attr].float().cpu().numpy()
                    keep = [i for i, utt in enumerate(batch["ids"]) if utt not in already_done[attr]]
                    if keep:
                        writer.write([batch["ids"][i] for i in keep], vectors[keep])
                    if repeated is not None:
                        for utt, vector in zip(batch["ids"], vectors):
                            repeated.remember(keys[utt], attr, vector)
                progress.update(len(batch["ids"]))
        progress.close()
    for writer in writers.values():
        writer.close()
    write_layer_weights(model, out_dir / "layer_weights.json")
    return table_dirs


@contextlib.contextmanager
def _out_of_memory_as_data_error(batch: dict[str, Any], sample_rate: int) -> Iterator[None]:
    """A batch too large for the memory (an hour-long recording: self-attention is quadratic in its length) is
    a DataError that says how long it was, instead of an allocator's traceback."""
    try:
        yield
    except RuntimeError as error:
        if not (isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in str(error)):
            raise
        seconds = float(batch["wav_lens"].max()) / sample_rate
        raise DataError(
            f"out of memory encoding a batch of {len(batch['ids'])} utterance(s), the longest {seconds:.1f} s: lower "
            "--max-batch-seconds, or cut recordings this long into segments (a segments file); the encoder's memory "
            "grows with the square of an utterance's length"
        ) from None


def _write_remembered(
    utt_ids: Sequence[str],
    keys: dict[str, UtteranceKey],
    repeated: RepeatedUtterances,
    writers: dict[str, EmbeddingTableWriter],
    already_done: dict[str, frozenset[str]],
) -> set[str]:
    """Write the utterances whose vectors ``repeated`` holds for every pending attribute; return their ids."""
    copied = {utt: vectors for utt in utt_ids if (vectors := repeated.lookup(keys[utt], list(writers)))}
    for attr, writer in writers.items():
        ids = [utt for utt in copied if utt not in already_done[attr]]
        if ids:
            writer.write(ids, np.stack([copied[utt][attr] for utt in ids]))
    if copied:
        logger.info("%d utterance(s) copied from an earlier set of this run", len(copied))
    return set(copied)


def merge_jobs(out_dir: str | Path, set_name: str, attributes: Sequence[str], num_jobs: int) -> None:
    """Join the per-job tables of every attribute into ``<out>/<attr>/<set>``."""
    for attr in attributes:
        merge_split(Path(out_dir) / attr / set_name, num_jobs)


def write_layer_weights(model: UnifiedEncoder, path: Path) -> None:
    """Save each branch's layer-mixing weights (``{attr: {"layers": [...], "weights": [...]}}``)."""
    with atomic_write(path) as handle:
        json.dump(model.layer_weights(), handle, indent=2)
