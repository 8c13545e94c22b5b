"""FLEURS preparation on a fabricated copy of the public layout: many-to-one maps checked by hand."""

from __future__ import annotations

import pytest

from corpus_layouts import (
    assert_valid_data_dirs,
    copy_recipe,
    make_fleurs,
    prepare_in_recipe_copy,
    retrieval_task_lines,
    run_recipe_script,
    write_lines,
)
from uattr.corpora.fleurs import prepare_fleurs
from uattr.errors import DataError
from uattr.fileio import read_table


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The recipe's local/data.sh run once on the miniature FLEURS."""
    tmp = tmp_path_factory.mktemp("fleurs")
    root = make_fleurs(tmp / "fleurs")
    return prepare_in_recipe_copy("fleurs", root, tmp / "checkout"), root


def test_data_dirs_are_valid(prepared):
    data, _ = prepared
    names = sorted(path.name for path in data.iterdir() if path.is_dir())
    assert names == ["dev_de_de", "dev_en_us", "dev_en_us_text", "dev_fr_fr",
                     "test_de_de", "test_en_us", "test_en_us_text", "test_fr_fr"]
    assert_valid_data_dirs(data, names)


def test_queries_without_an_english_counterpart_are_left_out(prepared):
    data, root = prepared
    assert read_table(data / "test_fr_fr" / "text") == {
        "fr_fr-101-2001": "Le ciel est bleu.",
        "fr_fr-102-2002": "Les chats dorment beaucoup.",
        "fr_fr-102-2003": "Les chats dorment beaucoup.",
    }  # 2004.wav reads sentence 104, which has no English recording
    assert read_table(data / "test_fr_fr" / "wav.scp")["fr_fr-101-2001"] == str(root / "fr_fr/audio/test/2001.wav")
    assert set(read_table(data / "test_fr_fr" / "utt2lang").values()) == {"fr_fr"}


def test_speech_to_text_map_and_gallery(prepared):
    data, root = prepared
    assert (data / "test_fr_fr" / "query2ref_text").read_text().splitlines() == [
        "fr_fr-101-2001 en_us-101",
        "fr_fr-102-2002 en_us-102",
        "fr_fr-102-2003 en_us-102",
    ]
    assert (data / "test_de_de" / "query2ref_text").read_text().splitlines() == [
        "de_de-101-3001 en_us-101",
        "de_de-103-3002 en_us-103",
    ]
    # One gallery entry per English sentence, whatever the number of its recordings.
    assert read_table(data / "test_en_us_text" / "text") == {
        "en_us-101": "The sky is blue.", "en_us-102": "Cats sleep a lot.", "en_us-103": "Rivers flow to the sea.",
    }
    assert read_table(data / "test_en_us_text" / "wav.scp")["en_us-101"] == str(root / "en_us/audio/test/1001.wav")


def test_speech_to_speech_map_lists_every_english_recording(prepared):
    data, _ = prepared
    assert (data / "test_fr_fr" / "query2ref_speech").read_text().splitlines() == [
        "fr_fr-101-2001 en_us-101-1001 en_us-101-1002",
        "fr_fr-102-2002 en_us-102-1003",
        "fr_fr-102-2003 en_us-102-1003",
    ]
    assert not (data / "test_en_us" / "query2ref_speech").exists()  # English speech is the gallery itself


def test_retrieval_tasks_per_language(prepared):
    data, _ = prepared
    tasks = retrieval_task_lines(data)
    assert "fleurs_test_fr_fr_s2t semantic test_fr_fr teacher test_en_us_text data/test_fr_fr/query2ref_text" in tasks
    assert "fleurs_test_fr_fr_s2s semantic test_fr_fr speech test_en_us data/test_fr_fr/query2ref_speech" in tasks
    assert "fleurs_dev_de_de_s2s semantic dev_de_de speech dev_en_us data/dev_de_de/query2ref_speech" in tasks
    assert len(tasks) == 2 * (2 + 2 + 1)  # per split: de and fr both ways, English speech → text


def test_tsv_errors_name_the_line(tmp_path):
    root = make_fleurs(tmp_path / "fleurs")
    lines = (root / "fr_fr" / "test.tsv").read_text().splitlines()
    write_lines(root / "fr_fr" / "test.tsv", lines[:1] + ["102\t2002.wav\tonly three fields"])
    with pytest.raises(DataError, match=r"fr_fr/test.tsv:2: expected 7 tab-separated fields"):
        prepare_fleurs(root, tmp_path / "data", splits=["test"])
    write_lines(root / "fr_fr" / "test.tsv", lines[:1] + [lines[1].replace("2002.wav", "9999.wav")])
    with pytest.raises(DataError, match=r"fr_fr/test.tsv:2: audio file .*9999.wav not found"):
        prepare_fleurs(root, tmp_path / "data", splits=["test"])


def test_list_encoding_byte_order_mark_and_bad_bytes(tmp_path):
    root = make_fleurs(tmp_path / "fleurs")
    german = root / "de_de" / "test.tsv"
    german.write_bytes(b"\xef\xbb\xbf" + german.read_bytes())  # before the first id of a headerless list
    prepare_fleurs(root, tmp_path / "data", splits=["test"])
    assert sorted(read_table(tmp_path / "data" / "test_de_de" / "text")) == ["de_de-101-3001", "de_de-103-3002"]
    german.write_bytes(german.read_bytes().replace("ü".encode(), b"\xfc"))  # line 2: "Flüsse fließen ins Meer."
    with pytest.raises(DataError, match=r"de_de/test.tsv:2: not UTF-8 text \(byte 0xfc at column 16\)"):
        prepare_fleurs(root, tmp_path / "data", splits=["test"])


def test_run_sh_passes_a_quoted_language_list_through_data_opts(tmp_path):
    """The README's form: --data_opts "--languages 'fr_fr de_de'" reaches local/data.sh as one list of two."""
    root = make_fleurs(tmp_path / "fleurs")
    recipe = copy_recipe("fleurs", tmp_path / "checkout")
    done = run_recipe_script(recipe, "run.sh", "--stop_stage", "1",
                             "--data_opts", f"--root {root} --languages 'fr_fr de_de' --splits test")
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (recipe / "data").iterdir() if path.is_dir()) == [
        "test_de_de", "test_en_us", "test_en_us_text", "test_fr_fr"]
