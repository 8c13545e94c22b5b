"""Common Voice, the paper's training corpus: train/dev/test data dirs over any list of languages.

Public layout (one folder per language of a release, e.g. ``cv-corpus-19.0-2024-09-13/<lang>``)::

    <root>/<lang>/validated.tsv        client_id, path, [sentence_id,] sentence, up_votes, down_votes, age,
    <root>/<lang>/dev.tsv              gender, accents, variant, locale, segment (one row per clip)
    <root>/<lang>/test.tsv
    <root>/<lang>/clip_durations.tsv   clip, duration[ms] (recent releases; else the mp3 headers are read)
    <root>/<lang>/clips/<path>         mp3 (48 or 32 kHz; resampled to 16 kHz when loaded)

Splits (the paper trains on "v19 validated"; the dev set must not overlap it, so model selection is honest):

- ``train``: every validated clip, minus clips whose speaker (``client_id``, in any language) or sentence
  (``sentence_id``, else the text, per language) appears in dev.tsv or test.tsv, minus clips of
  ``max_seconds`` or more (the paper drops utterances of 10 s and more) and clips without a transcript;
  every split leaves out empty clips (0 ms in clip_durations.tsv, or a 0-byte mp3: releases list a few hundred),
  with a warning;
- ``dev``: up to ``dev_per_language`` clips of dev.tsv per language (Common Voice's dev speakers and sentences
  are disjoint from its train), for the validation loss and a speech→text retrieval check;
- ``test``: up to ``test_per_language`` clips of test.tsv per language.

Speaker = the first 16 hex digits of ``client_id`` (longer if two speakers would share them); utterance id =
``<speaker>-<clip stem>``, e.g. ``4f1a0c9b2e7d8a61-common_voice_fr_17299384``. Each dir has wav.scp (the mp3
paths), text, utt2spk, spk2utt, utt2lang (the release's folder name) and utt2dur. ``dev/query2ref`` and
``test/query2ref`` map each clip to the clips with the same sentence, in any language (normally itself):
with the teacher's embeddings of the transcripts as the gallery, speech→text R@1 on dev is a model-selection
metric. ``dev/trials`` and ``test/trials`` hold every pair of clips of one speaker (at most ``trials_per_kind``)
and as many pairs of two speakers, none of two readings of one sentence: dev EER is the speaker branch's
model-selection metric (a subsample rarely has no speaker with two clips; then there is no list, with a warning).
Language-balanced sampling (α = 0.05) is the trainer's job (``data.sampling: language``).
"""

from __future__ import annotations

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from tqdm import tqdm

from uattr.corpora.release import (
    RetrievalTask,
    absolute,
    check_data_dir,
    clean_text,
    iter_tsv,
    relevant_by_text,
    require_file,
    write_query2ref,
    write_retrieval_tasks,
)
from uattr.corpora.trials import balanced_trials, write_trials
from uattr.data.audio import audio_info
from uattr.data.kaldi import format_number, write_data_dir
from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("client_id", "path", "sentence")
HELD_OUT = ("dev", "test")
SPEAKER_DIGITS = 16


class Clip(NamedTuple):
    """What a clip's row says, kept small: Common Voice lists millions of clips."""

    lang: str
    client: str
    audio: str
    sentence: str
    sentence_key: str  # sentence_id when the release has it, else the text
    where: str  # "file:line" for messages


def read_clips(root: PathLike, lang: str, split: str) -> list[Clip]:
    """The clips of ``<root>/<lang>/<split>.tsv`` (split: validated, dev or test); a missing mp3 is an error."""
    lang_dir = Path(root) / lang
    tsv = require_file(lang_dir / f"{split}.tsv", "<root>/<lang>/{validated,dev,test}.tsv and <root>/<lang>/clips/")
    clips = []
    for row in iter_tsv(tsv, required=REQUIRED_COLUMNS):
        where = f"{tsv}:{row.line}"
        audio = lang_dir / "clips" / row["path"]
        if not audio.is_file():
            raise DataError(f"{where}: clip {audio} not found")
        client = row["client_id"].strip()
        if not client or any(c.isspace() for c in client):
            raise DataError(f"{where}: client_id {row['client_id']!r} is empty or contains whitespace")
        sentence = clean_text(row["sentence"])
        key = row.fields.get("sentence_id", "").strip() or sentence
        clips.append(Clip(lang, client, absolute(audio), sentence, key, where))
    return clips


def speaker_ids(clients: set[str], digits: int = SPEAKER_DIGITS) -> dict[str, str]:
    """client_id → its shortest prefix of at least ``digits`` characters that no other client_id shares (the ids
    are non-empty and without whitespace: :func:`read_clips` checks them where it can name the line)."""
    ordered = sorted(clients)
    shortened = {}
    for position, client in enumerate(ordered):
        length = digits
        for neighbour in ordered[max(position - 1, 0) : position + 2]:  # sorted order: the closest prefixes
            if neighbour != client:
                common = next((i for i, (a, b) in enumerate(zip(client, neighbour)) if a != b), len(client))
                length = max(length, common + 1)
        shortened[client] = client[:length]
    return shortened


def read_clip_durations(lang_dir: Path) -> dict[str, float]:
    """clip name → seconds from ``clip_durations.tsv`` (``clip``, ``duration[ms]``), or {} without the file."""
    path = lang_dir / "clip_durations.tsv"
    if not path.is_file():
        return {}
    durations = {}
    for row in iter_tsv(path, required=("clip", "duration[ms]")):
        try:
            durations[row["clip"]] = float(row["duration[ms]"]) / 1000
        except ValueError:
            raise DataError(f"{path}:{row.line}: duration {row['duration[ms]']!r} is not a number") from None
    return durations


def measure_durations(audio: Mapping[str, str], nj: int) -> dict[str, float]:
    """utt → seconds from the audio headers, ``nj`` files at a time (threads: the work is I/O and libsndfile)."""

    def measure(utt: str) -> float:
        if os.path.getsize(audio[utt]) == 0:  # an empty clip (a few in every release): no header to read
            return 0.0
        return audio_info(audio[utt], utt_id=utt).duration

    utts = sorted(audio)
    with ThreadPoolExecutor(max(nj, 1)) as pool:
        progress = tqdm(pool.map(measure, utts), total=len(utts), desc="clip durations", unit="clip", disable=None)
        seconds = list(progress)
    return dict(zip(utts, seconds))


def _subsample(clips: list[Clip], limit: int, seed: int, name: str) -> list[Clip]:
    if limit <= 0 or len(clips) <= limit:
        return clips
    return random.Random(f"{seed}-{name}").sample(clips, limit)


def _durations(root: Path, clips: Mapping[str, Clip], nj: int) -> dict[str, float]:
    """Seconds per utterance: clip_durations.tsv where it lists the clip, the mp3 header otherwise."""
    known: dict[str, float] = {}
    tables = {lang: read_clip_durations(root / lang) for lang in sorted({clip.lang for clip in clips.values()})}
    for utt, clip in clips.items():
        seconds = tables[clip.lang].get(Path(clip.audio).name)
        if seconds is not None:
            known[utt] = seconds
    unknown = {utt: clips[utt].audio for utt in clips if utt not in known}
    if unknown:
        logger.info("reading the headers of %d clips not in clip_durations.tsv", len(unknown))
        known.update(measure_durations(unknown, nj))
    return known


def _drop_empty(clips: Mapping[str, Clip], seconds: Mapping[str, float], name: str) -> dict[str, Clip]:
    """``clips`` without the empty ones (no audio to learn or score), which a warning names."""
    empty = [utt for utt in clips if seconds[utt] <= 0]
    if empty:
        logger.warning("%s: left out %d empty clip(s) (0 s of audio), e.g. %s", name, len(empty), clips[empty[0]].where)
    return {utt: clip for utt, clip in clips.items() if seconds[utt] > 0}


def _write_split(
    out: Path, name: str, clips: Mapping[str, Clip], speakers: Mapping[str, str], seconds: Mapping[str, float]
) -> Path:
    path = write_data_dir(
        out / name,
        wav_scp={utt: clip.audio for utt, clip in clips.items()},
        text={utt: clip.sentence for utt, clip in clips.items()},
        utt2spk={utt: speakers[clip.client] for utt, clip in clips.items()},
        utt2lang={utt: clip.lang for utt, clip in clips.items()},
        utt2dur={utt: format_number(seconds[utt]) for utt in clips},
    )
    check_data_dir(path)
    hours = sum(seconds[utt] for utt in clips) / 3600
    num_speakers = len({clip.client for clip in clips.values()})
    logger.info("%s: %d utterances, %d speakers, %.1f h", path, len(clips), num_speakers, hours)
    return path


def _write_trials(path: Path, clips: Mapping[str, Clip], speakers: Mapping[str, str], per_kind: int, seed: int) -> None:
    """``path/trials``: every same-speaker pair of ``clips`` (at most ``per_kind``) and as many other pairs."""
    utt2spk = {utt: speakers[clip.client] for utt, clip in clips.items()}
    utt2lang = {utt: clip.lang for utt, clip in clips.items()}
    utt2text = {utt: clip.sentence for utt, clip in clips.items()}  # many speakers read one sentence
    trials = balanced_trials(utt2spk, utt2lang, limit=per_kind, seed=seed, utt2text=utt2text)
    targets = sum(label == "target" for _, _, label in trials)
    if not targets:
        (path / "trials").unlink(missing_ok=True)  # an earlier run's list would be of other clips
        logger.warning("%s: no speaker has two clips, so no trials (more clips per language may give some)", path)
        return
    write_trials(path / "trials", trials)
    logger.info("%s/trials: %d target and %d nontarget trials", path, targets, len(trials) - targets)


def find_languages(root: PathLike) -> list[str]:
    """Every ``<root>/<lang>`` folder with a validated.tsv."""
    return sorted(path.parent.name for path in Path(root).glob("*/validated.tsv"))


def prepare_commonvoice(
    root: PathLike,
    out: PathLike,
    *,
    languages: Sequence[str] | None = None,
    max_seconds: float | None = 10.0,
    dev_per_language: int = 100,
    test_per_language: int = 100,
    exclude_held_out: bool = True,
    trials_per_kind: int = 10_000,
    nj: int = 4,
    seed: int = 0,
) -> dict[str, int]:
    """Write train, dev and test as the module docstring says; returns utterances per split."""
    if trials_per_kind < 1:
        raise ConfigError(f"trials per kind must be at least 1, got {trials_per_kind}")
    root, out = Path(root), Path(out)
    languages = list(languages) if languages else find_languages(root)
    if not languages:
        raise DataError(f"{root}: no <lang>/validated.tsv (expected a Common Voice release folder)")
    held_out = {(lang, split): read_clips(root, lang, split) for lang in languages for split in HELD_OUT}
    validated = {lang: read_clips(root, lang, "validated") for lang in languages}
    clients = {clip.client for clips in [*held_out.values(), *validated.values()] for clip in clips}
    speakers = speaker_ids(clients)

    def by_utt(clips: Sequence[Clip]) -> dict[str, Clip]:
        """Utterance id → clip; a clip listed twice is an error, under any client_id (one recording, one utt)."""
        first: dict[str, Clip] = {}
        for clip in clips:
            seen = first.setdefault(clip.audio, clip)
            if seen is not clip:
                raise DataError(f"{clip.where}: clip {Path(clip.audio).name} listed twice (first: {seen.where})")
        return {f"{speakers[clip.client]}-{Path(clip.audio).stem}": clip for clip in clips}

    held_clips = {clip.audio for clips in held_out.values() for clip in clips}
    held_speakers = {clip.client for clips in held_out.values() for clip in clips}
    held_sentences = {(clip.lang, clip.sentence_key) for clips in held_out.values() for clip in clips}

    def trainable(clip: Clip) -> bool:
        if not clip.sentence or clip.audio in held_clips:
            return False
        return not exclude_held_out or (
            clip.client not in held_speakers and (clip.lang, clip.sentence_key) not in held_sentences
        )

    train = by_utt([clip for lang in languages for clip in validated[lang] if trainable(clip)])
    logger.info("train: %d of %d validated clips are not held out and have a transcript",
                len(train), sum(map(len, validated.values())))
    limits = {"dev": dev_per_language, "test": test_per_language}
    sets = {
        split: by_utt([
            clip for lang in languages
            for clip in _subsample(
                [c for c in held_out[lang, split] if c.sentence], limits[split], seed, lang + split
            )
        ])
        for split in HELD_OUT
    }
    seconds = _durations(root, {**train, **sets["dev"], **sets["test"]}, nj)
    train, sets["dev"], sets["test"] = (_drop_empty(clips, seconds, name) for clips, name in (
        (train, "train"), (sets["dev"], "dev"), (sets["test"], "test")
    ))
    # The bound of uattr.data.dataset.filter_by_duration (which the trainer applies too), without importing torch
    # into a preparation step.
    long = {utt for utt in train if max_seconds is not None and seconds[utt] >= max_seconds}
    logger.info("train: dropped %d clips of %s s or more (%.1f h)", len(long), max_seconds,
                sum(seconds[utt] for utt in long) / 3600)
    train = {utt: clip for utt, clip in train.items() if utt not in long}
    if not train:
        raise DataError(f"{root}: no training clip left after the held-out and duration filters")
    _write_split(out, "train", train, speakers, seconds)
    counts = {"train": len(train)}
    tasks = []
    for split, clips in sets.items():
        if not clips:
            raise DataError(f"{root}: {split}.tsv lists no clip with a transcript in {', '.join(languages)}")
        path = _write_split(out, split, clips, speakers, seconds)
        _write_trials(path, clips, speakers, trials_per_kind, seed)
        # The gallery is the teacher's embedding of each sentence, whatever its language: one string gives one
        # vector, so every clip of that string is an equally right answer.
        texts = {utt: clip.sentence for utt, clip in clips.items()}
        write_query2ref(path / "query2ref", relevant_by_text(texts))
        tasks.append(RetrievalTask(f"commonvoice_{split}_s2t", "semantic", split, "teacher", split,
                                   str(path / "query2ref")))
        counts[split] = len(clips)
    write_retrieval_tasks(out / "retrieval_tasks", tasks)
    return counts
