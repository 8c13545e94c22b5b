"""Cache a teacher's targets for a data dir as an embedding table (``dump/teacher/<attr>/<set>/``).

Batched (audio batches grouped by duration, longest first), resumable (an interrupted run continues where it
stopped; the final ``emb.scp``/``meta.json`` appear only when every utterance is done) and splittable:
job ``i`` of ``N`` (1-based, as in ``JOB=1:N``) takes the ``i``-th contiguous chunk of the sorted utterance
ids and writes ``<out>/split<N>/<i>/``; :func:`uattr.data.tables.merge_split` then joins the N tables into ``<out>``. The split
tables stay in place: the merged ``emb.scp`` points at their arks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from uattr.data.audio import AudioSource
from uattr.data.kaldi import DataDir
from uattr.data.tables import EmbeddingTableWriter, job_dir, keep_current_table, split_ids
from uattr.errors import ConfigError, DataError, naming_batch
from uattr.fileio import PathLike
from uattr.teachers.base import IDENTITY_KEYS, SAMPLE_RATE, Teacher, input_field

logger = logging.getLogger(__name__)

_SHOWN_IDS = 20  # how many missing ids an error message lists


def extract_teacher(
    teacher: Teacher,
    data_dir: PathLike,
    out_dir: PathLike,
    *,
    field: str | None = None,
    batch_size: int = 32,
    job: int | None = None,
    num_jobs: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Write ``teacher``'s vectors for every utterance of ``data_dir``; returns the table dir written.

    ``field`` is the data-dir table a text or label teacher reads (default: the teacher's, e.g. ``text``);
    every utterance needs an entry. A complete table of the same utterances is left as it is.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    target = job_dir(out_dir, job, num_jobs)
    data = DataDir.load(data_dir)
    data.require_utterances("embed")  # a job's empty share is fine
    if teacher.input == "audio":
        data.require_audio()
    utt_ids = split_ids(data.utt_ids, job, num_jobs)
    field = input_field(teacher, field)
    inputs = _read_inputs(data, field, teacher.input) if teacher.input != "audio" else None
    if inputs is not None:
        teacher.prepare(inputs, source=str(data.path / field))
    meta = {**teacher.metadata(), "field": field, "data": str(data_dir), "inputs_sha256": data.inputs_digest(field)}
    identity = {key: meta[key] for key in IDENTITY_KEYS if key in meta}
    if keep_current_table(target, utt_ids, identity, out_dir if num_jobs else None):
        logger.info("%s: teacher table already complete; nothing to do", target)
        return target

    writer = EmbeddingTableWriter(target, meta=meta)
    done = writer.done_ids  # once: each read builds the set
    todo = [utt for utt in utt_ids if utt not in done]
    if len(todo) < len(utt_ids):
        logger.info("%s: resuming, %d of %d utterances already done", target, len(utt_ids) - len(todo), len(utt_ids))
    audio = AudioSource(data, sample_rate=SAMPLE_RATE) if inputs is None else None
    if audio is not None:
        # Similar durations share a batch (little padding); longest first, so memory limits show at once.
        durations = audio.durations(todo)
        todo.sort(key=lambda utt: (-durations[utt], utt))
    with tqdm(total=len(todo), unit="utt", desc=f"{teacher.name} {target}", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch_ids = todo[start : start + batch_size]
            batch: list[Any] = [audio.load(u) for u in batch_ids] if audio else [inputs[u] for u in batch_ids]
            with naming_batch(data.path, batch_ids):  # e.g. digital silence for a speaker teacher
                vectors = teacher.embed(batch)
            writer.write(batch_ids, vectors)
            bar.update(len(batch_ids))
    writer.close()
    logger.info("%s: wrote %d %s vectors of dimension %s", target, len(utt_ids), teacher.name, teacher.dim)
    return target


def _read_inputs(data: DataDir, field: str | None, kind: str) -> dict[str, str]:
    """The ``field`` table restricted to the data dir's utterances; missing entries (or, for a text teacher,
    blank ones, which every text model would embed as one constant target) are a DataError."""
    if field is None:
        raise ConfigError("this teacher needs an input field (e.g. --field text.en)")
    table = data.table(field)
    missing = [utt for utt in data.utt_ids if utt not in table]
    if missing:
        raise DataError(f"{data.path / field}: no entry for {len(missing)} of {len(data.utt_ids)} utterances: "
                        f"{_shown(missing)}")
    blank = [utt for utt in data.utt_ids if kind == "text" and not table[utt].strip()]
    if blank:
        raise DataError(f"{data.path / field}: empty text for {len(blank)} utterance(s): {_shown(blank)}; "
                        f"drop them from the data dir (uattr subset-data-dir) or give them a text")
    return {utt: table[utt] for utt in data.utt_ids}


def _shown(ids: list[str]) -> str:
    more = f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(ids[:_SHOWN_IDS]) + more
