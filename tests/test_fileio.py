"""uattr.fileio: readers (blank lines skipped, line numbers kept, each problem a DataError naming the file) and
atomic writers."""

from __future__ import annotations

import stat

import pytest

from uattr import fileio
from uattr.config import load_yaml
from uattr.errors import ConfigError, DataError
from uattr.fileio import (
    atomic_dir,
    atomic_path,
    atomic_write,
    iter_fields,
    iter_table,
    parse_float,
    parse_int,
    read_json,
    read_table,
    read_text,
)


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


def test_a_yaml_key_given_twice_is_an_error(tmp_path) -> None:
    """PyYAML keeps the last of two equal keys: a second trainer section replaced the first without a word."""
    config = tmp_path / "train.yaml"
    config.write_text("trainer:\n  max_steps: 4\ndata: {train: a, train: b}\n")
    with pytest.raises(ConfigError, match=r"train\.yaml:3: key 'train' is given twice in one mapping \(first on li"):
        load_yaml(config)
    config.write_text("trainer:\n  max_steps: 4\ndata: {}\ntrainer:\n  max_steps: 6\n")
    with pytest.raises(ConfigError, match=r"train\.yaml:4: key 'trainer' is given twice .*\(first on line 1\)"):
        load_yaml(config)
    config.write_text("a: &base {x: 1}\nb: {<<: *base, y: 2}\n")  # YAML merge keys still work
    assert load_yaml(config) == {"a": {"x": 1}, "b": {"x": 1, "y": 2}}


def test_a_yaml_syntax_error_is_one_line_naming_its_position(tmp_path) -> None:
    """PyYAML's own message spans three lines and names the file "<unicode string>"."""
    config = tmp_path / "train.yaml"
    config.write_text("trainer:\n  max_steps: 4\n lr: [\n")
    with pytest.raises(ConfigError) as error:
        load_yaml(config)
    assert str(error.value) == (f"{config}:3:2: invalid YAML: while parsing a block mapping; expected <block end>, "
                                "but found '<block mapping start>'")


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


def test_atomic_dir_keeps_the_old_folder_when_the_new_one_cannot_go_in(tmp_path, monkeypatch) -> None:
    model = tmp_path / "model"
    with atomic_dir(model) as staging:
        (staging / "weights").write_text("v1")
    real_replace = fileio.os.replace

    def failing_replace(source, destination):
        if ".model." in str(source) and ".old." not in str(source) and str(destination) == str(model):
            raise KeyboardInterrupt  # Ctrl-C between moving the old folder aside and swapping the new one in
        real_replace(source, destination)

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(model) as staging:
            (staging / "weights").write_text("v2")
    assert (model / "weights").read_text() == "v1"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_outputs_get_the_permissions_of_new_files(tmp_path, umask, monkeypatch) -> None:
    """Temporary files and folders are private (0600, 0700); what they become follows the umask, as a file opened
    for writing would, so that the other users of a shared cluster can read data lists, tables and models."""
    monkeypatch.setattr(fileio, "_umask", lambda: umask)
    with atomic_write(tmp_path / "wav.scp") as handle:
        handle.write("u1 a.wav\n")
    with atomic_path(tmp_path / "model.safetensors") as staging:
        staging.write_bytes(b"weights")
    with atomic_dir(tmp_path / "model") as staging:
        (staging / "config.yaml").write_text("{}")
    assert stat.S_IMODE((tmp_path / "wav.scp").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o777 & ~umask


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.safetensors") as staging:
            staging.write_bytes(b"ha")
            raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes() == b"old"


def test_a_byte_order_mark_at_the_start_is_not_text(tmp_path) -> None:
    """Saved by spreadsheet tools and some editors: it would otherwise stick to the first id."""
    table = tmp_path / "utt2spk"
    table.write_bytes(b"\xef\xbb\xbfu1 s\nu2 s\n")
    assert read_table(table) == {"u1": "s", "u2": "s"}
    (tmp_path / "m.json").write_bytes(b'\xef\xbb\xbf{"eer": 1.5}')
    assert read_json(tmp_path / "m.json") == {"eer": 1.5}
    table.write_bytes(b"u1 s\n\xef\xbb\xbfu2 s\n")  # only at the start: elsewhere it is a character of the text
    assert list(read_table(table)) == ["u1", "\ufeffu2"]


@pytest.mark.parametrize("text", ["1", "-1.5", "+.5", "5.", "1e-3", "1E+3", "nan", "inf", "-Infinity"])
def test_parse_float_takes_what_tools_write(text):
    assert parse_float(text) == pytest.approx(float(text), nan_ok=True)


@pytest.mark.parametrize("text", ["1_0", "٣", "0x10", "", " 1", "1e", "e3", "1.2.3"])
def test_parse_float_refuses_what_float_would_also_take_or_refuse(text):
    with pytest.raises(ValueError):
        parse_float(text)


def test_parse_int_takes_plain_digits_only():
    assert [parse_int(text) for text in ("0", "-7", "+12")] == [0, -7, 12]
    for text in ("4_000", "٣", "1.0", ""):
        with pytest.raises(ValueError):
            parse_int(text)
