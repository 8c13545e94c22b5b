"""VoxPopuli interpretation pairs on a fabricated copy of what the release's scripts write."""

from __future__ import annotations

import pytest

from corpus_layouts import (
    VOXPOPULI_FR,
    assert_valid_data_dirs,
    make_voxpopuli,
    prepare_in_recipe_copy,
    retrieval_task_lines,
    voxpopuli_target_id,
    voxpopuli_target_text,
)
from uattr.corpora.voxpopuli import prepare_voxpopuli
from uattr.errors import DataError
from uattr.fileio import read_table

TEST_SOURCES = [  # <speaker>-<segment id>: Kaldi wants utterances prefixed by their speaker
    "124737-20180313-0900-PLENARY-15-fr_20180313-15:26:37_3",
    "124737-20190115-0900-PLENARY-7-fr_20190115-10:02:11_0",
    "96781-20180313-0900-PLENARY-15-fr_20180313-15:30:02_1",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The recipe's local/data.sh run once on the miniature VoxPopuli."""
    tmp = tmp_path_factory.mktemp("voxpopuli")
    root = make_voxpopuli(tmp / "voxpopuli")
    return prepare_in_recipe_copy("voxpopuli", root, tmp / "checkout"), root


def test_data_dirs_are_valid(prepared):
    data, _ = prepared
    assert_valid_data_dirs(data, ("test_fr_en_source", "test_fr_en_target", "dev_fr_en_source", "dev_fr_en_target"))


def test_pairs_follow_the_split_of_their_source(prepared):
    data, root = prepared
    assert sorted(read_table(data / "test_fr_en_source" / "wav.scp")) == TEST_SOURCES  # not the train pair
    assert read_table(data / "dev_fr_en_source" / "wav.scp") == {
        "28260-20190115-0900-PLENARY-7-fr_20190115-10:05:40_2":
            str(root / "transcribed_data/fr/2019/20190115-0900-PLENARY-7-fr_20190115-10:05:40_2.ogg"),
    }
    assert read_table(data / "test_fr_en_target" / "wav.scp")["20180313-0900-PLENARY-15-en_20180313-15:26:37_3"] == (
        str(root / "transcribed_data/fr/en/2018/20180313-0900-PLENARY-15-en_20180313-15:26:37_3.ogg")
    )
    assert read_table(data / "test_fr_en_source" / "text")[TEST_SOURCES[2]] == "Nous devons agir « maintenant »."
    utt2spk = [line.split() for line in (data / "test_fr_en_source" / "utt2spk").read_text().splitlines()]
    assert utt2spk == [[utt, utt.split("-")[0]] for utt in TEST_SOURCES]
    assert utt2spk == sorted(utt2spk, key=lambda row: (row[1], row[0]))  # Kaldi's validate_data_dir.sh checks it
    assert not (data / "test_fr_en_target" / "text").exists()  # the targets have no human transcript


def test_query2ref_maps_each_source_to_its_interpretation(prepared):
    data, _ = prepared
    assert (data / "test_fr_en_source" / "query2ref").read_text().splitlines() == [
        f"{TEST_SOURCES[0]} 20180313-0900-PLENARY-15-en_20180313-15:26:37_3",
        f"{TEST_SOURCES[1]} 20190115-0900-PLENARY-7-en_20190115-10:02:11_0",
        f"{TEST_SOURCES[2]} 20180313-0900-PLENARY-15-en_20180313-15:30:02_1",
    ]
    tasks = retrieval_task_lines(data)
    assert tasks == [
        "voxpopuli_dev_fr_en_s2s semantic dev_fr_en_source speech dev_fr_en_target data/dev_fr_en_source/query2ref",
        "voxpopuli_test_fr_en_s2s semantic test_fr_en_source speech test_fr_en_target data/test_fr_en_source/query2ref",
    ]


def test_missing_interpretation_audio_names_the_line(tmp_path):
    root = make_voxpopuli(tmp_path / "voxpopuli")
    source = VOXPOPULI_FR[1][0]
    target = voxpopuli_target_id(source)
    (root / "transcribed_data" / "fr" / "en" / "2018" / f"{target}.ogg").unlink()
    with pytest.raises(DataError, match=rf"en/s2s.tsv:3: audio of '{target}' not found"):
        prepare_voxpopuli(root, tmp_path / "data", splits=["test"])
    with pytest.raises(DataError, match="asr_test.tsv: not found"):
        prepare_voxpopuli(root, tmp_path / "data", pairs=["de-en"], splits=["test"])


def test_transcribed_targets_come_from_s2s_ref_with_annotated_target(tmp_path):
    root = make_voxpopuli(tmp_path / "voxpopuli", annotated_target=True)
    with pytest.raises(DataError, match=r"en/s2s.tsv: not found .*s2s_ref.tsv is there: prepare with "
                                        r"--annotated-target"):
        prepare_voxpopuli(root, tmp_path / "data", splits=["test"])
    data = prepare_in_recipe_copy("voxpopuli", root, tmp_path / "checkout", "--annotated_target", "true")
    assert read_table(data / "test_fr_en_target" / "text") == {
        voxpopuli_target_id(source): voxpopuli_target_text(number)
        for number, (source, split, _, _) in enumerate(VOXPOPULI_FR) if split == "test"
    }
    plain = make_voxpopuli(tmp_path / "plain")
    with pytest.raises(DataError, match=r"en/s2s_ref.tsv: not found .*s2s.tsv is there: prepare without "
                                        r"--annotated-target"):
        prepare_voxpopuli(plain, tmp_path / "data", splits=["test"], annotated_target=True)
