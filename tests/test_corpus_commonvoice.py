"""Common Voice preparation on a fabricated two-language release (48 kHz mp3, new and old list formats)."""

from __future__ import annotations

import logging

import pytest

from corpus_layouts import (
    CV_CLIENTS,
    CV_NEW_HEADER,
    CV_OLD_HEADER,
    assert_valid_data_dirs,
    copy_recipe,
    make_commonvoice,
    prepare_in_recipe_copy,
    retrieval_task_lines,
    run_recipe_script,
    write_lines,
    write_tone,
)
from uattr.corpora import commonvoice
from uattr.corpora.commonvoice import prepare_commonvoice, speaker_ids
from uattr.corpora.trials import balanced_trials
from uattr.errors import DataError
from uattr.fileio import read_table

A, B = "a" * 20 + "1", "a" * 20 + "2"  # the two clients sharing 20 digits keep 21
TRAIN = {  # by hand from corpus_layouts.CV_FR / CV_DE: utterance → (text, seconds)
    f"{A}-common_voice_fr_1": ("Bonjour à tous.", "1"),  # clip_durations.tsv: 1000 ms
    f"{A}-common_voice_fr_2": ("Il fait beau.", "1.1"),
    f"{B}-common_voice_fr_3": ("Le chat dort.", "0.9"),
    f"{B}-common_voice_fr_4": ('"Guillemets" sans fin.', "0.8"),  # not in clip_durations.tsv: mp3 header
    "eeeeeeeeeeeeeeee-common_voice_de_1": ("Guten Morgen.", "1"),  # no clip_durations.tsv: mp3 headers
    "eeeeeeeeeeeeeeee-common_voice_de_2": ("Wie geht es dir?", "1.2"),
}  # left out: fr 5/6 and de 4/5 (dev/test speakers), fr 7 (a dev sentence), fr 8 and de 3 (10 s or more)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The recipe's local/data.sh run once on the miniature release."""
    tmp = tmp_path_factory.mktemp("commonvoice")
    root = make_commonvoice(tmp / "cv-corpus")
    return prepare_in_recipe_copy("commonvoice", root, tmp / "checkout", "--nj", "2"), root


def test_data_dirs_are_valid(prepared):
    data, _ = prepared
    assert_valid_data_dirs(data, ("train", "dev", "test"), sample_rate=None)  # 48 kHz mp3, resampled on load


def test_train_is_validated_minus_held_out_and_long_clips(prepared):
    data, root = prepared
    assert read_table(data / "train" / "text") == {utt: text for utt, (text, _) in TRAIN.items()}
    assert read_table(data / "train" / "utt2dur") == {utt: seconds for utt, (_, seconds) in TRAIN.items()}
    assert read_table(data / "train" / "wav.scp")[f"{A}-common_voice_fr_1"] == str(root / "fr/clips/common_voice_fr_1.mp3")
    assert read_table(data / "train" / "utt2lang")["eeeeeeeeeeeeeeee-common_voice_de_1"] == "de"
    assert read_table(data / "train" / "spk2utt") == {
        A: f"{A}-common_voice_fr_1 {A}-common_voice_fr_2",
        B: f"{B}-common_voice_fr_3 {B}-common_voice_fr_4",
        "e" * 16: "eeeeeeeeeeeeeeee-common_voice_de_1 eeeeeeeeeeeeeeee-common_voice_de_2",
    }


def test_dev_and_test_with_retrieval_maps(prepared):
    data, _ = prepared
    assert read_table(data / "dev" / "text") == {
        "9999999999999999-common_voice_de_5": "Ein Entwicklungssatz.",
        "dddddddddddddddd-common_voice_fr_6": "Une phrase de dev.",
    }
    assert sorted(read_table(data / "test" / "utt2spk").values()) == ["0" * 16, "c" * 16]
    assert (data / "dev" / "query2ref").read_text().splitlines() == [
        "9999999999999999-common_voice_de_5 9999999999999999-common_voice_de_5",
        "dddddddddddddddd-common_voice_fr_6 dddddddddddddddd-common_voice_fr_6",
    ]
    tasks = retrieval_task_lines(data)
    assert tasks == [
        "commonvoice_dev_s2t semantic dev teacher dev data/dev/query2ref",
        "commonvoice_test_s2t semantic test teacher test data/test/query2ref",
    ]


def test_one_sentence_in_two_languages_is_one_gallery_vector_so_both_clips_are_right(tmp_path):
    root = make_commonvoice(tmp_path / "cv-corpus")
    for name in ("validated.tsv", "test.tsv"):  # de's test sentence spelt as fr's: the text teacher cannot tell
        path = root / "de" / name
        path.write_text(path.read_text().replace("Ein Testsatz.", "Une phrase de test."))
    prepare_commonvoice(root, tmp_path / "data", nj=1)
    clips = sorted(read_table(tmp_path / "data" / "test" / "text"))
    assert read_table(tmp_path / "data" / "test" / "query2ref") == {clip: " ".join(clips) for clip in clips}


def test_keep_held_out_trains_on_other_clips_of_held_out_sentences(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    prepare_commonvoice(root, tmp_path / "data", languages=["fr"], exclude_held_out=False, nj=1)
    train = sorted(read_table(tmp_path / "data" / "train" / "wav.scp"))
    assert f"{A}-common_voice_fr_7" in train  # the dev sentence read by a training speaker
    assert not [utt for utt in train if utt.endswith(("_fr_5", "_fr_6"))]  # never the dev/test clips themselves


def test_speaker_ids_grow_until_unique():
    assert speaker_ids(set(CV_CLIENTS.values())) == {
        CV_CLIENTS["A"]: A, CV_CLIENTS["B"]: B, **{CV_CLIENTS[k]: CV_CLIENTS[k][:16] for k in "CDEFGH"},
    }
    assert speaker_ids({"abc", "abcd"}, digits=2) == {"abc": "abc", "abcd": "abcd"}


def test_list_errors_name_the_line(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    lines = (root / "de" / "validated.tsv").read_text().splitlines()
    write_lines(root / "de" / "validated.tsv", lines + [lines[2]])
    with pytest.raises(DataError, match=r"de/validated.tsv:7: clip common_voice_de_2.mp3 listed twice "
                                        r"\(first: .*de/validated.tsv:3\)"):
        prepare_commonvoice(root, tmp_path / "data", languages=["de"], nj=1)
    write_lines(root / "de" / "validated.tsv", lines[:2] + [lines[2].replace("de_2.mp3", "de_9.mp3")])
    with pytest.raises(DataError, match=r"de/validated.tsv:3: clip .*common_voice_de_9.mp3 not found"):
        prepare_commonvoice(root, tmp_path / "data", languages=["de"], nj=1)
    write_lines(root / "de" / "dev.tsv", ["client_id\tsentence", "x\ty"])
    with pytest.raises(DataError, match=r"de/dev.tsv:1: missing column\(s\) path"):
        prepare_commonvoice(root, tmp_path / "data", languages=["de"], nj=1)


def _append_row(path, client: str, clip: str, sentence: str, encoding: str = "utf-8") -> None:
    """One more new-format row (line 10 of fr/validated.tsv), in ``encoding``."""
    values = {"client_id": client, "path": clip, "sentence_id": "s9", "sentence": sentence}
    with open(path, "ab") as handle:
        handle.write(("\t".join(values.get(column, "") for column in CV_NEW_HEADER) + "\n").encode(encoding))


def test_empty_clips_are_left_out_with_a_warning(tmp_path, caplog):
    """Releases list a few hundred empty clips: 0 ms in clip_durations.tsv, or a 0-byte mp3 without a header."""
    root = make_commonvoice(tmp_path / "cv")
    for lang in ("fr", "de"):
        (root / lang / "clips" / f"common_voice_{lang}_9.mp3").write_bytes(b"")
    _append_row(root / "fr" / "validated.tsv", CV_CLIENTS["B"], "common_voice_fr_9.mp3", "Un enregistrement vide.")
    with open(root / "fr" / "clip_durations.tsv", "a") as handle:
        handle.write("common_voice_fr_9.mp3\t0\n")
    de_row = {"client_id": CV_CLIENTS["E"], "path": "common_voice_de_9.mp3", "sentence": "Leer."}  # no durations
    with open(root / "de" / "validated.tsv", "a") as handle:
        handle.write("\t".join(de_row.get(column, "") for column in CV_OLD_HEADER) + "\n")
    with caplog.at_level(logging.WARNING):
        prepare_commonvoice(root, tmp_path / "data", nj=1)
    assert read_table(tmp_path / "data" / "train" / "utt2dur") == {utt: seconds for utt, (_, seconds) in TRAIN.items()}
    assert "train: left out 2 empty clip(s) (0 s of audio), e.g. " in caplog.text


def test_non_utf8_list_names_the_line(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    _append_row(root / "fr" / "validated.tsv", CV_CLIENTS["C"], "common_voice_fr_5.mp3", "Très bien.", "latin-1")
    with pytest.raises(DataError, match=r"fr/validated.tsv:10: not UTF-8 text \(byte 0xe8 at column \d+\)"):
        prepare_commonvoice(root, tmp_path / "data", languages=["fr"], nj=1)


def test_byte_order_mark_before_the_header_is_ignored(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    for name in ("validated.tsv", "dev.tsv", "clip_durations.tsv"):
        path = root / "fr" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # what "utf-8-sig" writers leave
    prepare_commonvoice(root, tmp_path / "data", languages=["fr"], nj=1)
    assert read_table(tmp_path / "data" / "train" / "text") == {
        utt: text for utt, (text, _) in TRAIN.items() if "_fr_" in utt
    }
    assert read_table(tmp_path / "data" / "train" / "utt2dur")[f"{A}-common_voice_fr_1"] == "1"  # the table's
    dev = read_table(tmp_path / "data" / "dev" / "text")
    assert dev == {"dddddddddddddddd-common_voice_fr_6": "Une phrase de dev."}


def test_dev_and_test_trials_pair_the_clips_of_each_speaker(tmp_path, caplog):
    """Every same-speaker pair and as many other pairs; a set without a speaker of two clips gets no list."""
    root = make_commonvoice(tmp_path / "cv")
    write_tone(root / "fr" / "clips" / "common_voice_fr_9.mp3", 1.0, 48000, 9)
    _append_row(root / "fr" / "dev.tsv", CV_CLIENTS["D"], "common_voice_fr_9.mp3", "Encore une phrase.")
    with caplog.at_level(logging.WARNING):
        prepare_commonvoice(root, tmp_path / "data", nj=1)
    d, h = "d" * 16, "9" * 16
    trials = (tmp_path / "data" / "dev" / "trials").read_text().splitlines()
    assert len(trials) == 2 and f"{d}-common_voice_fr_6 {d}-common_voice_fr_9 target" in trials
    nontarget = next(trial.split() for trial in trials if trial.endswith(" nontarget"))
    assert nontarget[0] == f"{h}-common_voice_de_5"
    assert nontarget[1] in (f"{d}-common_voice_fr_6", f"{d}-common_voice_fr_9")
    assert not (tmp_path / "data" / "test" / "trials").exists()  # its two clips are of two speakers
    assert "data/test: no speaker has two clips, so no trials" in caplog.text
    dev = root / "fr" / "dev.tsv"
    write_lines(dev, dev.read_text().splitlines()[:-1])
    prepare_commonvoice(root, tmp_path / "data", nj=1)
    assert not (tmp_path / "data" / "dev" / "trials").exists()  # no list of the earlier run's clips


def test_trials_pair_no_two_readings_of_one_sentence(tmp_path, monkeypatch):
    """Common Voice speakers read from one pool of sentences: the trial lists are text-independent."""
    texts = []

    def recording(*args, utt2text, **kwargs):
        texts.append(utt2text)
        return balanced_trials(*args, utt2text=utt2text, **kwargs)

    monkeypatch.setattr(commonvoice, "balanced_trials", recording)
    prepare_commonvoice(make_commonvoice(tmp_path / "cv"), tmp_path / "data", nj=1)
    dev = read_table(tmp_path / "data" / "dev" / "text")
    assert dev in texts


def test_empty_client_id_names_the_line(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    _append_row(root / "fr" / "validated.tsv", " ", "common_voice_fr_1.mp3", "Bonjour à tous.")
    with pytest.raises(DataError, match=r"fr/validated.tsv:10: client_id ' ' is empty or contains whitespace"):
        prepare_commonvoice(root, tmp_path / "data", languages=["fr"], nj=1)


def test_clip_listed_under_two_client_ids_is_refused(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    _append_row(root / "fr" / "validated.tsv", CV_CLIENTS["F"], "common_voice_fr_1.mp3", "Bonjour à tous.")
    with pytest.raises(DataError, match=r"fr/validated.tsv:10: clip common_voice_fr_1.mp3 listed twice "
                                        r"\(first: .*fr/validated.tsv:2\)"):
        prepare_commonvoice(root, tmp_path / "data", languages=["fr"], nj=1)


def test_run_sh_stage_1_validates_the_mp3_dirs(tmp_path):
    root = make_commonvoice(tmp_path / "cv")
    recipe = copy_recipe("commonvoice", tmp_path / "checkout")
    done = run_recipe_script(recipe, "run.sh", "--stage", "1", "--stop_stage", "1", "--data_opts", f"--root {root}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data/train: OK, 6 utterances" in done.stdout
    assert (recipe / "exp" / "stage_times.tsv").read_text().startswith("1\tdata\t")
