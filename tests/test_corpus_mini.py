"""The mini corpus: UDHR parsing and alignment, the voice roster, trial lists, splits, and a toy end-to-end build."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from corpus_layouts import retrieval_task_lines
from uattr.bin.main import main as uattr_main
from uattr.corpora import tts
from uattr.corpora.mini import (
    MiniConfig,
    assign_units,
    prepare_mini,
    select_voices,
    split_units,
    split_voices,
    text_languages,
    toy_config,
)
from uattr.corpora.trials import balanced_trials, make_trials, pair_counts
from uattr.corpora.udhr import (
    UDHR_FILES,
    align_units,
    extract,
    load_units,
    parse_declaration,
    read_paragraphs,
    split_sentences,
)
from uattr.data.validate import validate_data_dir
from uattr.errors import ConfigError, DataError
from uattr.fileio import read_table

RECIPE_LOCAL = Path(__file__).resolve().parents[1] / "egs" / "mini" / "uattr1" / "local"
ROSTER = RECIPE_LOCAL / "voices.txt"
UDHR = RECIPE_LOCAL / "udhr"

SNIPPET = """<!doctype html><html lang="en"><body>
<header><h2>Preamble</h2><p>Whereas the preamble is left out,</p></header>
<article data-number="1"><h2>Article 1</h2>
  <p>All human beings are born free.   They are endowed
     with reason &amp; conscience.</p></article>
<article data-number="26"><h2>Article 26</h2><ol>
  <li><p>Everyone has the right to education.</p></li>
  <li><p>Education shall be directed to the full development.</p></li></ol></article>
</body></html>"""


def test_parse_declaration_reads_article_paragraphs_only():
    paragraphs = parse_declaration(SNIPPET, "snippet.html")
    assert paragraphs == {
        "a01p1": "All human beings are born free. They are endowed with reason & conscience.",
        "a26p1": "Everyone has the right to education.",
        "a26p2": "Education shall be directed to the full development.",
    }


def test_parse_declaration_without_articles_is_an_error():
    with pytest.raises(DataError, match="nowhere.html: no <article"):
        parse_declaration("<html><body><p>text</p></body></html>", "nowhere.html")
    with pytest.raises(DataError, match="bad.html:1: <article> without a numeric data-number"):
        parse_declaration('<article data-number="x"><p>a</p></article>', "bad.html")


def test_align_units_splits_sentences_only_where_every_language_agrees():
    units = align_units({
        "en": {"a01p1": "One. Two.", "a02p1": "Alpha. Beta."},
        "fr": {"a01p1": "Un. Deux.", "a02p1": "Alpha et beta."},
    })
    assert units == {
        "a01p1s1": {"en": "One.", "fr": "Un."},
        "a01p1s2": {"en": "Two.", "fr": "Deux."},
        "a02p1": {"en": "Alpha. Beta.", "fr": "Alpha et beta."},
    }
    # Same counts, other sentences: the Dutch 26.1 joins English 1 and 2 and splits English 4.
    en = "Everyone has the right to education. It shall be free. Elementary education shall be compulsory. " \
         "Technical education shall be available and higher education shall be open to all on merit."
    nl = "Een ieder heeft recht op onderwijs; het onderwijs zal kosteloos zijn. Het lager onderwijs zal verplicht " \
         "zijn. Ambachtsonderwijs zal algemeen beschikbaar worden gesteld. Hoger onderwijs zal openstaan."
    assert list(align_units({"en": {"a26p1": en}, "nl": {"a26p1": nl}})) == ["a26p1"]
    with pytest.raises(DataError, match="'fr' lacks \\['a02p1'\\]"):
        align_units({"en": {"a01p1": "One.", "a02p1": "Two."}, "fr": {"a01p1": "Un."}})


def test_split_sentences_keeps_closing_quotes_with_their_sentence():
    assert split_sentences("Il dit «Non.» Puis il part.") == ["Il dit «Non.»", "Puis il part."]
    assert split_sentences("Er sagt „Nein.“ Dann geht er.") == ["Er sagt „Nein.“", "Dann geht er."]
    assert split_sentences("Article 1. Everyone.") == ["Article 1. Everyone."]


def test_extracted_copy_aligns_across_all_languages():
    paragraphs = read_paragraphs(UDHR, list(UDHR_FILES))
    assert {lang: len(table) for lang, table in paragraphs.items()} == {lang: 50 for lang in UDHR_FILES}
    units = load_units(UDHR, list(UDHR_FILES))
    assert len(units) == 54  # 46 whole paragraphs + 8 sentences of 4 paragraphs (egs/mini/uattr1/README.md)
    assert sum(1 for unit in units if "s" in unit[3:]) == 8
    assert "a26p1" in units  # the Dutch 26.1 has the English count but not its sentences
    for unit, texts in units.items():
        assert set(texts) == set(UDHR_FILES), unit
        assert all(text.strip() for text in texts.values()), unit
    assert units["a03p1"]["en"] == "Everyone has the right to life, liberty and the security of person."


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_roster_reads_lines_comments_and_bilingual_voices(tmp_path):
    roster = _write(tmp_path / "voices.txt", "# header\n\nesp_a en espeak en+m3 -p 40  # a comment\n"
                                             "mb_x en mbrola de4-en -p 30\nmb_x de mbrola de4 -p 30\n")
    voices = tts.parse_roster(roster)
    assert [(v.voice_id, v.lang, v.engine, v.args) for v in voices] == [
        ("esp_a", "en", "espeak", ("en+m3", "-p", "40")),
        ("mb_x", "en", "mbrola", ("de4-en", "-p", "30")),
        ("mb_x", "de", "mbrola", ("de4", "-p", "30")),
    ]
    assert voices[0].where == f"{roster}:3"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("v1 en", ":2: expected 'voice_id lang engine"),
        ("v1 en nosuch x", ":2: unknown engine 'nosuch'; choices: espeak"),
        ("bad-id en espeak en", ":2: voice id 'bad-id' may only hold"),
        ("v0 en espeak en+f1", ":2: voice 'v0' \\(en\\) already defined on line 1"),
        ("v1 de espeak de+m1 -p 70", ":2: voice 'v1' is the espeak speaker 'm1', as voice 'v0' \\(.*:1\\)"),
    ],
)
def test_parse_roster_errors_name_the_line(tmp_path, line, message):
    roster = _write(tmp_path / "voices.txt", f"v0 en espeak en+m1\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        tts.parse_roster(roster)


@pytest.mark.parametrize(("first", "second", "same"), [
    ("espeak en+m3 -p 35", "espeak de+m3 -p 50", True),  # a variant's formants, whatever language and pitch
    ("espeak en", "espeak de", True),  # the default variant
    ("espeak en+m3", "espeak en+f3", False),
    ("mbrola de4-en", "mbrola de4", True),
    ("rhvoice evgeniy-eng", "rhvoice evgeniy-rus", True),
    ("rhvoice Leticia-F123", "rhvoice leticia", False),
    ("pico en-US", "pico en-GB", False),
])
def test_speaker_keys(first, second, same):
    voices = [tts.Voice(f"v{i}", "xx", spec.split()[0], tuple(spec.split()[1:]), "r") for i, spec in
              enumerate((first, second))]
    assert (tts.speaker_key(voices[0]) == tts.speaker_key(voices[1])) == same


def test_roster_and_declarations_that_are_not_utf8_name_the_line(tmp_path):
    roster = tmp_path / "voices.txt"
    roster.write_bytes("v0 en espeak en+m1\nv1 fr espeak fr # Amélie\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"voices.txt:2: not UTF-8 text \(byte 0xe9"):
        tts.parse_roster(roster)
    declaration = tmp_path / "udhr" / f"{UDHR_FILES['en']}.html"
    declaration.parent.mkdir()
    declaration.write_bytes(b"<html>\n<p>caf\xe9</p>\n")
    with pytest.raises(DataError, match=rf"{UDHR_FILES['en']}.html:2: not UTF-8 text"):
        extract(tmp_path / "udhr", tmp_path / "out", ["en"])


def _only_programs(monkeypatch, present: set[str]) -> None:
    monkeypatch.setattr(tts.shutil, "which", lambda program: f"/usr/bin/{program}" if program in present else None)


def test_missing_engines_and_voice_packages_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    roster = _write(tmp_path / "voices.txt", "esp_a en espeak en+m1\npico_a en pico en-US\n"
                                             "mb_zz en mbrola zz9 -p 40\n")
    _only_programs(monkeypatch, {"espeak-ng", "mbrola"})
    with caplog.at_level(logging.WARNING, logger="uattr.corpora.tts"):
        usable = tts.usable_voices(tts.parse_roster(roster))
    assert [voice.voice_id for voice in usable] == ["esp_a"]
    assert "skipping 1 voice(s) because pico2wave is not installed" in caplog.text and "pico_a" in caplog.text
    assert "/usr/share/mbrola/zz9/zz9 is not installed" in caplog.text and "mb_zz" in caplog.text


def test_voices_an_engine_does_not_know_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    """espeak-ng and flite fall back to another voice for a name they do not have: the same speaker twice."""
    roster = _write(tmp_path / "voices.txt", "esp_a en espeak en+m1\nesp_typo en espeak en+mm3\n"
                                             "fl_slt en flite slt\nfl_typo en flite sltt\n")
    _only_programs(monkeypatch, {"espeak-ng", "flite"})
    listings = {("espeak-ng", "--voices=variant"): " 5  variant  --/M  m1  !v/m1\n 5  variant  --/F  f2  !v/f2\n",
                ("flite", "-lv"): "Voices available: kal awb rms slt \n"}
    monkeypatch.setattr(tts, "_listing", lambda *argv: listings[argv])
    with caplog.at_level(logging.WARNING, logger="uattr.corpora.tts"):
        usable = tts.usable_voices(tts.parse_roster(roster))
    assert [voice.voice_id for voice in usable] == ["esp_a", "fl_slt"]
    assert "because espeak-ng has no variant 'mm3'" in caplog.text and "esp_typo" in caplog.text
    assert "because flite has no voice 'sltt' (flite -lv: kal awb rms slt)" in caplog.text


def test_too_few_voices_stop_with_a_clear_message(tmp_path, monkeypatch):
    _only_programs(monkeypatch, set())
    config = MiniConfig(out=tmp_path, roster=ROSTER, udhr=UDHR, min_voices=5)
    with pytest.raises(ConfigError, match="only 0 usable voice\\(s\\), at least 5 needed.*--min-voices"):
        select_voices(config)


def test_the_units_come_from_the_languages_asked_for_not_the_voices_installed(tmp_path, monkeypatch):
    """Without Spanish voices the units must not change: aligning fewer languages splits more paragraphs."""
    _only_programs(monkeypatch, {"espeak-ng"})
    config = MiniConfig(out=tmp_path, roster=ROSTER, udhr=UDHR)
    assert sorted(text_languages(config)) == sorted(UDHR_FILES)
    assert text_languages(MiniConfig(out=tmp_path, roster=ROSTER, udhr=UDHR, languages=["en", "fr"])) == ["en", "fr"]
    without_spanish = [lang for lang in UDHR_FILES if lang != "es"]
    assert len(load_units(UDHR, without_spanish)) > len(load_units(UDHR, list(UDHR_FILES)))


@pytest.mark.parametrize("option", ["units_per_voice", "eval_units_per_voice", "num_trials", "voices_per_language"])
def test_counts_below_one_are_an_error_naming_the_option(tmp_path, option):
    config = MiniConfig(out=tmp_path, roster=ROSTER, udhr=UDHR, **{option: 0})
    with pytest.raises(ConfigError, match=f"--{option.replace('_', '-')} must be at least 1, got 0"):
        prepare_mini(config)


@pytest.mark.parametrize("option, value", [("unseen_share", -0.5), ("eval_voice_share", 1.5),
                                           ("cross_language_share", -0.1)])
def test_shares_outside_zero_to_one_are_an_error_naming_the_option(tmp_path, option, value):
    config = MiniConfig(out=tmp_path, roster=ROSTER, udhr=UDHR, **{option: value})
    with pytest.raises(ConfigError, match=f"--{option.replace('_', '-')} must be a share in \\[0, 1\\], got {value}"):
        prepare_mini(config)


def _speakers(num_speakers: int, per_speaker: int, bilingual: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    """Speakers s0.. each with ``per_speaker`` utterances in one of 3 languages; the first ``bilingual`` in two."""
    utt2spk, utt2lang = {}, {}
    for spk in range(num_speakers):
        for index in range(per_speaker):
            lang = "xyz"[spk % 3] if spk >= bilingual or index % 2 else "xyz"[(spk + 1) % 3]
            utt = f"s{spk}-{lang}-{index:03d}"
            utt2spk[utt], utt2lang[utt] = f"s{spk}", lang
    return utt2spk, utt2lang


def _check_trials(trials, utt2spk, utt2lang, num, cross_target, cross_nontarget):
    assert len(set((e, t) for e, t, _ in trials)) == len(trials), "a pair appears twice"
    assert all(enroll != test for enroll, test, _ in trials), "self trial"
    assert all((label == "target") == (utt2spk[e] == utt2spk[t]) for e, t, label in trials)
    kinds = collections.Counter((label, utt2lang[e] != utt2lang[t]) for e, t, label in trials)
    expected = collections.Counter({("target", True): cross_target, ("target", False): num - cross_target,
                                    ("nontarget", True): cross_nontarget, ("nontarget", False): num - cross_nontarget})
    assert kinds == +expected


def test_trials_are_balanced_with_the_cross_language_share():
    utt2spk, utt2lang = _speakers(6, 10, bilingual=2)
    trials = make_trials(utt2spk, utt2lang, num_target=100, num_nontarget=100, seed=3, cross_language_share=0.25)
    _check_trials(trials, utt2spk, utt2lang, 100, 25, 25)
    assert trials == make_trials(utt2spk, utt2lang, num_target=100, num_nontarget=100, seed=3,
                                 cross_language_share=0.25)
    assert trials != make_trials(utt2spk, utt2lang, num_target=100, num_nontarget=100, seed=4,
                                 cross_language_share=0.25)


def test_pair_counts_match_brute_force_and_shortfalls_are_made_up():
    utt2spk, utt2lang = _speakers(5, 7, bilingual=1)
    brute = collections.Counter(
        (utt2spk[a] == utt2spk[b], utt2lang[a] != utt2lang[b]) for a, b in itertools.combinations(utt2spk, 2)
    )
    counts = pair_counts(utt2spk, utt2lang)
    assert counts == dict(brute)
    # Only one bilingual speaker: 12 cross-language target pairs; the rest come from same-language pairs.
    assert counts[True, True] == 12
    trials = make_trials(utt2spk, utt2lang, num_target=40, num_nontarget=40, seed=0, cross_language_share=0.5)
    _check_trials(trials, utt2spk, utt2lang, 40, 12, 12)  # nontargets: the targets' share, so language says nothing


def test_nontargets_cross_languages_as_often_as_the_targets_even_beyond_the_share_asked_for():
    # Every target pair: 220 within a language and 50 across (the bilingual speakers'); none asked to cross.
    utt2spk, utt2lang = _speakers(6, 10, bilingual=2)
    trials = make_trials(utt2spk, utt2lang, num_target=270, num_nontarget=270, seed=0, cross_language_share=0.0)
    _check_trials(trials, utt2spk, utt2lang, 270, 50, 50)


def test_nontargets_that_cannot_match_the_targets_share_are_a_warning(caplog):
    """One speaker per language (the toy corpus's evaluation sets): every nontarget crosses languages, no target
    does, and a language detector would verify perfectly."""
    utt2spk, utt2lang = _speakers(2, 4)  # s0 speaks x, s1 speaks y
    with caplog.at_level(logging.WARNING):
        trials = make_trials(utt2spk, utt2lang, num_target=12, num_nontarget=12, seed=0)
    _check_trials(trials, utt2spk, utt2lang, 12, 0, 12)
    assert "the nontarget trials cross languages in 100% of the pairs, the targets in 0%: too few same-language" \
        in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_trials(*_speakers(6, 10, bilingual=2), num_target=270, num_nontarget=270, seed=0)
    assert "cross languages" not in caplog.text


def test_large_lists_are_sampled_without_listing_every_pair():
    utt2spk, utt2lang = _speakers(300, 12)  # 3600 utterances, 6.5M pairs: nontargets are sampled
    trials = make_trials(utt2spk, utt2lang, num_target=2000, num_nontarget=2000, seed=1, cross_language_share=0.5)
    _check_trials(trials, utt2spk, utt2lang, 2000, 0, 0)  # no bilingual speaker: no cross-language nontarget
    many = _speakers(300, 12, bilingual=300)
    trials = make_trials(*many, num_target=2000, num_nontarget=2000, seed=1, cross_language_share=0.5)
    _check_trials(trials, *many, 2000, 1000, 1000)


def _texts(utt2spk: dict[str, str], num_texts: int) -> dict[str, str]:
    """Utterance k of each speaker reads text k mod ``num_texts``: a speaker repeats texts, in one language and
    (bilingual speakers) across two."""
    return {utt: f"t{int(utt.rsplit('-', 1)[1]) % num_texts}" for utt in utt2spk}


def test_with_texts_no_trial_pairs_two_readings_of_one_text():
    utt2spk, utt2lang = _speakers(6, 10, bilingual=2)
    utt2text = _texts(utt2spk, 4)
    brute = collections.Counter(
        (utt2spk[a] == utt2spk[b], utt2lang[a] != utt2lang[b])
        for a, b in itertools.combinations(utt2spk, 2) if utt2text[a] != utt2text[b]
    )
    assert pair_counts(utt2spk, utt2lang, utt2text) == dict(brute)
    assert pair_counts(utt2spk, utt2lang, utt2text) != pair_counts(utt2spk, utt2lang)
    for seed in range(3):
        trials = make_trials(utt2spk, utt2lang, num_target=100, num_nontarget=100, seed=seed,
                             cross_language_share=0.25, utt2text=utt2text)
        _check_trials(trials, utt2spk, utt2lang, 100, 25, 25)
        assert all(utt2text[enroll] != utt2text[test] for enroll, test, _ in trials)
    # Every target pair of other texts is a trial, and there are as many nontargets.
    trials = balanced_trials(utt2spk, utt2lang, utt2text=utt2text)
    labels = collections.Counter(label for _, _, label in trials)
    assert labels["target"] == labels["nontarget"] == brute[True, False] + brute[True, True]
    assert all(utt2text[enroll] != utt2text[test] for enroll, test, _ in trials)


def test_texts_are_sampled_out_of_large_lists_too():
    utt2spk, utt2lang = _speakers(300, 12, bilingual=300)  # nontargets are sampled, not enumerated
    utt2text = _texts(utt2spk, 3)
    trials = make_trials(utt2spk, utt2lang, num_target=2000, num_nontarget=2000, seed=1, cross_language_share=0.5,
                         utt2text=utt2text)
    _check_trials(trials, utt2spk, utt2lang, 2000, 1000, 1000)
    assert all(utt2text[enroll] != utt2text[test] for enroll, test, _ in trials)


def test_trial_arguments_are_checked():
    with pytest.raises(ConfigError, match="cross_language_share"):
        make_trials({"a": "s"}, {"a": "en"}, num_target=1, num_nontarget=1, cross_language_share=1.5)
    with pytest.raises(DataError, match="no language for 1 utterance"):
        make_trials({"a": "s", "b": "t"}, {"a": "en"}, num_target=1, num_nontarget=1)
    with pytest.raises(DataError, match="utt2text has no text for 1 utterance.*'b'"):
        make_trials({"a": "s", "b": "t"}, {"a": "en", "b": "en"}, num_target=1, num_nontarget=1, utt2text={"a": "x"})


def _voice(voice_id: str, lang: str) -> tts.Voice:
    return tts.Voice(voice_id, lang, "espeak", (lang,), "roster:1")


def test_the_amplitude_of_an_mbrola_pho_voice_is_mbrolas_volume(tmp_path, monkeypatch):
    """espeak-ng writing phonemes applies no -a; mbrola's -v does (else the clipping advice would do nothing)."""
    calls = []
    monkeypatch.setattr(tts, "_call", lambda argv, stdin=None: calls.append(list(argv)) or b"a\t50\n")
    for args, volume in ((("es1", "-p", "45", "-a", "70"), ["-v", "0.7"]), (("es1", "-p", "45"), [])):
        calls.clear()
        tts._run_mbrola_pho(tts.Voice("v", "es", "mbrola-pho", args, "roster:1"), "hola", tmp_path / "o.wav", tmp_path)
        assert calls[1][: 1 + len(volume)] == ["mbrola", *volume] and calls[1][1 + len(volume)] == "-e"
    with pytest.raises(DataError, match="-a 'loud': the amplitude must be a number"):
        tts._run_mbrola_pho(tts.Voice("v", "es", "mbrola-pho", ("es1", "-a", "loud"), "roster:1"), "hola",
                            tmp_path / "o.wav", tmp_path)


def test_ctrl_c_stops_synthesis_without_running_the_queued_jobs(tmp_path, monkeypatch):
    import os
    import signal
    import time

    started = []

    def slow_synthesis(job):
        started.append(job.utt_id)
        if len(started) == 5:  # Ctrl-C, while the fifth job runs (in a worker thread)
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.02)

    monkeypatch.setattr(tts, "synthesize_one", slow_synthesis)
    jobs = [tts.SynthesisJob(f"u{i:03d}", _voice("v", "en"), "text", tmp_path / f"u{i:03d}.wav") for i in range(200)]
    # Python's own Ctrl-C handler, even where the runner ignores SIGINT (a background job's default).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            tts.synthesize(jobs, nj=1, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(started) < 50  # a `with ThreadPoolExecutor` ran all 200 (4 s) before the interrupt took effect


class _EngineWriting:
    """Stands in for an engine: "synthesises" the given samples at the given rate."""

    def __init__(self, samples: np.ndarray, rate: int) -> None:
        self.samples, self.rate = samples, rate

    def run(self, voice, text, out, workdir) -> None:
        soundfile.write(str(out), self.samples, self.rate, subtype="PCM_16")


def test_clipped_engine_output_is_refused_and_a_resampling_overshoot_scaled(tmp_path, monkeypatch):
    sine = np.sin(2 * np.pi * 220 * np.arange(22050) / 22050)
    monkeypatch.setitem(tts.ENGINES, "espeak", _EngineWriting(np.clip(1.5 * sine, -1, 1), 22050))
    job = tts.SynthesisJob("v-en-a01p1", _voice("v", "en"), "text", tmp_path / "clipped.wav")
    with pytest.raises(DataError, match=r"voice 'v'.*'v-en-a01p1'.*% of the engine's samples are at full scale.*-a 70"):
        tts.synthesize_one(job)
    assert not job.wav.exists()

    square = 0.99 * np.sign(sine)  # below full scale, but the resampling filter rings above it
    monkeypatch.setitem(tts.ENGINES, "espeak", _EngineWriting(square, 22050))
    job = dataclasses.replace(job, wav=tmp_path / "square.wav")
    tts.synthesize_one(job)
    written, rate = soundfile.read(str(job.wav))
    resampled = resample_poly(square, 320, 441)
    assert rate == 16000 and np.abs(resampled).max() > 1.05
    np.testing.assert_allclose(written, resampled / np.abs(resampled).max(), atol=2**-14)  # scaled, not clipped


def test_near_silent_engine_output_is_refused(tmp_path, monkeypatch):
    """What an engine gives for text in a script it cannot read: exit status 0, half a second of near-silence."""
    hum = 2e-4 * np.sin(2 * np.pi * 50 * np.arange(8000) / 16000)
    monkeypatch.setitem(tts.ENGINES, "espeak", _EngineWriting(hum, 16000))
    job = tts.SynthesisJob("v-ru-a01p1", _voice("v", "ru"), "Каждый человек", tmp_path / "silent.wav")
    with pytest.raises(DataError, match=r"voice 'v'.*'v-ru-a01p1'.*near-silent \(0.50 s at RMS 1.4e-04\)"):
        tts.synthesize_one(job)
    assert not job.wav.exists()


def test_two_voice_ids_with_the_same_audio_of_one_text_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    speech, other = (0.1 * rng.standard_normal(8000) for _ in range(2))
    jobs = []
    for voice_id, samples, text in (("a", speech, "one"), ("b", other, "one"), ("c", speech, "two"),
                                    ("d", speech, "one")):
        wav = tmp_path / f"{voice_id}.wav"
        soundfile.write(str(wav), samples, 16000, subtype="PCM_16")
        jobs.append(tts.SynthesisJob(f"{voice_id}-en-u1", _voice(voice_id, "en"), text, wav))
    tts.require_distinct_voices(jobs[:3])  # "c" says another text
    same = r"voice 'd' .* and .*voice 'a' .* the same audio for 'd-en-u1' and 'a-en-u1'"
    with pytest.raises(ConfigError, match=same):
        tts.require_distinct_voices(jobs)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (tools/install_system.sh)")
def test_two_variants_of_a_regional_espeak_voice_are_refused_as_one_voice(tmp_path):
    def jobs(*voices: str) -> list[tts.SynthesisJob]:
        made = [
            tts.SynthesisJob(f"v{index}-fr-u1", tts.Voice(f"v{index}", "fr", "espeak", (voice,), f"roster:{index}"),
                             "Tous les êtres humains naissent libres.", tmp_path / voice / "u1.wav")
            for index, voice in enumerate(voices)
        ]
        tts.synthesize(made, progress=False)
        return made

    tts.require_distinct_voices(jobs("fr+m3", "fr+f2"))
    same = r"voice 'v1' \(fr, espeak fr-fr\+m3\) and .*voice 'v0' \(fr, espeak fr-fr\+f2"
    with pytest.raises(ConfigError, match=same):
        tts.require_distinct_voices(jobs("fr-fr+f2", "fr-fr+m3"))


def test_retrieval_sets_an_earlier_run_wrote_and_this_one_does_not_are_removed(tmp_path):
    from uattr.corpora.mini import Utterance, write_retrieval_sets

    def utterances(voices):
        return [Utterance(f"{v}-{unit}", _voice(v, lang), unit, "t", "t", tmp_path / f"{v}-{unit}.wav")
                for v, lang in voices for unit in ("u1", "u2")]

    samples = {f"{v}-{unit}": 16000 for v in ("en1", "fr1", "fr2") for unit in ("u1", "u2")}
    first = write_retrieval_sets(tmp_path, "dev", utterances([("en1", "en"), ("fr1", "fr")]), {"u2"}, samples)
    assert (tmp_path / "dev_s2s_gallery").is_dir() and (tmp_path / "dev_s2s_seen").is_dir() and len(first) == 4
    again = write_retrieval_sets(tmp_path, "dev", utterances([("fr1", "fr"), ("fr2", "fr")]), {"u2"}, samples)
    assert [line.split()[0] for line in again] == ["dev_s2t_seen", "dev_s2t_unseen"]  # no English voice: no s2s
    assert not any((tmp_path / f"dev_s2s_{kind}").exists() for kind in ("gallery", "seen", "unseen"))
    # A set an earlier run was killed while deleting (its wav.scp gone first, as some filesystems list it) goes too,
    # as does what a kill left moved aside.
    write_retrieval_sets(tmp_path, "dev", utterances([("en1", "en"), ("fr1", "fr")]), {"u2"}, samples)
    (tmp_path / "dev_s2s_seen" / "wav.scp").unlink()
    (tmp_path / ".dev_s2s_unseen.removing").mkdir()
    write_retrieval_sets(tmp_path, "dev", utterances([("fr1", "fr"), ("fr2", "fr")]), {"u2"}, samples)
    assert sorted(path.name for path in tmp_path.iterdir() if "s2s" in path.name) == []


def test_voice_and_unit_splits_are_disjoint_per_language_and_deterministic():
    voices = [_voice(f"v_{lang}{i}", lang) for lang, count in (("en", 10), ("fr", 5), ("de", 2), ("it", 1))
              for i in range(count)]
    voices.append(_voice("v_en0", "fr"))  # bilingual: follows its first language's split
    split = split_voices(voices, 0.2, seed=0)
    assert split == split_voices(voices, 0.2, seed=0)
    by_lang = collections.defaultdict(collections.Counter)
    for voice in voices[:-1]:
        by_lang[voice.lang][split[voice.voice_id]] += 1
    assert by_lang["en"] == {"train": 6, "dev": 2, "test": 2}
    assert by_lang["fr"] == {"train": 3, "dev": 1, "test": 1}
    assert by_lang["de"] == {"train": 1, "test": 1}
    assert by_lang["it"] == {"train": 1}

    seen, unseen = split_units([f"u{i:02d}" for i in range(20)], 0.2, seed=0)
    assert len(unseen) == 4 and not set(seen) & set(unseen) and len(seen) == 16
    assignment = assign_units(voices, split, seen, unseen, units_per_voice=6, seed=0)
    for voice, units in assignment.items():
        assert len(units) == len(set(units)) == 6
        if split[voice.voice_id] == "train":
            assert set(units) <= set(seen)
        else:
            assert len(set(units) & set(unseen)) == 3
    train_en = [units for voice, units in assignment.items() if voice.lang == "en" and split[voice.voice_id] == "train"]
    assert len({tuple(units) for units in train_en}) == len(train_en), "voices of a language read different texts"


def test_evaluation_voices_read_their_own_number_of_units_and_use_every_slot():
    voices = [_voice(f"v_{lang}{i}", lang) for lang, count in (("en", 10), ("fr", 5)) for i in range(count)]
    split = split_voices(voices, 0.2, seed=0)
    seen, unseen = split_units([f"u{i:02d}" for i in range(20)], 0.1, seed=0)
    assert len(unseen) == 2

    def counts(**options) -> set[tuple[str, int, int]]:
        assignment = assign_units(voices, split, seen, unseen, seed=0, **options)
        return {(split[voice.voice_id], len(set(units) & set(seen)), len(set(units) & set(unseen)))
                for voice, units in assignment.items()}

    # Only 2 unseen units: an evaluation voice fills the rest of its 6 slots with seen ones (4 + 2, not 3 + 2).
    assert counts(units_per_voice=6) == {("train", 6, 0), ("dev", 4, 2), ("test", 4, 2)}
    assert counts(units_per_voice=6, eval_units_per_voice=10) == {("train", 6, 0), ("dev", 8, 2), ("test", 8, 2)}
    # More than there are: every unit, seen and unseen.
    assert counts(units_per_voice=6, eval_units_per_voice=99) == {("train", 6, 0), ("dev", 18, 2), ("test", 18, 2)}
    assert counts(units_per_voice=6, eval_units_per_voice=1) == {("train", 6, 0), ("dev", 1, 0), ("test", 1, 0)}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (tools/install_system.sh)")
def test_toy_corpus_end_to_end(tmp_path):
    out = tmp_path / "data"
    status = uattr_main(["prepare-mini", "-q", "--out", str(out), "--roster", str(ROSTER), "--udhr", str(UDHR),
                         "--toy", "--nj", "2"])
    assert status == 0
    for folder in sorted(out.iterdir()):
        if (folder / "wav.scp").is_file():
            report = validate_data_dir(folder)
            assert report.ok, "\n".join(map(str, report.problems))

    voices = {name: set(read_table(out / name / "utt2spk").values()) for name in ("train", "dev", "test")}
    assert all(voices.values()) and not (voices["train"] & voices["dev"] or voices["train"] & voices["test"]
                                         or voices["dev"] & voices["test"])
    for name in ("train", "dev", "test"):
        assert set(read_table(out / name / "utt2lang").values()) == {"en", "fr"}
    units = read_table(out / "units" / "text")
    unitset = read_table(out / "units" / "utt2unitset")
    train_units = set(read_table(out / "train" / "utt2unit").values())
    assert train_units and all(unitset[unit] == "seen" for unit in train_units)

    for name in ("dev", "test"):
        utt2spk = read_table(out / name / "utt2spk")
        utt2unit = read_table(out / name / "utt2unit")
        trials = [line.split() for line in (out / name / "trials").read_text().splitlines()]
        labels = collections.Counter(label for _, _, label in trials)
        assert labels["target"] == labels["nontarget"] > 0
        assert all((label == "target") == (utt2spk[e] == utt2spk[t]) and e != t for e, t, label in trials)
        assert all(utt2unit[e] != utt2unit[t] for e, t, _ in trials)  # no two readings of one unit
        for condition in ("seen", "unseen"):
            s2t = read_table(out / f"{name}_s2t_{condition}" / "query2ref")
            assert s2t and all(ref == utt2unit[utt] and unitset[ref] == condition for utt, ref in s2t.items())
            assert set(s2t) == set(read_table(out / f"{name}_s2t_{condition}" / "wav.scp"))
            s2s = read_table(out / f"{name}_s2s_{condition}" / "query2ref")
            gallery = read_table(out / f"{name}_s2s_gallery" / "utt2unit")
            gallery_lang = read_table(out / f"{name}_s2s_gallery" / "utt2lang")
            assert set(gallery_lang.values()) == {"en"}
            for utt, refs in s2s.items():
                refs = refs.split()
                assert utt.split("-")[1] != "en" and refs
                assert sorted(refs) == sorted(g for g, unit in gallery.items() if unit == utt2unit[utt])
    tasks = [line.split() for line in retrieval_task_lines(out)]
    assert len(tasks) == 8
    for name, attr, query_set, kind, gallery_set, query2ref in tasks:
        assert attr == "semantic" and (out / query_set / "wav.scp").is_file() and Path(query2ref).is_file()
        assert (out / gallery_set / ("text.en" if kind == "teacher" else "wav.scp")).is_file()
    assert set(units) >= set(read_table(out / "dev_s2t_seen" / "query2ref").values())

    # A second run finds every file synthesised already and writes the same tables.
    trials_before = (out / "test" / "trials").read_text()
    config = toy_config(MiniConfig(out=out, roster=ROSTER, udhr=UDHR, nj=2))
    assert prepare_mini(config).synthesised == 0
    assert (out / "test" / "trials").read_text() == trials_before

    # Without --num-trials every target pair of two units is a trial, with as many nontarget trials.
    prepare_mini(dataclasses.replace(config, num_trials=None))
    utt2spk, utt2unit = read_table(out / "test" / "utt2spk"), read_table(out / "test" / "utt2unit")
    labels = collections.Counter(line.split()[2] for line in (out / "test" / "trials").read_text().splitlines())
    target_pairs = sum(utt2spk[a] == utt2spk[b] and utt2unit[a] != utt2unit[b]
                       for a, b in itertools.combinations(utt2spk, 2))
    assert labels["target"] == labels["nontarget"] == target_pairs
