"""Trial lists and score files of speaker verification.

Trial lists come in two formats, detected per file from its first non-blank line and then required of every
line (a line of the other format is an error naming ``file:line``):

- Kaldi: ``enroll test target|nontarget``, or just ``enroll test`` (unlabelled);
- VoxCeleb: ``1|0 enroll test`` (1 = target).

Score files are ``enroll test score [target|nontarget]``: the two ids always stay separate columns, never glued
into one key. Labels are NumPy booleans (True = target trial).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from uattr.errors import DataError
from uattr.fileio import PathLike, atomic_write, iter_fields, parse_float
from uattr.scoring.embeddings import describe_ids

logger = logging.getLogger(__name__)

_KALDI_LABELS = {"target": True, "nontarget": False}
_VOXCELEB_LABELS = {"1": True, "0": False}
_LABEL_NAMES = ("nontarget", "target")
_WRITE_CHUNK = 100_000


@dataclass
class Trials:
    """A trial list: ``enroll[i]`` against ``test[i]``, labelled or not; ``lines[i]`` is its line number."""

    enroll: list[str]
    test: list[str]
    labels: np.ndarray | None
    lines: np.ndarray
    path: str

    def __len__(self) -> int:
        return len(self.enroll)


@dataclass
class Scores:
    """Scored trials: ``scores[i]`` of ``enroll[i]`` against ``test[i]``, with labels when known."""

    enroll: list[str]
    test: list[str]
    scores: np.ndarray
    labels: np.ndarray | None = None
    path: str = ""

    def __len__(self) -> int:
        return len(self.enroll)


_Parser = Callable[[list[str]], tuple[str, str, bool | None]]


def _parse_kaldi(fields: list[str]) -> tuple[str, str, bool | None]:
    if len(fields) != 3 or fields[2] not in _KALDI_LABELS:
        raise ValueError
    return fields[0], fields[1], _KALDI_LABELS[fields[2]]


def _parse_voxceleb(fields: list[str]) -> tuple[str, str, bool | None]:
    if len(fields) != 3 or fields[0] not in _VOXCELEB_LABELS:
        raise ValueError
    return fields[1], fields[2], _VOXCELEB_LABELS[fields[0]]


def _parse_unlabelled(fields: list[str]) -> tuple[str, str, bool | None]:
    if len(fields) != 2:
        raise ValueError
    return fields[0], fields[1], None


_FORMATS: dict[str, tuple[str, _Parser]] = {
    "kaldi": ("enroll test target|nontarget", _parse_kaldi),
    "voxceleb": ("1|0 enroll test", _parse_voxceleb),
    "unlabelled": ("enroll test", _parse_unlabelled),
}


def detect_trial_format(fields: list[str]) -> str | None:
    """The trial format a line's fields fit (Kaldi wins when a line fits both), or None."""
    if len(fields) == 3 and fields[2] in _KALDI_LABELS:
        return "kaldi"
    if len(fields) == 3 and fields[0] in _VOXCELEB_LABELS:
        return "voxceleb"
    if len(fields) == 2:
        return "unlabelled"
    return None


def _unordered(pair: tuple[str, str]) -> tuple[str, str]:
    return pair if pair[0] <= pair[1] else (pair[1], pair[0])


class _PairCheck:
    """The pairs of a trial or score list, unordered (cosine scores are symmetric): a pair labelled target on one
    line and nontarget on another is an error naming both lines; a pair listed again is scored as listed, with a
    warning (an EER over a list with repeats weighs those pairs twice), and so is an utterance paired with itself
    (it scores 1 and is no verification)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first: dict[tuple[str, str], tuple[int, bool | None]] = {}
        self.repeat: tuple[int, int] | None = None  # (line, its first line) of the first repeat
        self.repeats = 0
        self.self_pairs: list[int] = []  # lines

    def add(self, number: int, enroll: str, test: str, label: bool | None) -> None:
        if enroll == test:
            self.self_pairs.append(number)
        key = _unordered((enroll, test))
        if key not in self.first:
            self.first[key] = (number, label)
            return
        first_line, first_label = self.first[key]
        if label is not None and label != first_label:
            raise DataError(
                f"{self.path}:{number}: pair '{enroll} {test}' is labelled {_LABEL_NAMES[label]} here but "
                f"{_LABEL_NAMES[bool(first_label)]} on line {first_line}"
            )
        self.repeats += 1
        self.repeat = self.repeat or (number, first_line)

    def warn(self) -> None:
        if self.repeat is not None:
            logger.warning(
                "%s: %d line(s) repeat a pair listed before (e.g. line %d repeats line %d); each is scored as listed",
                self.path, self.repeats, *self.repeat,
            )
        if self.self_pairs:
            logger.warning("%s: %d line(s) pair an utterance with itself (e.g. line %d); each is scored as listed",
                           self.path, len(self.self_pairs), self.self_pairs[0])


def read_trials(path: PathLike) -> Trials:
    """Read a Kaldi or VoxCeleb trial list (format detected from the first line, then enforced)."""
    path = Path(path)
    enroll: list[str] = []
    test: list[str] = []
    labels: list[bool | None] = []
    lines: list[int] = []
    parse: _Parser | None = None
    described = ""
    first_line = 0
    pairs = _PairCheck(path)
    for number, line, fields in iter_fields(path, "trial list"):
        if parse is None:
            name = detect_trial_format(fields)
            if name is None:
                raise DataError(
                    f"{path}:{number}: malformed trial line {line!r}; expected one of "
                    + ", ".join(f"'{pattern}'" for pattern, _ in _FORMATS.values())
                )
            described, parse = _FORMATS[name]
            first_line = number
        try:
            enroll_id, test_id, label = parse(fields)
        except ValueError:
            raise DataError(
                f"{path}:{number}: malformed trial line {line!r}; line {first_line} set the format "
                f"'{described}' for this file"
            ) from None
        pairs.add(number, enroll_id, test_id, label)
        enroll.append(enroll_id)
        test.append(test_id)
        labels.append(label)
        lines.append(number)
    if not enroll:
        raise DataError(f"{path}: empty trial list")
    pairs.warn()
    label_array = None if parse is _parse_unlabelled else np.array(labels, dtype=bool)
    return Trials(enroll, test, label_array, np.array(lines, dtype=np.int64), str(path))


def read_scores(path: PathLike) -> Scores:
    """Read ``enroll test score [target|nontarget]`` lines; all lines labelled or none, scores finite."""
    path = Path(path)
    enroll: list[str] = []
    test: list[str] = []
    values: list[float] = []
    labels: list[bool] = []
    width = 0
    pairs = _PairCheck(path)
    for number, line, fields in iter_fields(path, "score file"):
        width = width or len(fields)
        if len(fields) != width or width not in (3, 4) or (width == 4 and fields[3] not in _KALDI_LABELS):
            raise DataError(
                f"{path}:{number}: malformed score line {line!r}; expected 'enroll test score' or "
                f"'enroll test score target|nontarget' on every line, like the first"
            )
        try:
            value = parse_float(fields[2])
        except ValueError:
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{path}:{number}: score of '{fields[0]} {fields[1]}' is {fields[2]}")
        pairs.add(number, fields[0], fields[1], _KALDI_LABELS[fields[3]] if width == 4 else None)
        enroll.append(fields[0])
        test.append(fields[1])
        values.append(value)
        if width == 4:
            labels.append(_KALDI_LABELS[fields[3]])
    if not enroll:
        raise DataError(f"{path}: empty score file")
    pairs.warn()
    label_array = np.array(labels, dtype=bool) if width == 4 else None
    return Scores(enroll, test, np.array(values, dtype=np.float64), label_array, str(path))


def write_scores(path: PathLike, scores: Scores) -> None:
    """Write ``enroll test score [label]`` lines atomically (9 significant digits: float32 round-trips)."""
    with atomic_write(path) as handle:
        for start in range(0, len(scores), _WRITE_CHUNK):
            stop = start + _WRITE_CHUNK
            values = scores.scores[start:stop].tolist()
            pairs = zip(scores.enroll[start:stop], scores.test[start:stop], values)
            if scores.labels is None:
                rows = [f"{e} {t} {s:.9g}\n" for e, t, s in pairs]
            else:
                names = [_LABEL_NAMES[label] for label in scores.labels[start:stop].tolist()]
                rows = [f"{e} {t} {s:.9g} {n}\n" for (e, t, s), n in zip(pairs, names)]
            handle.writelines(rows)


def attach_labels(scores: Scores, trials: Trials) -> Scores:
    """Labels for each scored pair, looked up by ``(enroll, test)`` in a labelled trial list."""
    if trials.labels is None:
        raise DataError(f"{trials.path}: the trial list has no target/nontarget labels")
    by_pair: dict[tuple[str, str], int] = {}  # read_trials has checked that repeated pairs agree
    for position, (enroll, test) in enumerate(zip(trials.enroll, trials.test)):
        by_pair.setdefault((enroll, test), position)
        by_pair.setdefault((test, enroll), position)  # unordered, as the lists' checks are: cosine is symmetric
    positions = np.fromiter((by_pair.get(pair, -1) for pair in zip(scores.enroll, scores.test)), dtype=np.int64)
    unknown = np.flatnonzero(positions < 0)
    if unknown.size:
        pairs = [f"{scores.enroll[i]} {scores.test[i]}" for i in unknown]
        raise DataError(f"{scores.path}: {unknown.size} scored pair(s) not in {trials.path}: {describe_ids(pairs)}")
    listed = {_unordered(pair) for pair in zip(trials.enroll, trials.test)}
    unscored = len(listed - {_unordered(pair) for pair in zip(scores.enroll, scores.test)})
    if unscored:  # a truncated score file, or one of --skip-missing: the metrics are over a subset
        logger.warning("%s: %d of the %d pairs of %s have no score; the metrics are over the other %d",
                       scores.path, unscored, len(listed), trials.path, len(listed) - unscored)
    return Scores(scores.enroll, scores.test, scores.scores, trials.labels[positions], scores.path)


def same_language(scores: Scores, utt2lang: Mapping[str, str], source: str) -> np.ndarray:
    """Whether each trial's two sides are in one language (cross-lingual speaker verification scores the two kinds
    apart: a speaker embedding that keeps content draws two voices of one language together). An id without a
    language is an error naming ``source``; an enrolment model named by a speaker id needs that id's language."""
    missing = sorted({key for key in (*scores.enroll, *scores.test) if key not in utt2lang})
    if missing:
        raise DataError(f"{source}: no language for {len(missing)} id(s) of {scores.path}: {describe_ids(missing)}")
    return np.fromiter((utt2lang[a] == utt2lang[b] for a, b in zip(scores.enroll, scores.test)), dtype=bool,
                       count=len(scores))
