"""Saved models by Hugging Face Hub id, resolved through the Hub cache (offline, as in every test: conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from data_fixtures import make_data_dir
from uattr.attributes.base import AttributeConfig
from uattr.bin.main import main as uattr_main
from uattr.data.tables import read_embedding_table
from uattr.errors import ConfigError
from uattr.hub import model_folder
from uattr.model import ModelConfig, UnifiedEncoder
from uattr.upstream.base import UpstreamConfig
from uattr.upstream.create import create_upstream

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_as_hub_model(folder: Path, repo_id: str) -> Path:
    """Put ``folder`` into the Hub cache as the snapshot of ``repo_id``'s main branch, where ``hf download`` (or
    an earlier online ``from_pretrained``) leaves it."""
    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub_model")
    encoder = create_upstream("w2v-bert", root / "encoder", hidden_size=16, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=32, output_hidden_size=16)
    torch.manual_seed(0)
    model = UnifiedEncoder(ModelConfig(UpstreamConfig(name=f"hf:{encoder}"), {"speaker": AttributeConfig(dim=8)}))
    model.save_pretrained(root / "model")
    shutil.rmtree(encoder)  # the model folder is all an uploaded copy has
    return root / "model"


def test_a_model_on_the_hub_loads_by_its_id_at_a_branch_or_a_commit(saved_model: Path) -> None:
    snapshot = cache_as_hub_model(saved_model, "some-lab/uattr-tiny")
    wav = [0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(0))]
    expected = UnifiedEncoder.from_pretrained(saved_model).embed(wav, sample_rate=16000)["speaker"]
    for revision in (None, COMMIT):
        model = UnifiedEncoder.from_pretrained("some-lab/uattr-tiny", revision=revision)
        assert model.source == str(snapshot.absolute())
        torch.testing.assert_close(model.embed(wav, sample_rate=16000)["speaker"], expected)


def test_uattr_extract_takes_a_hub_id(saved_model: Path, tmp_path: Path) -> None:
    cache_as_hub_model(saved_model, "some-lab/uattr-extract")
    data = make_data_dir(tmp_path, speakers=("spkA",), utts_per_speaker=2, seconds=0.5)
    argv = ["extract", "--model", "some-lab/uattr-extract", "--data", str(data), "--out", str(tmp_path / "emb")]
    assert uattr_main([*argv, "--device", "cpu", "-q"]) == 0
    table = read_embedding_table(tmp_path / "emb" / "speaker" / "data" / "emb.scp")
    assert sorted(table) == ["spkA-u1", "spkA-u2"] and all(np.isfinite(v).all() for v in table.values())


def test_an_id_neither_local_nor_on_the_hub_is_one_config_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match=r"^nobody/nothing: no local folder of that name, and no Hugging Face Hub "):
        UnifiedEncoder.from_pretrained("nobody/nothing")
    argv = ["extract", "--model", "nobody/nothing", "--data", str(tmp_path), "--out", str(tmp_path / "emb")]
    assert uattr_main(argv) == 1
    assert "ERROR: nobody/nothing: no local folder of that name" in capsys.readouterr().err


def test_a_local_folder_is_taken_as_given_and_takes_no_revision(saved_model: Path, tmp_path: Path, monkeypatch) -> None:
    assert model_folder(saved_model) == saved_model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert model_folder("org/name") == Path("org/name")  # a folder here, though it reads like an id
    with pytest.raises(ConfigError, match="a revision .* applies to a Hub repo id, not to a local folder"):
        model_folder(saved_model, revision="main")
