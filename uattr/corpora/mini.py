"""The mini corpus: TTS voices reading the UDHR, as Kaldi data dirs with trials and retrieval sets.

Everything is deterministic given the seed and re-runnable: audio already synthesised is kept, tables are
rewritten atomically. The layout under ``out`` (see egs/mini/uattr1/README.md):

- ``train``, ``dev``, ``test``: data dirs with disjoint voices (``wav.scp``, ``text`` in the spoken language,
  ``text.en``, ``utt2spk``/``spk2utt`` (speaker = voice), ``utt2lang``, ``utt2unit``, ``utt2dur``,
  ``utt2num_samples``); ``dev/trials`` and ``test/trials`` (Kaldi ``enroll test target|nontarget``).
- ``units``: the English text of every unit (ids = unit ids): the speech→text gallery, for the text teacher.
- ``<set>_s2t_{seen,unseen}``: speech→text queries (a subset of ``<set>``) + ``query2ref`` (``utt unit``).
- ``<set>_s2s_gallery``: English utterances of ``<set>`` by voices that speak only English;
  ``<set>_s2s_{seen,unseen}``: the non-English queries + ``query2ref`` (``utt gallery_utt...``).
- ``retrieval_tasks``: one line per retrieval set for the recipe's scoring stage.
- ``wav/<voice>/``: the synthesised audio (cache).

*Seen* units are read by training voices; *unseen* units are held out of training altogether. Evaluation
voices read both, half and half, so each retrieval condition has queries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Iterable, Sequence

import soundfile

from uattr.corpora.trials import balanced_trials, write_trials
from uattr.corpora.tts import (
    SAMPLE_RATE,
    SynthesisJob,
    Voice,
    parse_roster,
    require_distinct_voices,
    synthesize,
    usable_voices,
)
from uattr.corpora.udhr import load_units
from uattr.data.kaldi import write_data_dir
from uattr.errors import ConfigError
from uattr.fileio import atomic_write, write_table

logger = logging.getLogger(__name__)

TRAIN, DEV, TEST = "train", "dev", "test"
EVAL_SETS = (DEV, TEST)
SEEN, UNSEEN = "seen", "unseen"
TEACHER_LANGUAGE = "en"  # text.en is the semantic teacher's input; English galleries hold the references
RETRIEVAL_ATTRIBUTE = "semantic"


@dataclasses.dataclass
class MiniConfig:
    """Options of ``uattr prepare-mini`` (defaults: the full corpus of the mini recipe)."""

    out: Path
    roster: Path
    udhr: Path
    languages: list[str] | None = None  # None: every language of the roster
    engines: list[str] | None = None  # None: every engine
    voices_per_language: int | None = None  # keep the first N voices of each language (roster order)
    min_voices: int = 40
    units_per_voice: int = 12
    eval_units_per_voice: int | None = None  # units each dev/test voice reads (None: units_per_voice)
    max_words: int = 25  # drop units whose English text is longer (keeps utterances short)
    unseen_share: float = 0.2  # share of units held out of training
    eval_voice_share: float = 0.2  # share of each language's voices in dev, and again in test
    num_trials: int | None = None  # target trials per set, and as many nontarget (None: every target pair)
    cross_language_share: float = 0.3
    nj: int = 2
    seed: int = 0
    wav_dir: Path | None = None  # default: <out>/wav


def toy_config(config: MiniConfig) -> MiniConfig:
    """The CI corpus: espeak-ng only, English and French, 4 voices each, short units, 3 units per voice."""
    return dataclasses.replace(
        config, languages=["en", "fr"], engines=["espeak"], voices_per_language=4, min_voices=8,
        units_per_voice=3, eval_units_per_voice=None, max_words=12, num_trials=40,
    )


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording: ``voice`` reading ``unit`` in ``voice.lang``."""

    utt_id: str
    voice: Voice
    unit: str
    text: str
    text_en: str
    wav: Path


@dataclasses.dataclass
class Summary:
    """What was built, for the log and the README."""

    languages: list[str]
    voices: dict[str, int]
    utterances: dict[str, int]
    hours: dict[str, float]
    units: dict[str, int]
    synthesised: int
    synthesis_seconds: float

    def describe(self) -> str:
        sets = ", ".join(
            f"{name} {self.voices[name]} voices/{self.utterances[name]} utts/{self.hours[name]:.2f} h"
            for name in (TRAIN, DEV, TEST)
        )
        return (
            f"{len(self.languages)} languages ({' '.join(self.languages)}), {sum(self.voices.values())} voices; "
            f"{sets}; units: {self.units[SEEN]} seen, {self.units[UNSEEN]} unseen; "
            f"synthesised {self.synthesised} utterances in {self.synthesis_seconds:.0f} s"
        )


def text_languages(config: MiniConfig) -> list[str]:
    """The languages whose sentences decide the units (:func:`uattr.corpora.udhr.align_units`): those asked
    for, whether or not this machine has their voices, so that the units and their seen/unseen draw are the
    same on every machine."""
    return config.languages or list(dict.fromkeys(voice.lang for voice in parse_roster(config.roster)))


def select_voices(config: MiniConfig) -> list[Voice]:
    """The roster's voices for the chosen languages and engines that are installed; too few is an error."""
    voices = parse_roster(config.roster)
    if config.languages:
        voices = [voice for voice in voices if voice.lang in config.languages]
    if config.engines:
        voices = [voice for voice in voices if voice.engine in config.engines]
    voices = usable_voices(voices)
    if config.voices_per_language is not None:
        kept: dict[str, list[str]] = {}
        for voice in voices:
            ids = kept.setdefault(voice.lang, [])
            if voice.voice_id not in ids and len(ids) < config.voices_per_language:
                ids.append(voice.voice_id)
        voices = [voice for voice in voices if voice.voice_id in kept[voice.lang]]
    count = len({voice.voice_id for voice in voices})
    if count < config.min_voices:
        raise ConfigError(
            f"{config.roster}: only {count} usable voice(s), at least {config.min_voices} needed; install the "
            f"engines (tools/install_system.sh, as root) or lower --min-voices"
        )
    return voices


def _eval_voice_count(num_voices: int, share: float) -> int:
    """Voices of one language in dev (and as many in test): at least one, never leaving train empty."""
    if num_voices < 3:
        return 0
    return min(max(1, round(share * num_voices)), (num_voices - 1) // 2)


def split_voices(voices: Sequence[Voice], eval_share: float, seed: int) -> dict[str, str]:
    """voice id → train/dev/test, drawn per language (a voice's first roster language) so each has all three.

    A language with two voices gives one to test and one to train; with one voice, it only trains.
    """
    first_language: dict[str, str] = {}
    for voice in voices:
        first_language.setdefault(voice.voice_id, voice.lang)
    by_lang: dict[str, list[str]] = {}
    for voice_id, lang in first_language.items():
        by_lang.setdefault(lang, []).append(voice_id)
    rng = random.Random(seed)
    split: dict[str, str] = {}
    for lang in sorted(by_lang):
        ids = sorted(by_lang[lang])
        rng.shuffle(ids)
        num_eval = _eval_voice_count(len(ids), eval_share)
        num_test = num_eval or (1 if len(ids) == 2 else 0)
        for index, voice_id in enumerate(ids):
            split[voice_id] = TEST if index < num_test else DEV if index < num_test + num_eval else TRAIN
    return split


def split_units(unit_ids: Sequence[str], unseen_share: float, seed: int) -> tuple[list[str], list[str]]:
    """(seen, unseen) units, the unseen ones drawn at random and never read by a training voice."""
    ids = sorted(unit_ids)
    random.Random(seed).shuffle(ids)
    num_unseen = round(unseen_share * len(ids))
    if unseen_share > 0 and len(ids) > 1:
        num_unseen = min(max(1, num_unseen), len(ids) - 1)
    return sorted(ids[num_unseen:]), sorted(ids[:num_unseen])


def _languages_by_voice(voices: Iterable[Voice]) -> dict[str, set[str]]:
    languages: dict[str, set[str]] = {}
    for voice in voices:
        languages.setdefault(voice.voice_id, set()).add(voice.lang)
    return languages


def _cyclic(order: Sequence[str], index: int, count: int) -> list[str]:
    """The ``index``-th voice's ``count`` units: consecutive runs of ``order``, wrapping around.

    Voices of a language read different texts and together cover the units evenly; the i-th voices of two
    languages read the same units, so non-English queries find English references in their set.
    """
    count = min(count, len(order))
    return [order[(index * count + offset) % len(order)] for offset in range(count)]


def assign_units(
    voices: Sequence[Voice], voice_split: dict[str, str], seen: Sequence[str], unseen: Sequence[str],
    units_per_voice: int, seed: int, eval_units_per_voice: int | None = None,
) -> dict[Voice, list[str]]:
    """The units each roster line reads: training voices only seen units, evaluation voices up to half unseen.

    An evaluation voice reads ``eval_units_per_voice`` units (default ``units_per_voice``): as many unseen ones
    as exist up to half of them, seen ones for the rest, so every query slot is used even when few units are
    held out. More units per evaluation voice mean more retrieval queries from the same voices.
    """
    rng = random.Random(seed)
    orders = {}
    for name in (TRAIN, *EVAL_SETS):
        seen_order, unseen_order = list(seen), list(unseen)
        rng.shuffle(seen_order)
        rng.shuffle(unseen_order)
        orders[name] = (seen_order, unseen_order)
    groups: dict[tuple[str, str], list[Voice]] = {}
    for voice in voices:
        groups.setdefault((voice_split[voice.voice_id], voice.lang), []).append(voice)
    assignment: dict[Voice, list[str]] = {}
    languages_of = _languages_by_voice(voices)
    for (name, _), members in sorted(groups.items()):
        members = sorted(members, key=lambda voice: voice.voice_id)
        rng.shuffle(members)
        # Monolingual voices first: they make the speech→speech galleries, whose i-th voices must match.
        members.sort(key=lambda voice: len(languages_of[voice.voice_id]) > 1)
        seen_order, unseen_order = orders[name]
        count = units_per_voice
        num_unseen = 0
        if name != TRAIN:
            count = eval_units_per_voice or units_per_voice
            num_unseen = min(count // 2, len(unseen_order))
        for index, voice in enumerate(members):
            assignment[voice] = _cyclic(seen_order, index, count - num_unseen) + _cyclic(
                unseen_order, index, num_unseen
            )
    return assignment


def _wav_path(wav_dir: Path, voice: Voice, unit: str, text: str) -> Path:
    """Cache file of one utterance; the name hashes what shaped the audio, so a changed roster line re-synthesises."""
    key = "\t".join([voice.engine, *voice.args, text]).encode()
    return wav_dir / voice.voice_id / f"{voice.lang}-{unit}-{hashlib.sha1(key).hexdigest()[:10]}.wav"


def plan_utterances(
    assignment: dict[Voice, list[str]], units: dict[str, dict[str, str]], wav_dir: Path
) -> list[Utterance]:
    """Every utterance to synthesise, sorted by id (``<voice>-<lang>-<unit>``)."""
    utterances = [
        Utterance(
            f"{voice.voice_id}-{voice.lang}-{unit}", voice, unit, units[unit][voice.lang],
            units[unit][TEACHER_LANGUAGE], _wav_path(wav_dir, voice, unit, units[unit][voice.lang]),
        )
        for voice, unit_ids in assignment.items()
        for unit in unit_ids
    ]
    return sorted(utterances, key=lambda utt: utt.utt_id)


def _write_set(path: Path, utterances: Sequence[Utterance], samples: dict[str, int]) -> None:
    """A Kaldi data dir of ``utterances`` (spk2utt derived from utt2spk)."""
    write_data_dir(
        path,
        wav_scp={u.utt_id: u.wav.resolve() for u in utterances},
        text={u.utt_id: u.text for u in utterances},
        text_en={u.utt_id: u.text_en for u in utterances},
        utt2spk={u.utt_id: u.voice.voice_id for u in utterances},
        utt2lang={u.utt_id: u.voice.lang for u in utterances},
        utt2unit={u.utt_id: u.unit for u in utterances},
        utt2num_samples={u.utt_id: samples[u.utt_id] for u in utterances},
        utt2dur={u.utt_id: round(samples[u.utt_id] / SAMPLE_RATE, 3) for u in utterances},
    )


def _remove_stale_set(path: Path) -> None:
    """A set this run does not write, left by an earlier run with other options: later stages would use it.

    Moved aside first, then deleted: a run killed while deleting leaves no set that has lost some of its files
    (later stages take a dir with ``text`` alone for a text-only set) and no longer looks like one to remove."""
    removing = path.with_name(f".{path.name}.removing")
    if path.is_dir():
        logger.info("%s: removing this set of an earlier run (this corpus has none)", path)
        shutil.rmtree(removing, ignore_errors=True)
        path.rename(removing)
    shutil.rmtree(removing, ignore_errors=True)


def _write_retrieval_set(
    out: Path, name: str, queries: Sequence[Utterance], query2ref: dict[str, list[str]], samples: dict[str, int]
) -> bool:
    """A query data dir with its ``query2ref``; an empty one is skipped with a warning."""
    if not queries:
        logger.warning("retrieval set %s has no queries; not written", name)
        _remove_stale_set(out / name)
        return False
    _write_set(out / name, queries, samples)
    write_table(out / name / "query2ref", query2ref)
    return True


def write_retrieval_sets(
    out: Path, name: str, utterances: Sequence[Utterance], unseen: set[str], samples: dict[str, int]
) -> list[str]:
    """The speech→text and speech→speech sets of evaluation set ``name``; returns their retrieval_tasks lines."""
    tasks = []
    languages_of = _languages_by_voice(utt.voice for utt in utterances)
    gallery = [u for u in utterances if languages_of[u.voice.voice_id] == {TEACHER_LANGUAGE}]
    by_unit: dict[str, list[str]] = {}
    for utt in gallery:
        by_unit.setdefault(utt.unit, []).append(utt.utt_id)
    gallery_name = f"{name}_s2s_gallery"
    if gallery:
        _write_set(out / gallery_name, gallery, samples)
    else:
        _remove_stale_set(out / gallery_name)
    for condition in (SEEN, UNSEEN):
        chosen = [u for u in utterances if (u.unit in unseen) == (condition == UNSEEN)]
        s2t = f"{name}_s2t_{condition}"
        if _write_retrieval_set(out, s2t, chosen, {u.utt_id: u.unit for u in chosen}, samples):
            tasks.append(f"{s2t} {RETRIEVAL_ATTRIBUTE} {s2t} teacher units {out / s2t / 'query2ref'}")
        queries = [u for u in chosen if u.voice.lang != TEACHER_LANGUAGE and u.unit in by_unit]
        dropped = sum(1 for u in chosen if u.voice.lang != TEACHER_LANGUAGE) - len(queries)
        if dropped:
            logger.info("%s_s2s_%s: %d non-English utterance(s) have no English reference; left out", name,
                        condition, dropped)
        s2s = f"{name}_s2s_{condition}"
        if _write_retrieval_set(out, s2s, queries, {u.utt_id: sorted(by_unit[u.unit]) for u in queries}, samples):
            tasks.append(f"{s2s} {RETRIEVAL_ATTRIBUTE} {s2s} speech {gallery_name} {out / s2s / 'query2ref'}")
    return tasks


def prepare_mini(config: MiniConfig) -> Summary:
    """Build the whole corpus under ``config.out`` (see the module docstring for the layout)."""
    out = Path(config.out)
    wav_dir = Path(config.wav_dir) if config.wav_dir else out / "wav"
    for option in ("units_per_voice", "eval_units_per_voice", "num_trials", "voices_per_language"):
        value = getattr(config, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    for option in ("unseen_share", "eval_voice_share", "cross_language_share"):
        value = getattr(config, option)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--{option.replace('_', '-')} must be a share in [0, 1], got {value}")
    voices = select_voices(config)
    languages = list(dict.fromkeys(voice.lang for voice in voices))
    units = {
        unit: {lang: texts[lang] for lang in [TEACHER_LANGUAGE, *languages]}
        for unit, texts in load_units(config.udhr, text_languages(config)).items()
        if len(texts[TEACHER_LANGUAGE].split()) <= config.max_words
    }
    if len(units) < 2:
        raise ConfigError(f"only {len(units)} UDHR unit(s) have at most {config.max_words} words; raise --max-words")
    seen, unseen = split_units(list(units), config.unseen_share, config.seed)
    voice_split = split_voices(voices, config.eval_voice_share, config.seed)
    assignment = assign_units(
        voices, voice_split, seen, unseen, config.units_per_voice, config.seed, config.eval_units_per_voice
    )
    utterances = plan_utterances(assignment, units, wav_dir)

    start = time.monotonic()
    jobs = [SynthesisJob(u.utt_id, u.voice, u.text, u.wav) for u in utterances]
    synthesised = synthesize(jobs, nj=config.nj)
    seconds = time.monotonic() - start
    require_distinct_voices(jobs)
    samples = {u.utt_id: soundfile.info(str(u.wav)).frames for u in utterances}

    by_set = {name: [u for u in utterances if voice_split[u.voice.voice_id] == name] for name in (TRAIN, *EVAL_SETS)}
    for name, members in by_set.items():
        if not members:
            raise ConfigError(f"no voices left for the {name} set; add voices to {config.roster}")
        _write_set(out / name, members, samples)

    write_data_dir(
        out / "units",
        text={unit: texts[TEACHER_LANGUAGE] for unit, texts in units.items()},
        text_en={unit: texts[TEACHER_LANGUAGE] for unit, texts in units.items()},
        utt2lang={unit: TEACHER_LANGUAGE for unit in units},
        utt2unitset={unit: UNSEEN if unit in unseen else SEEN for unit in units},
    )
    tasks = []
    for name in EVAL_SETS:
        members = by_set[name]
        utt2spk = {u.utt_id: u.voice.voice_id for u in members}
        utt2lang = {u.utt_id: u.voice.lang for u in members}
        # Every target pair by default: with ~17 voices per set, a sample of 1000 target trials moved an EER by
        # up to 3.5 points against the full list (egs/mini/uattr1/TUNING.md: trials). No pair of two readings of
        # one unit: every voice reads a unit once, so such pairs were 6 % of the nontargets and 0.6 % of the targets.
        trials = balanced_trials(utt2spk, utt2lang, limit=config.num_trials, seed=config.seed,
                                 cross_language_share=config.cross_language_share,
                                 utt2text={u.utt_id: u.unit for u in members})
        write_trials(out / name / "trials", trials)
        tasks += write_retrieval_sets(out, name, members, set(unseen), samples)
    with atomic_write(out / "retrieval_tasks") as handle:
        handle.write("# <name> <attr> <query_set> <gallery_kind: teacher|speech> <gallery_set> <query2ref>\n")
        handle.writelines(f"{line}\n" for line in tasks)

    summary = Summary(
        languages=languages,
        voices={name: len({u.voice.voice_id for u in members}) for name, members in by_set.items()},
        utterances={name: len(members) for name, members in by_set.items()},
        hours={name: sum(samples[u.utt_id] for u in members) / SAMPLE_RATE / 3600 for name, members in by_set.items()},
        units={SEEN: len(seen), UNSEEN: len(unseen)},
        synthesised=synthesised,
        synthesis_seconds=seconds,
    )
    logger.info("mini corpus in %s: %s", out, summary.describe())
    return summary
