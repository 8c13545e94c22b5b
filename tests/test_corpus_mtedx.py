"""mTEDx preparation on a fabricated copy of the public layout: segments and maps checked by hand."""

from __future__ import annotations

import pytest

from corpus_layouts import assert_valid_data_dirs, make_mtedx, prepare_in_recipe_copy, retrieval_task_lines, write_lines
from uattr.corpora.mtedx import prepare_mtedx
from uattr.data.audio import AudioSource
from uattr.errors import DataError
from uattr.fileio import read_table

# corpus_layouts.MTEDX_TEST by hand: each talk's segments numbered by offset, end = offset + duration.
EXPECTED_SEGMENTS = [
    "0u7tTptBo9I_0000 0u7tTptBo9I 0.3 2.5",
    "0u7tTptBo9I_0001 0u7tTptBo9I 2.8 3.4",
    "CqQ4d8SzQDc_0000 CqQ4d8SzQDc 0.5 1.75",
    "CqQ4d8SzQDc_0001 CqQ4d8SzQDc 1.9 2.9",  # the third YAML item: it starts before the second
    "CqQ4d8SzQDc_0002 CqQ4d8SzQDc 3 3.75",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The recipe's local/data.sh run once on the miniature mTEDx."""
    tmp = tmp_path_factory.mktemp("mtedx")
    root = make_mtedx(tmp / "mtedx")
    return prepare_in_recipe_copy("mtedx", root, tmp / "checkout"), root


def test_data_dirs_are_valid(prepared):
    data, _ = prepared
    assert_valid_data_dirs(data, ("test_it_en", "test_it_en_text", "valid_it_en", "valid_it_en_text"))


def test_segments_from_the_yaml_offsets_and_durations(prepared):
    data, root = prepared
    assert (data / "test_it_en" / "segments").read_text().splitlines() == EXPECTED_SEGMENTS
    assert read_table(data / "test_it_en" / "wav.scp") == {
        talk: str(root / "it-en/data/test/wav" / f"{talk}.flac") for talk in ("0u7tTptBo9I", "CqQ4d8SzQDc")
    }  # the YAML names <talk>.wav; the release ships FLAC
    source = AudioSource(data / "test_it_en")
    assert len(source.load("CqQ4d8SzQDc_0001")) == 16000  # 1.9 s to 2.9 s at 16 kHz


def test_texts_follow_the_segments(prepared):
    data, _ = prepared
    assert read_table(data / "test_it_en" / "text")["CqQ4d8SzQDc_0001"] == "Oggi parliamo di scienza."
    assert read_table(data / "test_it_en" / "text.en")["CqQ4d8SzQDc_0002"] == "Thank you."
    assert read_table(data / "test_it_en_text" / "text")["CqQ4d8SzQDc_0001"] == "Today we talk about science."
    assert set(read_table(data / "test_it_en_text" / "utt2lang").values()) == {"en"}
    assert read_table(data / "test_it_en" / "utt2spk")["0u7tTptBo9I_0001"] == "0u7tTptBo9I"


def test_query2ref_counts_identical_translations_as_relevant(prepared):
    data, _ = prepared
    assert (data / "test_it_en" / "query2ref").read_text().splitlines() == [
        "0u7tTptBo9I_0000 0u7tTptBo9I_0000",
        "0u7tTptBo9I_0001 0u7tTptBo9I_0001 CqQ4d8SzQDc_0002",  # both "Thank you."
        "CqQ4d8SzQDc_0000 CqQ4d8SzQDc_0000",
        "CqQ4d8SzQDc_0001 CqQ4d8SzQDc_0001",
        "CqQ4d8SzQDc_0002 0u7tTptBo9I_0001 CqQ4d8SzQDc_0002",
    ]
    tasks = retrieval_task_lines(data)
    assert tasks == [
        "mtedx_valid_it_en_s2t semantic valid_it_en teacher valid_it_en_text data/valid_it_en/query2ref",
        "mtedx_test_it_en_s2t semantic test_it_en teacher test_it_en_text data/test_it_en/query2ref",
    ]


def test_misaligned_text_is_an_error(tmp_path):
    root = make_mtedx(tmp_path / "mtedx")
    english = root / "it-en" / "data" / "test" / "txt" / "test.en"
    write_lines(english, english.read_text().splitlines()[:-1])
    with pytest.raises(DataError, match=r"test.en: 4 lines, but .*test.yaml lists 5 segments"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])
    with pytest.raises(DataError, match="must look like <src>-<tgt>"):
        prepare_mtedx(root, tmp_path / "data", pairs=["iten"])
