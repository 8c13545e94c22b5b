"""mTEDx preparation on a fabricated copy of the public layout: segments and maps checked by hand."""

from __future__ import annotations

import logging

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


def _test_txt(root, name: str):
    return root / "it-en" / "data" / "test" / "txt" / name


def test_non_utf8_text_names_the_line(tmp_path):
    root = make_mtedx(tmp_path / "mtedx")
    italian = _test_txt(root, "test.it")
    italian.write_bytes(italian.read_text().encode("latin-1"))  # line 4: "La musica è universale."
    with pytest.raises(DataError, match=r"test.it:4: not UTF-8 text \(byte 0xe8 at column 11\)"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])
    italian.write_bytes(b"\xef\xbb\xbf" + italian.read_text(encoding="latin-1").encode())  # a BOM: not text
    prepare_mtedx(root, tmp_path / "data", splits=["test"])
    assert read_table(tmp_path / "data" / "test_it_en" / "text")["CqQ4d8SzQDc_0000"] == "Buongiorno a tutti."
    yaml_path = _test_txt(root, "test.yaml")
    yaml_path.write_bytes(yaml_path.read_bytes().replace(b"0.75", b"0.7\xb5"))
    with pytest.raises(DataError, match=r"test.yaml:2: not UTF-8 text"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])


def test_offset_that_is_not_a_number_names_the_line(tmp_path):
    root = make_mtedx(tmp_path / "mtedx")
    yaml_path = _test_txt(root, "test.yaml")
    yaml_path.write_text(yaml_path.read_text().replace("offset: 3.0", "offset: n/a"))
    with pytest.raises(DataError, match=r"test.yaml:2: offset 'n/a' / duration '0.75' are not numbers"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])
    yaml_path.write_text(yaml_path.read_text().replace("offset: n/a", "offset: nan"))
    with pytest.raises(DataError, match=r"test.yaml:2: offset nan / duration 0.75 invalid"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])


def test_segments_with_empty_text_are_left_out_with_a_warning(tmp_path, caplog):
    root = make_mtedx(tmp_path / "mtedx")
    english, italian = _test_txt(root, "test.en"), _test_txt(root, "test.it")
    lines = english.read_text().splitlines()
    write_lines(english, [" "] + lines[1:4] + [""])  # CqQ4d8SzQDc_0000 and 0u7tTptBo9I_0001
    lines = italian.read_text().splitlines()
    write_lines(italian, lines[:2] + ["\t"] + lines[3:])  # CqQ4d8SzQDc_0001
    with caplog.at_level(logging.WARNING, logger="uattr.corpora.mtedx"):
        prepare_mtedx(root, tmp_path / "data", splits=["test"])
    kept = ["0u7tTptBo9I_0000", "CqQ4d8SzQDc_0002"]  # the others keep their ids (numbered before the cut)
    for name in ("test_it_en", "test_it_en_text"):
        assert sorted(read_table(tmp_path / "data" / name / "segments")) == kept
    assert (tmp_path / "data" / "test_it_en" / "query2ref").read_text().splitlines() == [f"{u} {u}" for u in kept]
    warnings = [record.getMessage() for record in caplog.records]
    assert any(m.endswith("test.en:1: empty text; segment CqQ4d8SzQDc_0000 left out") for m in warnings)
    assert any(m.endswith("test.it:3: empty text; segment CqQ4d8SzQDc_0001 left out") for m in warnings)
    assert any(m.endswith("test.en:5: empty text; segment 0u7tTptBo9I_0001 left out") for m in warnings)
    assert any(m.endswith("test.yaml: 3 of 5 segments left out for an empty transcript or translation")
               for m in warnings)


def test_speaker_other_than_the_talk_prefixes_the_ids(tmp_path):
    root = make_mtedx(tmp_path / "mtedx")
    yaml_path = _test_txt(root, "test.yaml")
    yaml_path.write_text(yaml_path.read_text().replace("speaker_id: CqQ4d8SzQDc", "speaker_id: spk.7"))
    prepare_mtedx(root, tmp_path / "data", splits=["test"])
    utt2spk = (tmp_path / "data" / "test_it_en" / "utt2spk").read_text().splitlines()
    assert utt2spk[2:] == [f"spk.7-CqQ4d8SzQDc_000{i} spk.7" for i in range(3)]
    rows = [line.split() for line in utt2spk]
    assert rows == sorted(rows, key=lambda row: (row[1], row[0]))  # Kaldi: sorted by speaker as well
    yaml_path.write_text(yaml_path.read_text().replace("speaker_id: spk.7", "speaker_id: Ada Lovelace"))
    prepare_mtedx(root, tmp_path / "data2", splits=["test"])  # a name with a space: one Kaldi token
    utt2spk = (tmp_path / "data2" / "test_it_en" / "utt2spk").read_text().splitlines()
    assert utt2spk[2:] == [f"Ada_Lovelace-CqQ4d8SzQDc_000{i} Ada_Lovelace" for i in range(3)]
