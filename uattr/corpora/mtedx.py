"""Multilingual TEDx (mTEDx) for speech→text retrieval: talk recordings cut into the translated segments.

Public layout (openslr.org/100, ``mtedx_<src>-<tgt>.tgz`` unpacked)::

    <root>/<src>-<tgt>/data/<split>/txt/<split>.yaml    one segment per item: {duration, offset, speaker_id, wav}
    <root>/<src>-<tgt>/data/<split>/txt/<split>.<src>   the transcripts, line i = segment i
    <root>/<src>-<tgt>/data/<split>/txt/<split>.<tgt>   the translations, line i = segment i
    <root>/<src>-<tgt>/data/<split>/wav/<talk>.flac     the YAML says <talk>.wav; the release ships FLAC

Splits: train, valid, test (and iwslt2021). A segment's id is ``<talk>_<index>``, the index counting the talk's
segments by offset (as fairseq's mTEDx loader does), zero-padded to four digits so that ids sort in talk order;
the release's ``speaker_id`` is the talk, and a segment whose ``speaker_id`` is not gets ``<speaker>-`` in front
(Kaldi sorts utterances by speaker too). Segments with an empty transcript or translation are left out (logged).
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
import math
from pathlib import Path
from typing import Any, Sequence

import yaml

from uattr.config import describe_yaml_error
from uattr.corpora.release import (
    RetrievalTask,
    absolute,
    check_data_dir,
    clean_text,
    make_id,
    prepare_pair_splits,
    relevant_by_text,
    require_file,
    write_query2ref,
)
from uattr.data.kaldi import Segment, write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike, iter_lines, read_text

logger = logging.getLogger(__name__)

SPLITS = ("valid", "test")
_YAML_KEYS = ("duration", "offset", "speaker_id", "wav")


def _load_yaml(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The segments of a split's YAML, each with the line it starts on (for messages)."""
    # Every value as a string (talk ids such as "1e10" must not become numbers); the C loader when PyYAML has
    # it, as train YAMLs hold 100k+ items.
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)(read_text(path))
    try:
        node = loader.get_single_node()
        items = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise DataError(describe_yaml_error(path, error)) from None
    finally:
        loader.dispose()
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of segments, got {type(items).__name__}")
    numbered = [(child.start_mark.line + 1, item) for child, item in zip(node.value, items)]
    for line, item in numbered:
        if not isinstance(item, dict) or any(key not in item for key in _YAML_KEYS):
            raise DataError(f"{path}:{line}: a segment must have the keys {', '.join(_YAML_KEYS)}; got {item!r}")
    return numbered


def _span(yaml_path: Path, line: int, item: dict[str, str]) -> tuple[float, float]:
    """A segment's (start, end) in seconds; checked before the offsets order anything."""
    try:
        start, duration = float(item["offset"]), float(item["duration"])
    except (TypeError, ValueError):
        raise DataError(
            f"{yaml_path}:{line}: offset {item['offset']!r} / duration {item['duration']!r} are not numbers"
        ) from None
    if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration <= 0:
        raise DataError(f"{yaml_path}:{line}: offset {start} / duration {duration} invalid")
    return start, start + duration


def _read_lines(path: Path, expected: int, yaml_path: Path) -> list[str]:
    lines = [clean_text(line) for _, line in iter_lines(path)]
    if len(lines) != expected:
        raise DataError(
            f"{path}: {len(lines)} lines, but {yaml_path} lists {expected} segments (line i = segment i)"
        )
    return lines


def _talk_audio(wav_dir: Path, name: str, yaml_path: Path, line: int) -> Path:
    """The talk's audio: the YAML's file name, or the same name with .flac (what the release ships)."""
    for candidate in (wav_dir / name, (wav_dir / name).with_suffix(".flac")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{yaml_path}:{line}: audio {wav_dir / name} (or .flac) not found")


def read_split(root: PathLike, src: str, tgt: str, split: str) -> dict[str, dict[str, Any]]:
    """Segment id → {talk, audio, start, end, speaker, text, translation} of one pair's split.

    A segment whose transcript or translation is empty is left out with a warning naming the line, as Kaldi's
    data preparation drops empty segments (and as Common Voice clips without a transcript are): an empty
    translation would otherwise be a gallery text, relevant to every other empty one.
    """
    data_dir = Path(root) / f"{src}-{tgt}" / "data" / split
    layout = f"<root>/{src}-{tgt}/data/{split}/txt/{split}.{{yaml,{src},{tgt}}} and .../wav/<talk>.flac"
    yaml_path = require_file(data_dir / "txt" / f"{split}.yaml", layout)
    items = _load_yaml(yaml_path)
    spans = [_span(yaml_path, line, item) for line, item in items]
    files = {lang: require_file(data_dir / "txt" / f"{split}.{lang}", layout) for lang in (src, tgt)}
    texts = {lang: _read_lines(path, len(items), yaml_path) for lang, path in files.items()}  # once if tgt == src
    by_talk: dict[str, list[int]] = {}
    for position, (_, item) in enumerate(items):
        by_talk.setdefault(Path(item["wav"]).stem, []).append(position)
    segments: dict[str, dict[str, Any]] = {}
    for talk, positions in sorted(by_talk.items()):
        first_line, first = items[positions[0]]
        audio = absolute(_talk_audio(data_dir / "wav", first["wav"], yaml_path, first_line))
        for index, position in enumerate(sorted(positions, key=lambda p: spans[p][0])):
            empty = [f"{files[lang]}:{position + 1}" for lang, lines in texts.items() if not lines[position]]
            speaker = make_id(str(items[position][1]["speaker_id"]))  # Kaldi ids hold no spaces
            # Kaldi wants utterance ids prefixed by their speaker (so both sort alike); the release's is the talk.
            utt = f"{talk}_{index:04d}" if speaker == talk else f"{speaker}-{talk}_{index:04d}"
            if empty:
                logger.warning("%s: empty text; segment %s left out", ", ".join(empty), utt)
                continue
            segments[utt] = {
                "talk": talk, "audio": audio, "start": spans[position][0], "end": spans[position][1],
                "speaker": speaker, "text": texts[src][position], "translation": texts[tgt][position],
            }
    if not segments:
        raise DataError(f"{yaml_path}: no segment with a transcript and a translation")
    if len(segments) < len(items):
        logger.warning("%s: %d of %d segments left out for an empty transcript or translation", yaml_path,
                       len(items) - len(segments), len(items))
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
