"""Balanced speaker-verification trial lists from ``utt2spk`` and ``utt2lang``, for any corpus.

A trial pairs two different utterances: *target* when one speaker said both, *nontarget* otherwise; it is
*cross-language* when the two are in different languages. ``make_trials`` draws the requested number of each
kind, a ``cross_language_share`` of them cross-language (of the nontargets the share the targets reached),
uniformly among all such pairs and without repeats. Given the utterances' texts, it pairs no two
readings of one text (text-independent trials).
Small categories are enumerated; large ones (VoxCeleb-size lists) are sampled by rejection, so no list of all
pairs is ever built. Kaldi's format is ``enroll test target|nontarget``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import random
from typing import Callable, Mapping, Sequence

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, atomic_write

logger = logging.getLogger(__name__)

Trial = tuple[str, str, str]
# Enumerate a category when it has at most this many pairs (or few more than requested); sample otherwise.
_ENUMERATE_LIMIT = 200_000
# How far (as a share of the trials) the nontargets' cross-language share may miss the targets' before a warning:
# rounding to whole trials alone moves it by 1/N.
_SHARE_TOLERANCE = 0.05


# A block of candidate pairs: all pairs within ``a`` (``b`` None) or all pairs across ``a`` and ``b``.
_Block = tuple[list[int], list[int] | None]


def _block_size(block: _Block) -> int:
    a, b = block
    return _pairs(len(a)) if b is None else len(a) * len(b)


@dataclasses.dataclass(frozen=True)
class _Category:
    """The pairs of ``blocks`` that pass ``accept``; ``available`` is their number, counted without listing them."""

    blocks: list[_Block]
    accept: Callable[[int, int], bool]
    available: int

    def enumerate(self) -> list[tuple[int, int]]:
        pairs = (itertools.combinations(a, 2) if b is None else itertools.product(a, b) for a, b in self.blocks)
        return [(min(i, j), max(i, j)) for i, j in itertools.chain.from_iterable(pairs) if self.accept(i, j)]

    def sample(self, number: int, rng: random.Random) -> set[tuple[int, int]]:
        """``number`` distinct pairs, uniform: a block drawn by its size, a pair in it, kept if accepted."""
        # Cumulative once: rng.choices would sum the weights of every block (speaker) again at each draw.
        cumulative = list(itertools.accumulate(_block_size(block) for block in self.blocks))
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < number:
            a, b = rng.choices(self.blocks, cum_weights=cumulative)[0]
            i, j = rng.sample(a, 2) if b is None else (rng.choice(a), rng.choice(b))
            if self.accept(i, j):
                chosen.add((min(i, j), max(i, j)))
        return chosen


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def _same_pairs(*keys: Sequence[str]) -> int:
    """How many pairs of utterances agree on every one of ``keys`` (each a value per utterance)."""
    return sum(_pairs(count) for count in collections.Counter(zip(*keys)).values())


def _categories(
    speakers: list[str], languages: list[str], texts: list[str] | None = None
) -> dict[tuple[bool, bool], _Category]:
    """The four (target, cross-language) categories over utterances 0..n-1, with their exact sizes; with
    ``texts``, without the pairs of two readings of one text."""
    by_lang: dict[str, list[int]] = {}
    by_spk_lang: dict[tuple[str, str], list[int]] = {}
    for index, (speaker, language) in enumerate(zip(speakers, languages)):
        by_lang.setdefault(language, []).append(index)
        by_spk_lang.setdefault((speaker, language), []).append(index)

    def agreeing(*keys: Sequence[str]) -> int:
        """Pairs that agree on ``keys``, less those that also share a text."""
        return _same_pairs(*keys) - (_same_pairs(*keys, texts) if texts is not None else 0)

    same_target = agreeing(speakers, languages)
    cross_target = agreeing(speakers) - same_target
    same_language = agreeing(languages)
    every_pair = _pairs(len(speakers)) - (_same_pairs(texts) if texts is not None else 0)
    langs_of: dict[str, list[str]] = {}
    for speaker, language in by_spk_lang:
        langs_of.setdefault(speaker, []).append(language)
    lang_pairs = list(itertools.combinations(sorted(by_lang), 2))

    def other_text(i: int, j: int) -> bool:
        return texts is None or texts[i] != texts[j]

    def other_speaker(i: int, j: int) -> bool:
        return speakers[i] != speakers[j] and other_text(i, j)

    return {
        (True, False): _Category([(m, None) for m in by_spk_lang.values()], other_text, same_target),
        (True, True): _Category(
            [(by_spk_lang[s, la], by_spk_lang[s, lb]) for s, langs in langs_of.items()
             for la, lb in itertools.combinations(langs, 2)],
            other_text,
            cross_target,
        ),
        (False, False): _Category([(m, None) for m in by_lang.values()], other_speaker, same_language - same_target),
        (False, True): _Category(
            [(by_lang[la], by_lang[lb]) for la, lb in lang_pairs],
            other_speaker,
            every_pair - same_language - cross_target,
        ),
    }


def _draw(category: _Category, number: int, rng: random.Random) -> list[tuple[int, int]]:
    if number <= 0:
        return []
    if category.available <= max(_ENUMERATE_LIMIT, 4 * number):
        return rng.sample(category.enumerate(), number)
    return sorted(category.sample(number, rng))


def pair_counts(
    utt2spk: Mapping[str, str], utt2lang: Mapping[str, str], utt2text: Mapping[str, str] | None = None
) -> dict[tuple[bool, bool], int]:
    """How many distinct pairs exist per (target, cross-language) kind; lets a caller ask for a balanced list."""
    _, categories = _categorised(utt2spk, utt2lang, utt2text)
    return {kind: category.available for kind, category in categories.items()}


def _categorised(
    utt2spk: Mapping[str, str], utt2lang: Mapping[str, str], utt2text: Mapping[str, str] | None
) -> tuple[list[str], dict[tuple[bool, bool], _Category]]:
    """The sorted utterance ids and their categories; every utterance must have a language (and a text)."""
    for name, what, table in (("utt2lang", "language", utt2lang), ("utt2text", "text", utt2text)):
        missing = [utt for utt in utt2spk if utt not in table] if table is not None else []
        if missing:
            raise DataError(f"{name} has no {what} for {len(missing)} utterance(s), e.g. '{missing[0]}'")
    utts = sorted(utt2spk)
    texts = [utt2text[utt] for utt in utts] if utt2text is not None else None
    return utts, _categories([utt2spk[utt] for utt in utts], [utt2lang[utt] for utt in utts], texts)


def make_trials(
    utt2spk: Mapping[str, str],
    utt2lang: Mapping[str, str],
    *,
    num_target: int,
    num_nontarget: int,
    seed: int = 0,
    cross_language_share: float = 0.0,
    utt2text: Mapping[str, str] | None = None,
) -> list[Trial]:
    """``(enroll, test, "target"|"nontarget")`` trials over the utterances of ``utt2spk``, sorted.

    ``cross_language_share`` of each kind pair utterances in different languages; where a category has too few
    pairs the other category of the same kind makes up the difference, and a kind with too few pairs overall
    gives all it has (with a warning). The nontargets take the share the targets reached, so that whether a pair
    crosses languages says nothing of its label (a language detector would otherwise beat chance at
    verification): cross-language targets are the pairs of bilingual speakers, often fewer than asked for, and
    where same-language targets fall short, cross-language ones make up the difference beyond the share. Where
    the nontargets cannot reach the targets' share (e.g. one speaker per language: no same-language nontarget
    pair), a warning says so. No utterance is paired with itself and no pair appears twice.

    With ``utt2text`` no trial pairs two utterances of one text. Where speakers read from one set of texts, each
    text once, such pairs are nearly all nontargets; a speaker embedding that keeps some content scores them
    high, and the list would measure content as much as voice.
    """
    if not 0.0 <= cross_language_share <= 1.0:
        raise ConfigError(f"cross_language_share must be in [0, 1], got {cross_language_share}")
    if num_target < 0 or num_nontarget < 0:
        raise ConfigError(f"trial counts must not be negative, got {num_target} and {num_nontarget}")
    utts, categories = _categorised(utt2spk, utt2lang, utt2text)
    rng = random.Random(seed)
    trials: list[Trial] = []
    share = cross_language_share
    for target, requested in ((True, num_target), (False, num_nontarget)):
        same, cross = categories[target, False], categories[target, True]
        have_same, have_cross = same.available, cross.available
        want_cross = min(round(requested * share), have_cross)
        want_same = min(requested - want_cross, have_same)
        want_cross = min(requested - want_same, have_cross)
        if want_same + want_cross < requested:
            logger.warning("only %d %s trials exist (%d asked for)", want_same + want_cross,
                           "target" if target else "nontarget", requested)
        label = "target" if target else "nontarget"
        for category, number in ((same, want_same), (cross, want_cross)):
            trials.extend((utts[i], utts[j], label) for i, j in _draw(category, number, rng))
        reached = want_cross / (want_same + want_cross) if want_same + want_cross else share
        if target:
            share = reached
        elif abs(reached - share) > _SHARE_TOLERANCE:
            logger.warning(
                "the nontarget trials cross languages in %.0f%% of the pairs, the targets in %.0f%%: too few %s "
                "nontarget pairs exist, so whether a pair crosses languages tells its label",
                100 * reached, 100 * share, "cross-language" if reached < share else "same-language",
            )
    return sorted(trials)


def balanced_trials(
    utt2spk: Mapping[str, str],
    utt2lang: Mapping[str, str],
    *,
    limit: int | None = None,
    seed: int = 0,
    cross_language_share: float = 0.0,
    utt2text: Mapping[str, str] | None = None,
) -> list[Trial]:
    """Every same-speaker pair (at most ``limit``) and as many pairs of two speakers: the list of an evaluation
    set whose target pairs are few, none of which a sample should leave out. ``utt2text``: see ``make_trials``."""
    counts = pair_counts(utt2spk, utt2lang, utt2text)
    targets = counts[True, False] + counts[True, True]
    if limit is not None:
        targets = min(limit, targets)
    return make_trials(utt2spk, utt2lang, num_target=targets, num_nontarget=targets, seed=seed,
                       cross_language_share=cross_language_share, utt2text=utt2text)


def write_trials(path: PathLike, trials: Sequence[Trial]) -> None:
    """Write Kaldi ``enroll test target|nontarget`` lines atomically."""
    with atomic_write(path) as handle:
        handle.writelines(f"{enroll} {test} {label}\n" for enroll, test, label in trials)
