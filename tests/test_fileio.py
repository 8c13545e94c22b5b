"""uattr.fileio readers: blank lines skipped with line numbers kept, each problem a DataError naming the file."""

from __future__ import annotations

import pytest

from uattr.config import load_yaml
from uattr.errors import ConfigError, DataError
from uattr.fileio import atomic_dir, iter_fields, iter_table, read_json, read_text


def test_read_json_and_its_errors(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"eer": [0.9, 1.1]}\n')
    assert read_json(path) == {"eer": [0.9, 1.1]}
    with pytest.raises(DataError, match=r"missing\.json: no such file"):
        read_json(tmp_path / "missing.json")
    path.write_text('{\n  "eer": 0.9,\n  oops\n}\n')
    with pytest.raises(DataError, match=r"metrics\.json:3: invalid JSON: Expecting property name .* \(column 3\)"):
        read_json(path)
    path.write_bytes(b'{\n"eer": "\xff"}')
    with pytest.raises(DataError, match=r"metrics\.json:2: not UTF-8 text \(byte 0xff\)"):
        read_json(path)


def test_iter_fields_skips_blank_lines_and_keeps_numbers(tmp_path) -> None:
    path = tmp_path / "trials"
    path.write_text("a b target\n\n  \t\n c  d nontarget \r\n")
    assert list(iter_fields(path)) == [
        (1, "a b target", ["a", "b", "target"]),
        (4, "c  d nontarget", ["c", "d", "nontarget"]),
    ]
    with pytest.raises(DataError, match=r"nope: no such trial list"):
        list(iter_fields(tmp_path / "nope", "trial list"))


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path) -> None:
    """A Latin-1 file (a common export of spreadsheets) is a DataError naming the line, never a UnicodeDecodeError."""
    path = tmp_path / "text"
    path.write_bytes("u1 ok\nu2 caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"text:2: not UTF-8 text \(byte 0xe9 at column 7\)"):
        list(iter_table(path))
    with pytest.raises(DataError, match=r"text:2: not UTF-8 text \(byte 0xe9 at column 7\)"):
        list(iter_fields(path))
    with pytest.raises(DataError, match=r"text:2: not UTF-8 text \(byte 0xe9\)"):
        read_text(path)
    with pytest.raises(DataError, match=r"nope: no such notes file"):
        read_text(tmp_path / "nope", "notes file")
    config = tmp_path / "train.yaml"
    config.write_bytes("# r\u00e9glages\ntrainer: {}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"train\.yaml:1: not UTF-8 text"):
        load_yaml(config)


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path) -> None:
    model = tmp_path / "model"
    with atomic_dir(model) as staging:
        (staging / "weights").write_text("v1")
    assert (model / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError):  # interrupted mid-save: the complete old folder stays
        with atomic_dir(model) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("interrupted")
    assert (model / "weights").read_text() == "v1"
    with atomic_dir(model) as staging:
        (staging / "config").write_text("v2")
    assert sorted(path.name for path in model.iterdir()) == ["config"]  # nothing of the old folder is mixed in
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]  # no staging folder is left behind
