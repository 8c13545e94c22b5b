"""uattr.fileio readers: blank lines skipped with line numbers kept, each problem a DataError naming the file."""

from __future__ import annotations

import pytest

from uattr.errors import DataError
from uattr.fileio import iter_fields, read_json


def test_read_json_and_its_errors(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"eer": [0.9, 1.1]}\n')
    assert read_json(path) == {"eer": [0.9, 1.1]}
    with pytest.raises(DataError, match=r"missing\.json: no such file"):
        read_json(tmp_path / "missing.json")
    path.write_text('{\n  "eer": 0.9,\n  oops\n}\n')
    with pytest.raises(DataError, match=r"metrics\.json:3: invalid JSON: Expecting property name .* \(column 3\)"):
        read_json(path)
    path.write_bytes(b'{"eer": "\xff"}')
    with pytest.raises(DataError, match=r"metrics\.json: cannot read: .*utf-8"):
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
