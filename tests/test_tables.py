"""Embedding tables: round trip, resumable writer protocol, strict reader, merging of split jobs."""

from __future__ import annotations

import json

import kaldiio
import numpy as np
import pytest

from uattr.data.tables import (
    EmbeddingTableWriter,
    keep_current_table,
    merge_tables,
    read_embedding_table,
    read_table_meta,
    table_is_complete,
)
from uattr.errors import ConfigError, DataError

META = {"teacher": "toy", "model": "m1", "normalized": False}


def vectors(ids: list[str], dim: int = 4) -> np.ndarray:
    """Distinct, reproducible vectors per id."""
    return np.stack([np.arange(dim, dtype=np.float32) + 10 * int(key.split("-")[-1]) for key in ids])


def write_table(out, batches: list[list[str]], meta=META):
    with EmbeddingTableWriter(out, meta=meta) as writer:
        for ids in batches:
            writer.write(ids, vectors(ids))
    return out


def test_round_trip_sorted_scp_and_meta(tmp_path):
    out = write_table(tmp_path / "t", [["u-3", "u-1"], ["u-2"]])
    assert table_is_complete(out)
    table = read_embedding_table(out / "emb.scp")
    assert list(table) == ["u-1", "u-2", "u-3"]
    for key, value in table.items():
        np.testing.assert_array_equal(value, vectors([key])[0])
        assert value.dtype == np.float32
    meta = read_table_meta(out)
    assert meta == {**META, "dim": 4, "num_utterances": 3, "provenance": ["data"]}
    assert read_table_meta(out / "meta.json") == meta
    assert sorted(p.name for p in out.iterdir()) == ["emb.ark", "emb.scp", "meta.json"]


def test_single_utterance_writes(tmp_path):
    with EmbeddingTableWriter(tmp_path / "t", meta=META) as writer:
        writer.write("u-2", vectors(["u-2"])[0])
        writer.write("u-1", vectors(["u-1"])[0])
    table = read_embedding_table(tmp_path / "t" / "emb.scp")
    assert list(table) == ["u-1", "u-2"]
    np.testing.assert_array_equal(table["u-2"], vectors(["u-2"])[0])


def test_nothing_final_before_close(tmp_path):
    writer = EmbeddingTableWriter(tmp_path / "t", meta=META)
    writer.write(["u-1"], vectors(["u-1"]))
    assert not (tmp_path / "t" / "emb.scp").exists()
    assert not (tmp_path / "t" / "meta.json").exists()
    assert not table_is_complete(tmp_path / "t")


def test_resume_after_interruption_keeps_done_ids_and_drops_torn_batch(tmp_path):
    out = tmp_path / "t"
    first = EmbeddingTableWriter(out, meta=META)
    first.write(["u-1", "u-2"], vectors(["u-1", "u-2"]))
    # An interrupted second batch: ark bytes that never got their scp lines, and half an scp line.
    with open(out / "emb.ark", "ab") as ark:
        ark.write(b"u-3 \0BFV garbage")
    with open(out / "emb.scp.part", "a") as part:
        part.write("u-3 somewhere.ark:1")

    resumed = EmbeddingTableWriter(out, meta=META)
    assert resumed.done_ids == {"u-1", "u-2"}
    resumed.write(["u-3", "u-4"], vectors(["u-3", "u-4"]))
    resumed.close()

    expected = write_table(tmp_path / "clean", [["u-1", "u-2"], ["u-3", "u-4"]])
    got, want = read_embedding_table(out / "emb.scp"), read_embedding_table(expected / "emb.scp")
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    # The torn bytes were cut off: the resumed ark is byte-identical to the uninterrupted one.
    assert (out / "emb.ark").read_bytes() == (expected / "emb.ark").read_bytes()


def test_resume_with_other_settings_is_refused(tmp_path):
    EmbeddingTableWriter(tmp_path / "t", meta={**META, "data": "data/dev"}).write(["u-1"], vectors(["u-1"]))
    with pytest.raises(DataError, match="other settings.*model"):
        EmbeddingTableWriter(tmp_path / "t", meta={**META, "data": "data/dev", "model": "m2"})
    # Where the data dir was found is provenance, not a setting: 'data/dev/' or an absolute path resumes.
    resumed = EmbeddingTableWriter(tmp_path / "t", meta={**META, "data": str(tmp_path / "data/dev/")})
    assert resumed.done_ids == {"u-1"}
    resumed.close()
    assert read_table_meta(tmp_path / "t")["data"] == str(tmp_path / "data/dev/")


def test_writer_refuses_a_complete_table(tmp_path):
    write_table(tmp_path / "t", [["u-1"]])
    with pytest.raises(DataError, match="already complete"):
        EmbeddingTableWriter(tmp_path / "t", meta=META)


def test_a_complete_table_of_other_utterances_is_removed_to_be_written_again(tmp_path, caplog):
    out = write_table(tmp_path / "t", [["u-1", "u-2"]])
    assert keep_current_table(out, ["u-2", "u-1"])
    assert not keep_current_table(tmp_path / "never-written", ["u-1"])
    with caplog.at_level("WARNING"):
        assert not keep_current_table(out, ["u-1", "u-2", "u-3"])
    assert "written for other utterances (1 missing, 0 no longer wanted; e.g. 'u-3')" in caplog.text
    assert not table_is_complete(out) and not (out / "emb.ark").exists()
    write_table(out, [["u-1", "u-2", "u-3"]])
    assert keep_current_table(out, ["u-1", "u-2", "u-3"])


def test_part_files_left_by_an_interrupted_close_go_with_a_stale_table(tmp_path):
    """close() writes meta.json before it drops the part files: if it stopped there and the table is then found
    stale, a new writer must start afresh, not resume from part files that point into the removed ark."""
    out = write_table(tmp_path / "t", [["u-1", "u-2"]])
    (out / "emb.scp.part").write_text((out / "emb.scp").read_text())
    (out / "meta.json.part").write_text(json.dumps(META))
    assert not keep_current_table(out, ["u-3"])
    assert list(out.iterdir()) == []
    with EmbeddingTableWriter(out, meta=META) as writer:
        assert writer.done_ids == frozenset()
        writer.write(["u-3"], vectors(["u-3"]))
    assert list(read_embedding_table(out / "emb.scp")) == ["u-3"]


def test_writer_rejects_nan_duplicates_and_dimension_changes(tmp_path):
    writer = EmbeddingTableWriter(tmp_path / "t", meta=META)
    bad = vectors(["u-1", "u-2"])
    bad[1, 2] = np.nan
    with pytest.raises(DataError, match="'u-2'"):
        writer.write(["u-1", "u-2"], bad)
    assert writer.done_ids == frozenset()
    writer.write(["u-1"], vectors(["u-1"]))
    with pytest.raises(DataError, match="'u-1' is written twice"):
        writer.write(["u-1"], vectors(["u-1"]))
    with pytest.raises(DataError, match="3-d vectors for a 4-d table"):
        writer.write(["u-5"], vectors(["u-5"], dim=3))


def save_raw(tmp_path, entries: dict[str, np.ndarray]):
    """A table written with kaldiio directly, as another tool would."""
    ark, scp = tmp_path / "raw.ark", tmp_path / "raw.scp"
    kaldiio.save_ark(str(ark), entries, scp=str(scp))
    return scp


def test_reader_names_the_id_of_nan_embeddings(tmp_path):
    scp = save_raw(tmp_path, {"a": np.ones(3, np.float32), "b": np.array([1, np.nan, 0], np.float32)})
    with pytest.raises(DataError, match=r"raw\.scp:2: the embedding of 'b' has NaN"):
        read_embedding_table(scp)
    scp = save_raw(tmp_path, {"c": np.array([np.inf, 0, 0], np.float32)})
    with pytest.raises(DataError, match="'c' has NaN or infinite"):
        read_embedding_table(scp)


def test_reader_reports_file_and_line(tmp_path):
    scp = save_raw(tmp_path, {"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)})
    lines = scp.read_text().splitlines()
    with pytest.raises(DataError, match="no such file"):
        read_embedding_table(tmp_path / "absent.scp")
    scp.write_text(f"{lines[0]}\nb\n")
    with pytest.raises(DataError, match=r"raw\.scp:2: id 'b' has no ark location"):
        read_embedding_table(scp)
    scp.write_text(f"{lines[0]}\n{lines[0]}\n")
    with pytest.raises(DataError, match=r"raw\.scp:2: duplicate id 'a'"):
        read_embedding_table(scp)
    scp.write_text(f"{lines[0]}\nb {tmp_path}/gone.ark:4\n")
    with pytest.raises(DataError, match=r"raw\.scp:2: cannot read the embedding of 'b'"):
        read_embedding_table(scp)
    ark = lines[0].split()[1].rsplit(":", 1)[0]
    scp.write_text(f"{lines[0]}\nb {ark}:999999\n")  # kaldiio: an AssertionError without a message
    with pytest.raises(DataError, match=r"raw\.scp:2: .*:999999: AssertionError \(past the end of the ark, or not"):
        read_embedding_table(scp)


def test_reader_rejects_mixed_dimensions_and_matrices(tmp_path):
    scp = save_raw(tmp_path, {"a": np.ones(3, np.float32), "b": np.ones(4, np.float32)})
    with pytest.raises(DataError, match="'b' has dimension 4, but 'a' has 3"):
        read_embedding_table(scp)
    scp = save_raw(tmp_path, {"m": np.ones((2, 3), np.float32)})
    with pytest.raises(DataError, match=r"'m' is not a non-empty vector \(shape \(2, 3\)\)"):
        read_embedding_table(scp)
    scp = save_raw(tmp_path, {"e": np.ones(0, np.float32)})
    with pytest.raises(DataError, match=r"'e' is not a non-empty vector \(shape \(0,\)\)"):
        read_embedding_table(scp)


def test_table_meta_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{\n  "dim": 3,\n  oops\n}\n')
    with pytest.raises(DataError, match=r"meta\.json:3: invalid JSON"):
        read_table_meta(tmp_path)


def test_merge_joins_split_tables(tmp_path):
    write_table(tmp_path / "p1", [["u-1", "u-2"]])
    write_table(tmp_path / "p2", [["u-3"]])
    merge_tables([tmp_path / "p1", tmp_path / "p2"], tmp_path / "all")
    whole = write_table(tmp_path / "whole", [["u-1", "u-2", "u-3"]])
    merged = read_embedding_table(tmp_path / "all" / "emb.scp")
    single = read_embedding_table(whole / "emb.scp")
    assert list(merged) == list(single)
    for key in single:
        np.testing.assert_array_equal(merged[key], single[key])
    assert read_table_meta(tmp_path / "all") == read_table_meta(whole)


def test_merge_takes_jobs_that_found_their_inputs_under_other_spellings(tmp_path):
    """The data dir given as data/dev/ to one job and as an absolute path to another: provenance, not content."""
    write_table(tmp_path / "p1", [["u-1"]], meta={**META, "data": "data/dev/"})
    write_table(tmp_path / "p2", [["u-2"]], meta={**META, "data": "/exp/data/dev"})
    merge_tables([tmp_path / "p1", tmp_path / "p2"], tmp_path / "all")
    merged = read_table_meta(tmp_path / "all")
    assert (merged["data"], merged["num_utterances"], merged["provenance"]) == ("data/dev/", 2, ["data"])


def test_a_stale_job_table_makes_the_merged_table_incomplete_before_it_goes(tmp_path, monkeypatch):
    """Killed right after removing the job's table, the merged table must not name its ark as complete."""
    from uattr.data import tables

    job = write_table(tmp_path / "out" / "split1" / "1", [["u-1", "u-2"]])
    merge_tables([job], tmp_path / "out")
    assert table_is_complete(tmp_path / "out")

    remove_table = tables._remove_table

    def killed(table_dir):  # at the removal of the job's table, after the merged one's
        if table_dir == job:
            raise KeyboardInterrupt
        remove_table(table_dir)

    monkeypatch.setattr(tables, "_remove_table", killed)
    with pytest.raises(KeyboardInterrupt):
        keep_current_table(job, ["u-1", "u-3"], merged_dir=tmp_path / "out")
    assert not table_is_complete(tmp_path / "out")


def test_merge_refuses_duplicates_incomplete_parts_and_other_settings(tmp_path):
    write_table(tmp_path / "p1", [["u-1", "u-2"]])
    write_table(tmp_path / "p2", [["u-2"]])
    with pytest.raises(DataError, match=r"p2/emb\.scp:1: id 'u-2' is also in .*p1/emb\.scp:2"):
        merge_tables([tmp_path / "p1", tmp_path / "p2"], tmp_path / "all")
    EmbeddingTableWriter(tmp_path / "p3", meta=META).write(["u-3"], vectors(["u-3"]))
    with pytest.raises(DataError, match="p3: table is not complete"):
        merge_tables([tmp_path / "p1", tmp_path / "p3"], tmp_path / "all")
    write_table(tmp_path / "p4", [["u-4"]], meta={**META, "model": "m2"})
    with pytest.raises(DataError, match=r"p4: metadata differs .*\(model\)"):
        merge_tables([tmp_path / "p1", tmp_path / "p4"], tmp_path / "all")
    assert not (tmp_path / "all" / "emb.scp").exists()


def test_meta_must_be_json(tmp_path):
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        EmbeddingTableWriter(tmp_path / "t", meta={"x": object()})
