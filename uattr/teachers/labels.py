"""Label "teacher": the class index of an ``utt2<label>`` table (e.g. ``utt2lang``) as a length-1 vector.

It lets label attributes (language, gender, ...) use the same cached-table path as embedding teachers. The
classes are the sorted labels of the data set, or a given list (dev/test reuse the train table's classes via
``classes_from``) so indices agree across sets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from uattr.data.kaldi import DataDir
from uattr.data.tables import read_table_meta, table_is_complete
from uattr.errors import ConfigError, DataError
from uattr.teachers.base import Teacher, register_teacher

_SHOWN = 10  # how many offending utterances an error message lists


@register_teacher("labels")
class LabelTeacher(Teacher):
    """Class indices; ``classes`` or ``classes_from`` (a table dir or its meta.json) fix the class list."""

    input = "label"
    default_field = "utt2lang"
    dim = 1
    normalized = False

    def __init__(self, classes: Sequence[str] | None = None, classes_from: str | Path | None = None) -> None:
        if classes is not None and classes_from is not None:
            raise ConfigError("labels teacher: give classes or classes_from, not both")
        if classes_from is not None:
            classes = classes_of(classes_from)
        self.classes: list[str] | None = None
        if classes is not None:
            self._set_classes(list(classes), where="labels teacher classes")

    def prepare(self, inputs: Mapping[str, str], source: str) -> None:
        if self.classes is None:
            if not inputs:
                raise DataError(f"{source}: no labels to take the classes from")
            self._set_classes(sorted(set(inputs.values())), where=source)
            return
        unknown = [(utt, label) for utt, label in inputs.items() if label not in self._index]
        if unknown:
            shown = ", ".join(f"'{utt}' has '{label}'" for utt, label in unknown[:_SHOWN])
            more = f" (and {len(unknown) - _SHOWN} more)" if len(unknown) > _SHOWN else ""
            raise DataError(
                f"{source}: {len(unknown)} utterance(s) with labels outside the {len(self.classes)} given classes "
                f"({', '.join(self.classes)}): {shown}{more}"
            )

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        if self.classes is None:
            raise ConfigError("labels teacher: the classes are unknown; give classes/classes_from or call prepare()")
        indices = []
        for label in batch:
            if label not in self._index:
                raise DataError(f"label '{label}' is not one of the classes {', '.join(self.classes)}")
            indices.append(self._index[label])
        return np.asarray(indices, dtype=np.float32).reshape(len(batch), 1)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "classes": self.classes}

    def _set_classes(self, classes: list[str], where: str) -> None:
        duplicates = sorted(c for c, count in Counter(classes).items() if count > 1)
        if duplicates or not all(isinstance(c, str) and c for c in classes):
            raise ConfigError(f"{where}: classes must be distinct non-empty strings (duplicates: {duplicates})")
        self.classes = classes
        self._index = {label: index for index, label in enumerate(classes)}


def shared_classes(data: DataDir, field: str, first_table: Path) -> list[str]:
    """The classes a labels run over several sets gives all of them, known before any table is written: those
    of the first set's complete table where they cover the first set's labels (it may have been made with a
    longer given list), else the first set's sorted labels, which its table is about to be made with."""
    values = data.table(field)
    labels = {values[utt] for utt in data.utt_ids if utt in values}
    if table_is_complete(first_table):
        classes = classes_of(first_table)
        if labels <= set(classes):
            return classes
    return sorted(labels)


def classes_of(table: str | Path) -> list[str]:
    """The class list a labels table was made with (its meta.json's ``classes``)."""
    meta = read_table_meta(table)
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes:
        raise ConfigError(f"{table}: meta.json has no 'classes' list (is it a labels teacher table?)")
    return classes
