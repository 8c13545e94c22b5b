"""FLEURS for retrieval: speech in each language against English text and English speech, many-to-one.

Public layout (google/fleurs, with each ``audio/<split>.tar.gz`` unpacked in place)::

    <root>/<lang>/<split>.tsv            no header; tab-separated: id, file name, raw transcription,
                                         transcription, tokens, num samples, gender
    <root>/<lang>/audio/<split>/<file>   16 kHz wav

``id`` is the sentence id, shared by the n-way parallel sentences of every language; a sentence has several
recordings (speakers are not released, so each recording is its own speaker). Per split (dev, test), written
under ``out``:

- ``<split>_<lang>``: one data dir per language (utterance ``<lang>-<sentence>-<file stem>``; ``text`` = the raw
  transcription, ``utt2lang``);
- ``<split>_<pivot>_text``: the gallery of English sentences, one entry per sentence id (``<pivot>-<sentence>``,
  ``text`` = its raw transcription; its wav.scp names one English recording so the dir stays a valid data dir);
- ``<split>_<lang>/query2ref_text``: utterance → the English sentence (speech→text);
- ``<split>_<lang>/query2ref_speech``: utterance → every English recording of the sentence (speech→speech);
- ``retrieval_tasks``: per language and split, ``fleurs_<split>_<lang>_s2t`` (gallery: the teacher's embeddings of
  the English sentences) and ``fleurs_<split>_<lang>_s2s`` (gallery: the system's embeddings of English speech).

Queries whose sentence has no English recording in the split cannot be scored and are left out (logged).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from uattr.corpora.release import (
    RetrievalTask,
    Row,
    absolute,
    check_data_dir,
    clean_text,
    make_id,
    read_tsv,
    require_file,
    write_query2ref,
    write_retrieval_tasks,
)
from uattr.data.kaldi import write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)

COLUMNS = ("id", "file", "raw_transcription", "transcription", "tokens", "num_samples", "gender")
SPLITS = ("dev", "test")


def read_split(root: PathLike, lang: str, split: str) -> dict[str, tuple[str, str, str]]:
    """Utterance id → (sentence id, wav path, raw transcription) of one language's split."""
    lang_dir = Path(root) / lang
    tsv = require_file(lang_dir / f"{split}.tsv", f"<root>/<lang>/{split}.tsv and <root>/<lang>/audio/{split}/*.wav")
    utterances: dict[str, tuple[str, str, str]] = {}
    for row in read_tsv(tsv, columns=COLUMNS):
        sentence = _sentence_id(row, tsv)
        wav = lang_dir / "audio" / split / row["file"]
        if not wav.is_file():
            raise DataError(f"{tsv}:{row.line}: audio file {wav} not found")
        utt = make_id(lang, sentence, Path(row["file"]).stem)
        if utt in utterances:
            raise DataError(f"{tsv}:{row.line}: recording '{row['file']}' of sentence {sentence} is listed twice")
        utterances[utt] = (sentence, absolute(wav), clean_text(row["raw_transcription"]))
    if not utterances:
        raise DataError(f"{tsv}: no recordings listed")
    return utterances


def _sentence_id(row: Row, tsv: Path) -> str:
    if not row["id"].strip().isdigit():
        raise DataError(f"{tsv}:{row.line}: sentence id {row['id']!r} is not a number")
    return row["id"].strip()


def find_languages(root: PathLike, splits: Sequence[str]) -> list[str]:
    """Every ``<root>/<lang>`` folder holding the lists of all ``splits``."""
    return sorted(p.name for p in Path(root).iterdir() if all((p / f"{split}.tsv").is_file() for split in splits))


def _write_speech_set(path: Path, lang: str, utterances: dict[str, tuple[str, str, str]]) -> None:
    write_data_dir(
        path,
        wav_scp={utt: wav for utt, (_, wav, _) in utterances.items()},
        text={utt: text for utt, (_, _, text) in utterances.items()},
        utt2spk={utt: utt for utt in utterances},
        utt2lang={utt: lang for utt in utterances},
    )
    check_data_dir(path)


def prepare_fleurs(
    root: PathLike,
    out: PathLike,
    *,
    languages: Sequence[str] | None = None,
    pivot: str = "en_us",
    splits: Sequence[str] = SPLITS,
) -> list[RetrievalTask]:
    """Write the data dirs, maps and task list of the module docstring; returns the retrieval tasks."""
    out = Path(out)
    languages = list(languages) if languages else find_languages(root, splits)
    if pivot not in languages:
        languages.append(pivot)
    tasks: list[RetrievalTask] = []
    for split in splits:
        english = read_split(root, pivot, split)
        recordings_of: dict[str, list[str]] = {}
        for utt, (sentence, _, _) in sorted(english.items()):
            recordings_of.setdefault(sentence, []).append(utt)
        gallery_set = f"{split}_{pivot}_text"
        write_data_dir(
            out / gallery_set,
            wav_scp={make_id(pivot, s): english[utts[0]][1] for s, utts in recordings_of.items()},
            text={make_id(pivot, s): english[utts[0]][2] for s, utts in recordings_of.items()},
            utt2spk={make_id(pivot, s): make_id(pivot, s) for s in recordings_of},
            utt2lang={make_id(pivot, s): pivot for s in recordings_of},
        )
        check_data_dir(out / gallery_set)
        for lang in sorted(set(languages)):
            utterances = english if lang == pivot else read_split(root, lang, split)
            scorable = {utt: item for utt, item in utterances.items() if item[0] in recordings_of}
            if len(scorable) < len(utterances):
                logger.info(
                    "%s %s: %d of %d recordings have no English counterpart in %s; left out",
                    lang, split, len(utterances) - len(scorable), len(utterances), split,
                )
            if not scorable:
                raise DataError(f"{Path(root) / lang / split}.tsv: no sentence in common with {pivot} {split}")
            query_set = f"{split}_{lang}"
            _write_speech_set(out / query_set, lang, scorable)
            sentence_of = {utt: sentence for utt, (sentence, _, _) in scorable.items()}
            to_text = out / query_set / "query2ref_text"
            write_query2ref(to_text, {utt: [make_id(pivot, sentence)] for utt, sentence in sentence_of.items()})
            tasks.append(RetrievalTask(f"fleurs_{split}_{lang}_s2t", "semantic", query_set, "teacher", gallery_set,
                                       str(to_text)))
            if lang != pivot:
                to_speech = out / query_set / "query2ref_speech"
                write_query2ref(to_speech, {utt: recordings_of[sentence] for utt, sentence in sentence_of.items()})
                tasks.append(RetrievalTask(f"fleurs_{split}_{lang}_s2s", "semantic", query_set, "speech",
                                           f"{split}_{pivot}", str(to_speech)))
            logger.info("%s/%s: %d recordings", out, query_set, len(scorable))
    write_retrieval_tasks(out / "retrieval_tasks", tasks)
    return tasks
