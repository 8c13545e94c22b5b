"""Extraction: one pass for all attributes, batch-invariant embeddings, resume, split jobs, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from data_fixtures import make_data_dir
from uattr.attributes.base import AttributeConfig
from uattr.branch import BranchConfig
from uattr.data.audio import AudioSource
from uattr.data.kaldi import DataDir
from uattr.data.tables import read_embedding_table, read_table_meta, table_is_complete
from uattr.extract import extract_embeddings, merge_jobs
from uattr.bin.main import main as uattr_main
from uattr.errors import DataError
from uattr.model import ModelConfig, UnifiedEncoder
from uattr.upstream.base import UpstreamConfig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uattr.upstream.create import create_upstream

    root = tmp_path_factory.mktemp("extract_model")
    encoder = create_upstream(
        "w2v-bert", root / "encoder", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, output_hidden_size=32,
    )
    config = ModelConfig(
        UpstreamConfig(name=f"hf:{encoder}"),
        {
            "semantic": AttributeConfig(dim=16),
            "speaker": AttributeConfig(dim=8, branch=BranchConfig(layers=[2], pooling="attentive_stats")),
        },
    )
    torch.manual_seed(0)
    return UnifiedEncoder(config).save_pretrained(root / "model")


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    data = make_data_dir(tmp_path, speakers=("spkA", "spkB", "spkC", "spkD"), utts_per_speaker=2, seconds=0.6)
    for index, wav in enumerate(sorted((tmp_path / "wav").glob("*.wav"))):  # different lengths: batches are padded
        audio, rate = soundfile.read(wav)
        soundfile.write(wav, audio[: len(audio) - 1100 * index], rate)
    return data


def _one_by_one(model: UnifiedEncoder, data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    audio = AudioSource(data_dir)
    result: dict[str, dict[str, np.ndarray]] = {"semantic": {}, "speaker": {}}
    for utt in audio.ids:
        embeddings = model.embed([audio.load(utt)], sample_rate=16000)
        for attr, value in embeddings.items():
            result[attr][utt] = value[0].numpy()
    return result


def _assert_same_tables(expected: Path, got: Path, atol: float = 1e-6) -> None:
    """The tables in two folders hold the same ids with the same vectors (within ``atol``)."""
    ref, table = read_embedding_table(expected / "emb.scp"), read_embedding_table(got / "emb.scp")
    assert sorted(ref) == sorted(table), got
    for utt in ref:
        np.testing.assert_allclose(table[utt], ref[utt], rtol=0, atol=atol, err_msg=f"{got}: {utt}")


def _cli_extract(model_dir: Path, data_dirs: list[Path], out: Path, *options: str) -> int:
    """``uattr extract`` as stage 4 of uattr.sh runs it (several sets, an explicit device), quiet."""
    return uattr_main(["extract", "--model", str(model_dir), "--data", *map(str, data_dirs), "--out", str(out),
                       "--device", "cpu", "-q", *options])


def test_batched_extraction_equals_one_utterance_at_a_time(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    tables = extract_embeddings(model, data_dir, tmp_path / "emb", max_batch_seconds=3.0, show_progress=False)
    assert set(tables) == {"semantic", "speaker"}
    expected = _one_by_one(model, data_dir)
    for attr, table_dir in tables.items():
        assert table_dir == tmp_path / "emb" / attr / "data"
        table = read_embedding_table(table_dir / "emb.scp")
        assert sorted(table) == sorted(expected[attr])
        for utt, vector in table.items():
            np.testing.assert_allclose(vector, expected[attr][utt], atol=1e-5, err_msg=f"{attr}/{utt}")
        meta = read_table_meta(table_dir)
        assert meta["dim"] == model.embedding_dim(attr) and meta["num_utterances"] == 8
    weights = json.loads((tmp_path / "emb" / "layer_weights.json").read_text())
    assert weights["speaker"]["layers"] == [2]
    assert abs(sum(weights["semantic"]["weights"]) - 1.0) < 1e-6


def test_an_encoder_that_padding_changes_is_extracted_one_utterance_at_a_time(data_dir: Path, tmp_path: Path) -> None:
    """A group-normed wav2vec 2.0 normalises over the padded waveform: batched, its embeddings would depend on
    their batch, so extraction gives each utterance its own batch and equals it alone."""
    from uattr.upstream.create import create_upstream

    encoder = create_upstream(
        "wav2vec2", tmp_path / "encoder", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, conv_dim=[16] * 7, feat_extract_norm="group", num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(0)
    model = UnifiedEncoder(ModelConfig(UpstreamConfig(name=f"hf:{encoder}"), {"semantic": AttributeConfig(dim=8)}))
    assert not model.upstream.padding_invariant
    table_dir = extract_embeddings(model, data_dir, tmp_path / "emb", show_progress=False)["semantic"]
    expected = _one_by_one(model, data_dir)["semantic"]
    for utt, vector in read_embedding_table(table_dir / "emb.scp").items():
        np.testing.assert_allclose(vector, expected[utt], atol=1e-5, err_msg=utt)


def test_audio_too_short_for_the_encoder_is_an_error_naming_the_utterance(model_dir: Path, tmp_path: Path) -> None:
    data = make_data_dir(tmp_path, speakers=("spkA",), utts_per_speaker=1, seconds=0.02)  # 320 samples: no frame
    with pytest.raises(DataError, match=r"data: utterance 'spkA-u1': upstream .*: 320 samples, too short for one"):
        extract_embeddings(UnifiedEncoder.from_pretrained(model_dir), data, tmp_path / "emb", show_progress=False)


def test_a_batch_too_large_for_the_memory_is_a_data_error(
    model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)

    def out_of_memory(*args, **kwargs):  # what torch's CPU allocator raises for a 3-minute utterance under 8 GB
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 5182848064 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(UnifiedEncoder, "forward", out_of_memory)
    with pytest.raises(DataError, match=r"data: batch items \(0: '.*'\): out of memory encoding a batch of "
                                        r"\d utterance\(s\), the longest 0\.6 s: lower --max-batch-seconds"):
        extract_embeddings(model, data_dir, tmp_path / "emb", show_progress=False)


def _extract_until_killed(
    model: UnifiedEncoder, data_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch, writes: int
) -> None:
    """Extract with batches of 2 and die at table write number ``writes`` (a Ctrl-C); the writer is then back."""
    from uattr.data import tables

    original_write = tables.EmbeddingTableWriter.write
    calls = {"n": 0}

    def failing_write(self, ids, vectors):
        calls["n"] += 1
        if calls["n"] == writes:
            raise KeyboardInterrupt
        return original_write(self, ids, vectors)

    monkeypatch.setattr(tables.EmbeddingTableWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(model, data_dir, out, max_batch_size=2, show_progress=False)
    monkeypatch.setattr(tables.EmbeddingTableWriter, "write", original_write)


def test_interrupted_extraction_resumes_to_the_same_tables(
    model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    reference = extract_embeddings(model, data_dir, tmp_path / "ref", max_batch_size=2, show_progress=False)
    _extract_until_killed(model, data_dir, tmp_path / "out", monkeypatch, writes=5)
    assert not (tmp_path / "out" / "semantic" / "data" / "emb.scp").exists()  # no complete-looking table

    resumed = extract_embeddings(model, data_dir, tmp_path / "out", max_batch_size=2, show_progress=False)
    for attr in reference:
        _assert_same_tables(reference[attr], resumed[attr], atol=0)


def test_a_partial_table_of_utterances_gone_from_the_data_dir_is_written_again(
    model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    _extract_until_killed(model, data_dir, tmp_path / "out", monkeypatch, writes=3)
    done = sorted(read_embedding_table(tmp_path / "out" / "semantic" / "data" / "emb.scp.part"))
    wav_scp = data_dir / "wav.scp"
    wav_scp.write_text("".join(line for line in wav_scp.read_text().splitlines(keepends=True)
                               if not line.startswith(done[0] + " ")))
    (data_dir / "utt2spk").write_text("".join(line for line in (data_dir / "utt2spk").read_text().splitlines(True)
                                              if not line.startswith(done[0] + " ")))
    (data_dir / "spk2utt").unlink(missing_ok=True)
    tables_out = extract_embeddings(model, data_dir, tmp_path / "out", max_batch_size=2, show_progress=False)
    for attr, table in tables_out.items():
        assert sorted(read_embedding_table(table / "emb.scp")) == sorted(DataDir.load(data_dir).utt_ids), attr


def test_tables_of_a_model_retrained_into_the_same_folder_are_written_again(
    model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither a complete table nor an interrupted one of the old weights survives: no resume mixes the vectors
    of two models."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    old = UnifiedEncoder.from_pretrained(folder)
    extract_embeddings(old, data_dir, tmp_path / "complete", show_progress=False)
    from uattr.data import tables

    original_write = tables.EmbeddingTableWriter.write

    def interrupted(self, ids, vectors):
        original_write(self, ids, vectors)
        raise KeyboardInterrupt

    monkeypatch.setattr(tables.EmbeddingTableWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(old, data_dir, tmp_path / "partial", max_batch_size=2, show_progress=False)
    monkeypatch.setattr(tables.EmbeddingTableWriter, "write", original_write)

    with torch.no_grad():  # "retrained": other weights, saved into the same folder
        for parameter in old.parameters():
            parameter.add_(0.1)
    old.save_pretrained(folder)
    new = UnifiedEncoder.from_pretrained(folder)
    expected = _one_by_one(new, data_dir)
    digest = new.weights_sha256()
    assert digest is not None and digest != UnifiedEncoder.from_pretrained(model_dir).weights_sha256()
    for out in ("complete", "partial"):
        table_dir = extract_embeddings(new, data_dir, tmp_path / out, show_progress=False)["semantic"]
        assert read_table_meta(table_dir)["model_sha256"] == digest
        for utt, vector in read_embedding_table(table_dir / "emb.scp").items():
            np.testing.assert_allclose(vector, expected["semantic"][utt], atol=1e-5, err_msg=f"{out}/{utt}")


def test_a_data_dir_rebuilt_with_more_utterances_is_extracted_again(model_dir: Path, tmp_path: Path) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    small = make_data_dir(tmp_path / "v1", speakers=("spkA", "spkB"), utts_per_speaker=2, seconds=0.6)
    kept = read_embedding_table(extract_embeddings(model, small, tmp_path / "emb", show_progress=False)["speaker"]
                                / "emb.scp")
    larger = make_data_dir(tmp_path / "v1", speakers=("spkA", "spkB"), utts_per_speaker=3, seconds=0.6)  # rebuilt
    assert set(kept) < set(AudioSource(larger).ids)  # the table is complete for the old dir, not for the new one
    tables = extract_embeddings(model, larger, tmp_path / "emb", show_progress=False)
    for table_dir in tables.values():
        assert sorted(read_embedding_table(table_dir / "emb.scp")) == sorted(AudioSource(larger).ids)


def test_a_table_of_audio_pointed_elsewhere_under_the_same_ids_is_extracted_again(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Two utterances swap recordings in wav.scp: their vectors swap too (the table had been kept, stale)."""
    model = UnifiedEncoder.from_pretrained(model_dir)
    first = read_embedding_table(extract_embeddings(model, data_dir, tmp_path / "emb", show_progress=False)["semantic"]
                                 / "emb.scp")
    wav_scp = dict(line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines())
    a, b = sorted(wav_scp)[:2]
    wav_scp[a], wav_scp[b] = wav_scp[b], wav_scp[a]
    (data_dir / "wav.scp").write_text("".join(f"{utt} {entry}\n" for utt, entry in sorted(wav_scp.items())))
    again = read_embedding_table(extract_embeddings(model, data_dir, tmp_path / "emb", show_progress=False)["semantic"]
                                 / "emb.scp")
    np.testing.assert_allclose(again[a], first[b], atol=1e-5)
    np.testing.assert_allclose(again[b], first[a], atol=1e-5)
    assert read_table_meta(tmp_path / "emb" / "semantic" / data_dir.name)["inputs_sha256"] == (
        DataDir.load(data_dir).inputs_digest()
    )


def test_split_jobs_and_merge_equal_a_single_job(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    single = extract_embeddings(model, data_dir, tmp_path / "single", show_progress=False)
    for job in (1, 2, 3):
        extract_embeddings(model, data_dir, tmp_path / "split", job=job, num_jobs=3, show_progress=False)
    merge_jobs(tmp_path / "split", "data", ["semantic", "speaker"], 3)
    for attr, table_dir in single.items():
        _assert_same_tables(table_dir, tmp_path / "split" / attr / "data")
    # Job 2 of the semantic table is run again: only that merged table stops being complete until merged again.
    shutil.rmtree(tmp_path / "split" / "semantic" / "data" / "split3" / "2")
    extract_embeddings(model, data_dir, tmp_path / "split", attributes=["semantic"], job=2, num_jobs=3,
                       show_progress=False)
    assert not table_is_complete(tmp_path / "split" / "semantic" / "data")
    assert table_is_complete(tmp_path / "split" / "speaker" / "data")


def test_split_and_unsplit_runs_into_one_folder_never_leave_a_stale_table(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Stage 4 run with --nj 2, then with --nj 1 and --amp bf16, then with --nj 2 again: the merged table must be
    the split jobs' (float32), not the unsplit run's; an unsplit table that split jobs replace leaves no ark."""
    model = UnifiedEncoder.from_pretrained(model_dir)
    out, table = tmp_path / "emb", tmp_path / "emb" / "speaker" / "data"

    def split_run() -> None:
        for job in (1, 2):
            extract_embeddings(model, data_dir, out, attributes=["speaker"], job=job, num_jobs=2, show_progress=False)
        merge_jobs(out, "data", ["speaker"], 2)

    split_run()
    extract_embeddings(model, data_dir, out, attributes=["speaker"], amp="bf16", show_progress=False)
    assert read_table_meta(table)["autocast"] == "bf16" and (table / "emb.ark").is_file()
    split_run()  # the job tables are current (float32) and kept: only the merge can notice
    assert read_table_meta(table)["autocast"] is None
    assert not (table / "emb.ark").exists()
    assert all("/split2/" in line for line in (table / "emb.scp").read_text().splitlines())
    shutil.rmtree(table)
    extract_embeddings(model, data_dir, out, attributes=["speaker"], show_progress=False)
    extract_embeddings(model, data_dir, out, attributes=["speaker"], job=1, num_jobs=2, show_progress=False)
    assert not (table / "emb.ark").exists()  # the unsplit table's ark, no longer named by any scp


def test_a_split_job_reads_only_the_audio_of_its_share(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    """Measuring every utterance's duration, a job failed on another job's broken file (and decoded every pipe)."""
    data = tmp_path / "broken" / "data"
    shutil.copytree(data_dir, data)
    ids = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()]
    last = ids[-1]
    (data / "wav.scp").write_text("".join(f"{utt} {tmp_path / 'missing.wav' if utt == last else path}\n"
                                          for utt, path in (line.split() for line in
                                                            (data_dir / "wav.scp").read_text().splitlines())))
    (data / "utt2dur").unlink(missing_ok=True)
    model = UnifiedEncoder.from_pretrained(model_dir)
    extract_embeddings(model, data, tmp_path / "emb", attributes=["speaker"], job=1, num_jobs=2, show_progress=False)
    with pytest.raises(DataError, match=f"utterance '{last}'"):
        extract_embeddings(model, data, tmp_path / "emb", attributes=["speaker"], job=2, num_jobs=2,
                           show_progress=False)


def test_nothing_to_extract_is_an_error_naming_the_data_dir(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    model = UnifiedEncoder.from_pretrained(model_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "wav.scp").write_text("")
    with pytest.raises(DataError, match=rf"^{empty}: no utterances \(its wav.scp is empty\): nothing to extract$"):
        extract_embeddings(model, empty, tmp_path / "emb", show_progress=False)
    text_only = tmp_path / "text_only"
    text_only.mkdir()
    shutil.copy(data_dir / "text", text_only / "text")
    with pytest.raises(DataError, match=rf"{text_only}: no wav.scp \(a text-only data dir\)"):
        extract_embeddings(model, text_only, tmp_path / "emb", show_progress=False)
    assert not (tmp_path / "emb").exists()  # refused before any table folder is made
    for job in (1, 2, 3, 4, 5, 6, 7, 8, 9):  # more jobs than utterances: a job's empty share is fine
        extract_embeddings(model, data_dir, tmp_path / "jobs", attributes=["speaker"], job=job, num_jobs=9,
                           show_progress=False)


def test_the_cli_out_is_a_root_not_a_pattern(model_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "emb" / "{set}")
    assert uattr_main(["extract", "--model", str(model_dir), "--data", str(data_dir), "--out", out]) == 1
    assert "the output root, not a pattern: tables go to <out>/<attr>/<set>" in capsys.readouterr().err
    assert not (tmp_path / "emb").exists()


def test_models_built_in_memory_are_told_apart_by_their_weights(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Two models not loaded from a folder: the second one's tables must not pass for the first one's."""
    first = UnifiedEncoder.from_pretrained(model_dir)
    second = UnifiedEncoder(first.config)
    same_weights = UnifiedEncoder.from_pretrained(model_dir)
    first.source = second.source = same_weights.source = None  # as built in Python
    assert first.weights_sha256() != second.weights_sha256()
    assert first.weights_sha256() == same_weights.weights_sha256()  # a digest of the weights, not of the object
    extract_embeddings(first, data_dir, tmp_path / "emb", attributes=["speaker"], show_progress=False)
    table = extract_embeddings(second, data_dir, tmp_path / "emb", attributes=["speaker"], show_progress=False)
    expected = _one_by_one(second, data_dir)["speaker"]
    for utt, vector in read_embedding_table(table["speaker"] / "emb.scp").items():
        np.testing.assert_allclose(vector, expected[utt], atol=1e-5)


def test_cli_extracts_a_subset_of_attributes_from_an_experiment_dir(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "model").symlink_to(model_dir)
    status = uattr_main(["extract", "--model", str(exp), "--data", str(data_dir), "--out", str(tmp_path / "emb"),
                         "--attributes", "speaker", "-q"])
    assert status == 0
    assert (tmp_path / "emb" / "speaker" / "data" / "emb.scp").is_file()
    assert not (tmp_path / "emb" / "semantic").exists()
    # A second run finds the table complete and changes nothing.
    before = (tmp_path / "emb" / "speaker" / "data" / "emb.scp").read_text()
    assert uattr_main(["extract", "--model", str(exp), "--data", str(data_dir), "--out", str(tmp_path / "emb"),
                       "--attributes", "speaker", "-q"]) == 0
    assert (tmp_path / "emb" / "speaker" / "data" / "emb.scp").read_text() == before


def test_autocast_extraction_is_recorded_and_a_table_of_another_precision_is_written_again(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    argv = ["extract", "--model", str(model_dir), "--data", str(data_dir), "--out", str(tmp_path / "emb"), "-q"]
    table_dir = tmp_path / "emb" / "speaker" / "data"
    expected = _one_by_one(UnifiedEncoder.from_pretrained(model_dir), data_dir)["speaker"]

    def differences() -> list[float]:
        table = read_embedding_table(table_dir / "emb.scp")
        assert sorted(table) == sorted(expected)
        return [float(np.abs(vector - expected[utt]).max()) for utt, vector in table.items()]

    assert uattr_main([*argv, "--amp", "bf16"]) == 0
    assert read_table_meta(table_dir)["autocast"] == "bf16"
    assert 0 < max(differences()) < 0.05  # bf16 products: close to float32, not equal
    assert uattr_main([*argv, "--amp", "none"]) == 0  # another precision: written again
    assert read_table_meta(table_dir)["autocast"] is None and max(differences()) < 1e-5
    # A table written before the option (no "autocast" in its metadata) was made in float32: it is kept.
    meta = json.loads((table_dir / "meta.json").read_text())
    del meta["autocast"]
    (table_dir / "meta.json").write_text(json.dumps(meta))
    before = (table_dir / "emb.scp").stat().st_mtime_ns
    assert uattr_main(argv) == 0
    assert (table_dir / "emb.scp").stat().st_mtime_ns == before


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_cuda_extraction_matches_the_cpu(model_dir: Path, data_dir: Path, tmp_path: Path, amp: str) -> None:
    """Stage 4 on a GPU gives the CPU's embeddings: to float noise in float32 (cuDNN's convolutions may use TF32),
    close under bf16 and fp16 autocast; each table records its precision. The audio is noise, not the fixture's
    steady tones, whose normalised fbank frames are all but zero: float noise that CPU and GPU round apart."""
    rng = np.random.default_rng(0)
    for wav in (tmp_path / "wav").glob("*.wav"):
        audio, rate = soundfile.read(wav)
        soundfile.write(wav, 0.1 * rng.standard_normal(len(audio)), rate)
    expected = _one_by_one(UnifiedEncoder.from_pretrained(model_dir), data_dir)
    argv = ["extract", "--model", str(model_dir), "--data", str(data_dir), "--out", str(tmp_path / "emb"), "-q"]
    assert uattr_main([*argv, "--device", "cuda", "--amp", amp]) == 0
    for attr in ("semantic", "speaker"):
        table_dir = tmp_path / "emb" / attr / "data"
        assert read_table_meta(table_dir)["autocast"] == (None if amp == "none" else amp)
        table = read_embedding_table(table_dir / "emb.scp")
        assert sorted(table) == sorted(expected[attr])
        for utt, vector in table.items():
            reference = expected[attr][utt]
            cosine = vector @ reference / (np.linalg.norm(vector) * np.linalg.norm(reference))
            assert cosine > (0.9999 if amp == "none" else 0.99), f"{attr}/{utt}: cosine {cosine}"


def test_cli_rejects_a_directory_without_a_model(tmp_path: Path, data_dir: Path, capsys) -> None:
    """Named in one line, before anything is written (an exit status alone does not say which input was wrong)."""
    assert _cli_extract(tmp_path, [data_dir], tmp_path / "e") == 1
    assert f"ERROR: {tmp_path}: not a uattr model dir (no config.yaml + model.safetensors, nor model/ inside)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "e").exists()


def test_cli_names_a_device_it_cannot_use(model_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["extract", "--model", str(model_dir), "--data", str(data_dir), "--out", str(tmp_path / "e")]
    assert uattr_main([*argv, "--device", "gpu0"]) == 1
    assert "ERROR: --device 'gpu0': " in capsys.readouterr().err


@pytest.mark.parametrize("num_workers", [0, 1])
def test_an_audio_error_in_a_loader_worker_is_one_line(
    model_dir: Path, data_dir: Path, tmp_path: Path, capsys, num_workers: int
) -> None:
    """A DataLoader worker's error comes back as ``type(error)(worker traceback)``: still one clear line."""
    assert uattr_main(["compute-durations", str(data_dir)]) == 0  # the sampler plans from utt2dur, not the audio
    sorted((tmp_path / "wav").glob("*.wav"))[1].unlink()
    argv = ["extract", "--model", str(model_dir), "--data", str(data_dir), "--out", str(tmp_path / "e")]
    capsys.readouterr()
    assert uattr_main([*argv, "--num-workers", str(num_workers)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line or "Traceback" in line]
    assert len(errors) == 1 and errors[0].endswith(".wav does not exist") and "utterance 'spkA-u2'" in errors[0]


def test_utterances_shared_by_several_data_dirs_are_encoded_once(
    model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uattr.data.ops import subset_data_dir

    subset = tmp_path / "queries"
    subset_data_dir(data_dir, subset, utt_list=["spkA-u1", "spkC-u2"])
    separate = {
        name: extract_embeddings(UnifiedEncoder.from_pretrained(model_dir), path, tmp_path / "separate",
                                 show_progress=False)
        for name, path in (("data", data_dir), ("queries", subset))
    }
    encoded: list[str] = []
    original_forward = UnifiedEncoder.forward

    def counting_forward(self, wavs, wav_lens, attributes=None):
        encoded.extend([""] * len(wavs))
        return original_forward(self, wavs, wav_lens, attributes)

    monkeypatch.setattr(UnifiedEncoder, "forward", counting_forward)
    assert uattr_main(["extract", "--model", str(model_dir), "--data", str(data_dir), str(subset),
                       "--out", str(tmp_path / "joint"), "-q"]) == 0
    assert len(encoded) == 8  # the two queries come from the first set's pass
    for name, tables in separate.items():
        for attr, table_dir in tables.items():
            _assert_same_tables(table_dir, tmp_path / "joint" / attr / name)


def test_cli_split_jobs_then_merge_give_the_tables_of_one_run(
    model_dir: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    """Stage 4 with --nj 2 (run_split in uattr.sh) runs the command once per job with --job J --num-jobs 2, then
    once more with --merge 2: every set's merged tables must equal those of one unsplit run."""
    from uattr.data.ops import subset_data_dir

    sets = [data_dir, tmp_path / "queries"]
    subset_data_dir(data_dir, sets[1], utt_list=["spkA-u1", "spkB-u2", "spkC-u2"])
    split = tmp_path / "split"
    assert _cli_extract(model_dir, sets, tmp_path / "single") == 0
    for job in ("1", "2"):
        assert _cli_extract(model_dir, sets, split, "--job", job, "--num-jobs", "2") == 0
    assert not table_is_complete(split / "speaker" / "data")  # only the job tables so far
    assert _cli_extract(model_dir, sets, split, "--merge", "2") == 0
    for attr in ("semantic", "speaker"):
        for name in ("data", "queries"):
            _assert_same_tables(tmp_path / "single" / attr / name, split / attr / name)
            assert all("/split2/" in line for line in (split / attr / name / "emb.scp").read_text().splitlines())
    capsys.readouterr()
    assert _cli_extract(model_dir, sets, split, "--merge", "3") == 1  # a wrong N: no job table of split3
    assert f"{split / 'semantic' / 'data' / 'split3' / '1'}: table is not complete" in capsys.readouterr().err
    assert _cli_extract(model_dir, sets, split, "--merge", "2", "--job", "1") == 1
    assert "--merge joins finished jobs: do not combine it with --job/--num-jobs" in capsys.readouterr().err


def test_cli_set_name_names_the_tables_of_one_data_dir(
    model_dir: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    """--set-name replaces the data dir's folder name in <out>/<attr>/<set>, for split jobs and their merge too;
    with several --data it would give their tables one name, so it is refused before anything is written."""
    out = tmp_path / "emb"
    assert _cli_extract(model_dir, [data_dir], out, "--set-name", "clean") == 0
    for job in ("1", "2"):
        assert _cli_extract(model_dir, [data_dir], out, "--set-name", "clean_nj2", "--job", job, "--num-jobs", "2") == 0
    assert _cli_extract(model_dir, [data_dir], out, "--set-name", "clean_nj2", "--merge", "2") == 0
    for attr in ("semantic", "speaker"):
        assert sorted(path.name for path in (out / attr).iterdir()) == ["clean", "clean_nj2"]
        assert sorted(read_embedding_table(out / attr / "clean" / "emb.scp")) == sorted(AudioSource(data_dir).ids)
        _assert_same_tables(out / attr / "clean", out / attr / "clean_nj2")
    capsys.readouterr()
    assert _cli_extract(model_dir, [data_dir, tmp_path / "other"], tmp_path / "two", "--set-name", "clean") == 1
    assert "ERROR: --set-name names one set: give one --data with it" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()
