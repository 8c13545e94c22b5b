"""uattr.fileio.read_json: each problem of a JSON input is a DataError naming the file (and line, column)."""

from __future__ import annotations

import pytest

from uattr.errors import DataError
from uattr.fileio import read_json


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
