"""VoxPopuli speech-to-speech interpretation pairs for speech→speech retrieval (e.g. French speech → English).

Public layout: what the release's own scripts write (github.com/facebookresearch/voxpopuli, README "Transcribed
(ASR) Data" then "Speech-to-Speech Interpretation Data": ``voxpopuli.get_asr_data --lang <src>``, then
``voxpopuli.get_s2s_data --source-lang <src> --target-lang <tgt>``)::

    <root>/transcribed_data/<src>/asr_<split>.tsv        id, raw_text, normalized_text, speaker_id, split, ...
    <root>/transcribed_data/<src>/<year>/<id>.ogg        source speech segments (16 kHz Ogg Vorbis)
    <root>/transcribed_data/<src>/<tgt>/s2s.tsv          src_id, src_text, src_speaker_id, tgt_id, tgt_text
    <root>/transcribed_data/<src>/<tgt>/s2s_ref.tsv      the same, with tgt_text (get_s2s_data --use-annotated-target)
    <root>/transcribed_data/<src>/<tgt>/<year>/<tgt_id>.ogg   the simultaneous interpretation of each segment

``<year>`` is the first four characters of the id (the session date). The interpretation pairs carry no split of
their own: a pair belongs to the split (dev, test) of its source segment in ``asr_<split>.tsv``. Per pair and
split, written under ``out``:

- ``<split>_<src>_<tgt>_source``: the queries (source speech; ids ``<speaker>-<id>``, as Kaldi wants utterances
  prefixed by their speaker, ``utt2spk`` = the ASR speaker id, ``text``, ``utt2lang``);
- ``<split>_<src>_<tgt>_target``: the gallery (interpreted speech; ids = ``tgt_id``; interpreters are not
  identified, so each utterance is its own speaker; ``text`` only when every target has a transcript: with
  ``annotated_target``, which reads the ``s2s_ref.tsv`` that ``--use-annotated-target`` writes, for the target
  languages with human transcripts (en, fr, es));
- ``<split>_<src>_<tgt>_source/query2ref``: source utterance → its interpretation (one-to-one);
- ``retrieval_tasks``: ``voxpopuli_<split>_<src>_<tgt>_s2s`` (gallery kind "speech").
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Sequence

from uattr.corpora.release import (
    RetrievalTask,
    absolute,
    check_data_dir,
    clean_text,
    make_id,
    prepare_pair_splits,
    read_tsv,
    require_file,
    write_query2ref,
)
from uattr.data.kaldi import write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)

SPLITS = ("dev", "test")
ASR_COLUMNS = ("id", "raw_text", "speaker_id")
S2S_COLUMNS = ("src_id", "src_text", "src_speaker_id", "tgt_id", "tgt_text")


def _segment_audio(folder: Path, segment_id: str, listed_in: Path, line: int) -> str:
    path = folder / segment_id[:4] / f"{segment_id}.ogg"
    if not path.is_file():
        raise DataError(f"{listed_in}:{line}: audio of '{segment_id}' not found at {path}")
    return absolute(path)


def read_pairs(
    root: PathLike, src: str, tgt: str, split: str, annotated_target: bool = False
) -> tuple[dict[str, dict[str, str]], dict[str, dict]]:
    """The split's source segments and their interpretations: ``(sources, targets)``.

    ``sources["<speaker>-<src_id>"]`` = {audio, text, speaker, target} (``src_id`` alone, and its own speaker,
    when asr_<split>.tsv names no speaker); ``targets[tgt_id]`` = {audio, text}. With ``annotated_target`` the
    pairs come from ``s2s_ref.tsv``, whose targets are transcribed.
    """
    src_dir = Path(root) / "transcribed_data" / src
    listing, other = ("s2s_ref.tsv", "s2s.tsv") if annotated_target else ("s2s.tsv", "s2s_ref.tsv")
    layout = (f"<root>/transcribed_data/{src}/asr_{split}.tsv, .../{src}/<year>/<id>.ogg, "
              f".../{src}/{tgt}/{listing} and .../{src}/{tgt}/<year>/<tgt_id>.ogg (voxpopuli.get_s2s_data)")
    if (src_dir / tgt / other).is_file() and not (src_dir / tgt / listing).is_file():
        layout += f"; {other} is there: prepare {'without' if annotated_target else 'with'} --annotated-target"
    asr_tsv = require_file(src_dir / f"asr_{split}.tsv", layout)
    s2s_tsv = require_file(src_dir / tgt / listing, layout)
    in_split = {row["id"]: row for row in read_tsv(asr_tsv, required=ASR_COLUMNS)}
    sources: dict[str, dict[str, str]] = {}
    targets: dict[str, dict] = {}
    paired: set[str] = set()
    for row in read_tsv(s2s_tsv, required=S2S_COLUMNS):
        src_id, tgt_id = row["src_id"], row["tgt_id"]
        if src_id not in in_split:
            continue
        if src_id in paired or tgt_id in targets:
            raise DataError(f"{s2s_tsv}:{row.line}: segment '{src_id}' or '{tgt_id}' is listed twice")
        paired.add(src_id)
        asr = in_split[src_id]
        speaker = make_id(asr["speaker_id"]) if asr["speaker_id"].strip() else src_id  # Kaldi ids hold no spaces
        sources[src_id if speaker == src_id else f"{speaker}-{src_id}"] = {
            "audio": _segment_audio(src_dir, src_id, asr_tsv, asr.line),
            "text": clean_text(asr["raw_text"]),
            "speaker": speaker,
            "target": tgt_id,
        }
        targets[tgt_id] = {"audio": _segment_audio(src_dir / tgt, tgt_id, s2s_tsv, row.line),
                           "text": clean_text(row["tgt_text"])}
    if not sources:
        raise DataError(f"{s2s_tsv}: no interpretation pair has its source in {asr_tsv}")
    return sources, targets


def prepare_voxpopuli(
    root: PathLike,
    out: PathLike,
    *,
    pairs: Sequence[str] = ("fr-en",),
    splits: Sequence[str] = SPLITS,
    annotated_target: bool = False,
) -> list[RetrievalTask]:
    """Write the data dirs, maps and task list of the module docstring; returns the retrieval tasks."""
    prepare = functools.partial(_prepare_split, root, annotated_target=annotated_target)
    return prepare_pair_splits(out, pairs, splits, prepare)


def _prepare_split(
    root: PathLike, out: Path, src: str, tgt: str, split: str, *, annotated_target: bool
) -> RetrievalTask:
    """The source and target dirs and the map of one pair and split; its speech→speech retrieval task."""
    sources, targets = read_pairs(root, src, tgt, split, annotated_target)
    query_set, gallery_set = f"{split}_{src}_{tgt}_source", f"{split}_{src}_{tgt}_target"
    write_data_dir(
        out / query_set,
        wav_scp={utt: item["audio"] for utt, item in sources.items()},
        text={utt: item["text"] for utt, item in sources.items()},
        utt2spk={utt: item["speaker"] for utt, item in sources.items()},
        utt2lang={utt: src for utt in sources},
    )
    transcribed = all(item["text"] for item in targets.values())
    if not transcribed:  # a text file left by an earlier, transcribed preparation would be stale
        (out / gallery_set / "text").unlink(missing_ok=True)
    write_data_dir(
        out / gallery_set,
        wav_scp={utt: item["audio"] for utt, item in targets.items()},
        text={utt: item["text"] for utt, item in targets.items()} if transcribed else None,
        utt2spk={utt: utt for utt in targets},
        utt2lang={utt: tgt for utt in targets},
    )
    for name in (query_set, gallery_set):
        check_data_dir(out / name)
    write_query2ref(out / query_set / "query2ref", {utt: [item["target"]] for utt, item in sources.items()})
    logger.info("%s/%s: %d interpretation pairs", out, query_set, len(sources))
    return RetrievalTask(
        f"voxpopuli_{split}_{src}_{tgt}_s2s", "semantic", query_set, "speech", gallery_set,
        str(out / query_set / "query2ref"),
    )
