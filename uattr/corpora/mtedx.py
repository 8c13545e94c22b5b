"""Multilingual TEDx (mTEDx) for speech→text retrieval: talk recordings cut into the translated segments.

Public layout (openslr.org/100, ``mtedx_<src>-<tgt>.tgz`` unpacked)::

    <root>/<src>-<tgt>/data/<split>/txt/<split>.yaml    one segment per item: {duration, offset, speaker_id, wav}
    <root>/<src>-<tgt>/data/<split>/txt/<split>.<src>   the transcripts, line i = segment i
    <root>/<src>-<tgt>/data/<split>/txt/<split>.<tgt>   the translations, line i = segment i
    <root>/<src>-<tgt>/data/<split>/wav/<talk>.flac     the YAML says <talk>.wav; the release ships FLAC

Splits: train, valid, test (and iwslt2021). A segment's id is ``<talk>_<index>``, the index counting the talk's
segments by offset (as fairseq's mTEDx loader does), zero-padded to four digits so that ids sort in talk order.
Per pair and split, written under ``out``:

- ``<split>_<src>_<tgt>``: the queries: wav.scp (one recording per talk), ``segments`` from the offsets and
  durations, ``text`` (transcript), ``text.<tgt>`` (translation), ``utt2spk``, ``utt2lang`` = src;
- ``<split>_<src>_<tgt>_text``: the gallery, the same segments with ``text`` = the translation (what the text
  teacher embeds), ``utt2lang`` = tgt;
- ``<split>_<src>_<tgt>/query2ref``: segment → every segment whose translation is the same text (identical
  short lines such as "Thank you." are equally right answers);
- ``retrieval_tasks``: ``mtedx_<split>_<src>_<tgt>_s2t`` per pair and split.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Sequence

import yaml

from uattr.corpora.release import (
    RetrievalTask,
    absolute,
    check_data_dir,
    clean_text,
    prepare_pair_splits,
    relevant_by_text,
    require_file,
    write_query2ref,
)
from uattr.data.kaldi import Segment, write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)

SPLITS = ("valid", "test")
_YAML_KEYS = ("duration", "offset", "speaker_id", "wav")


def _load_yaml(path: Path) -> list[dict[str, str]]:
    # Every value as a string (talk ids such as "1e10" must not become numbers); the C loader when PyYAML has
    # it, as train YAMLs hold 100k+ items.
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        items = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as error:
        raise DataError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of segments, got {type(items).__name__}")
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or any(key not in item for key in _YAML_KEYS):
            raise DataError(f"{path}: segment {number} must have the keys {', '.join(_YAML_KEYS)}; got {item!r}")
    return items


def _read_lines(path: Path, expected: int, yaml_path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != expected:
        raise DataError(f"{path}: {len(lines)} lines, but {yaml_path} lists {expected} segments (line i = segment i)")
    return [clean_text(line) for line in lines]


def _talk_audio(wav_dir: Path, name: str, yaml_path: Path, number: int) -> Path:
    """The talk's audio: the YAML's file name, or the same name with .flac (what the release ships)."""
    for candidate in (wav_dir / name, (wav_dir / name).with_suffix(".flac")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{yaml_path}: segment {number}: audio {wav_dir / name} (or .flac) not found")


def read_split(root: PathLike, src: str, tgt: str, split: str) -> dict[str, dict[str, Any]]:
    """Segment id → {talk, audio, start, end, speaker, text, translation} of one pair's split."""
    data_dir = Path(root) / f"{src}-{tgt}" / "data" / split
    layout = f"<root>/{src}-{tgt}/data/{split}/txt/{split}.{{yaml,{src},{tgt}}} and .../wav/<talk>.flac"
    yaml_path = require_file(data_dir / "txt" / f"{split}.yaml", layout)
    items = _load_yaml(yaml_path)
    transcripts = _read_lines(require_file(data_dir / "txt" / f"{split}.{src}", layout), len(items), yaml_path)
    translations = (
        transcripts if tgt == src
        else _read_lines(require_file(data_dir / "txt" / f"{split}.{tgt}", layout), len(items), yaml_path)
    )
    by_talk: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        by_talk.setdefault(Path(item["wav"]).stem, []).append(position)
    segments: dict[str, dict[str, Any]] = {}
    for talk, positions in sorted(by_talk.items()):
        audio = absolute(_talk_audio(data_dir / "wav", items[positions[0]]["wav"], yaml_path, positions[0] + 1))
        for index, position in enumerate(sorted(positions, key=lambda p: float(items[p]["offset"]))):
            item = items[position]
            try:
                start, duration = float(item["offset"]), float(item["duration"])
            except ValueError:
                raise DataError(f"{yaml_path}: segment {position + 1}: offset/duration are not numbers") from None
            if start < 0 or duration <= 0:
                raise DataError(f"{yaml_path}: segment {position + 1}: offset {start} / duration {duration} invalid")
            segments[f"{talk}_{index:04d}"] = {
                "talk": talk, "audio": audio, "start": start, "end": start + duration,
                "speaker": item["speaker_id"], "text": transcripts[position],
                "translation": translations[position],
            }
    return segments


def _write_set(path: Path, segments: dict[str, dict[str, Any]], text_field: str, lang: str, **extra) -> None:
    write_data_dir(
        path,
        wav_scp={seg["talk"]: seg["audio"] for seg in segments.values()},
        segments={utt: Segment(seg["talk"], seg["start"], seg["end"]) for utt, seg in segments.items()},
        text={utt: seg[text_field] for utt, seg in segments.items()},
        utt2spk={utt: seg["speaker"] for utt, seg in segments.items()},
        utt2lang={utt: lang for utt in segments},
        **extra,
    )
    check_data_dir(path)


def prepare_mtedx(
    root: PathLike, out: PathLike, *, pairs: Sequence[str] = ("it-en",), splits: Sequence[str] = SPLITS
) -> list[RetrievalTask]:
    """Write the data dirs, maps and task list of the module docstring; returns the retrieval tasks."""
    return prepare_pair_splits(out, pairs, splits, functools.partial(_prepare_split, root))


def _prepare_split(root: PathLike, out: Path, src: str, tgt: str, split: str) -> RetrievalTask:
    """The query and gallery dirs and the map of one pair and split; its speech→text retrieval task."""
    segments = read_split(root, src, tgt, split)
    query_set, gallery_set = f"{split}_{src}_{tgt}", f"{split}_{src}_{tgt}_text"
    translations = {utt: seg["translation"] for utt, seg in segments.items()}
    _write_set(out / query_set, segments, "text", src, tables={f"text.{tgt}": translations})
    _write_set(out / gallery_set, segments, "translation", tgt)
    write_query2ref(out / query_set / "query2ref", relevant_by_text(translations))
    logger.info("%s/%s: %d segments of %d talks", out, query_set, len(segments),
                len({seg["talk"] for seg in segments.values()}))
    return RetrievalTask(
        f"mtedx_{split}_{src}_{tgt}_s2t", "semantic", query_set, "teacher", gallery_set,
        str(out / query_set / "query2ref"),
    )
