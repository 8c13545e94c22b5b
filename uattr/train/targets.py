"""On-the-fly teacher targets: an audio teacher embeds each batch's own (cropped) waveforms.

The default is cached targets (uattr extract-teacher once, then a table lookup), which the paper's
reference code did not do: it re-ran ECAPA on every batch. On-the-fly mode exists for cropped audio, where the
target must see the part of the utterance the student hears. With augmentation (``data.augment``) the teacher
embeds that crop clean (the batch's ``clean_wavs``): the student learns the clean embedding from noisy audio.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np
import torch

from uattr.attributes import AttributeConfig
from uattr.errors import ConfigError, naming_batch
from uattr.registry import TEACHERS
from uattr.teachers.base import SAMPLE_RATE, Teacher, build_teacher


def build_teachers(
    attributes: Mapping[str, AttributeConfig], names: list[str], device: torch.device
) -> dict[str, Teacher]:
    """Each named attribute's teacher from its ``teacher:`` block: ``name``, an optional ``field`` (ignored) and
    the teacher's constructor options (``model``, ``device``: the trainer's by default)."""
    teachers = {}
    for attr in names:
        spec = dict(attributes[attr].teacher)
        where = f"attributes.{attr}.teacher"
        if "name" not in spec:
            raise ConfigError(f"{where}: on-the-fly targets need the teacher's 'name' (e.g. speechbrain-ecapa)")
        name = spec.pop("name")
        spec.pop("field", None)  # the record's input field: an audio teacher reads the batch's waveforms
        try:
            if "device" in inspect.signature(TEACHERS.get(name)).parameters:  # beside the student by default
                spec.setdefault("device", str(device))
            teacher = build_teacher(name, **spec)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        if teacher.input != "audio":
            raise ConfigError(f"{where}: teacher '{name}' reads {teacher.input}, not audio; cache its targets instead")
        teachers[attr] = teacher
    return teachers


class OnTheFlyTargets:
    """Adds ``batch["targets"][attr]`` from each teacher's embedding of the batch's clean waveforms."""

    def __init__(self, teachers: Mapping[str, Teacher], sample_rate: int) -> None:
        if teachers and sample_rate != SAMPLE_RATE:
            raise ConfigError(f"on-the-fly teachers take {SAMPLE_RATE} Hz audio; the upstream runs at {sample_rate} Hz")
        self.teachers = dict(teachers)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if not self.teachers:
            return batch
        clean = batch.get("clean_wavs", batch["wavs"]).cpu()
        wavs = [wav[:length].numpy() for wav, length in zip(clean, batch["wav_lens"].tolist())]
        targets = dict(batch["targets"])
        for attr, teacher in self.teachers.items():
            with naming_batch(f"attributes.{attr}: on-the-fly teacher", batch["ids"]):  # e.g. a silent crop
                vectors = teacher.embed(wavs)
            targets[attr] = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
        return {**batch, "targets": targets}
