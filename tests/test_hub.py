"""Saved models by Hugging Face Hub id, resolved through the Hub cache (offline, as in every test: conftest)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import huggingface_hub
from huggingface_hub import constants, errors

from data_fixtures import make_data_dir
from uattr.attributes.base import AttributeConfig
from uattr.bin.main import main as uattr_main
from uattr.data.tables import read_embedding_table
from uattr.errors import ConfigError
from uattr.extract import resolve_model_dir
from uattr.hub import hub_model_id, model_folder
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
    for name, revision in (("some-lab/uattr-tiny", None), ("some-lab/uattr-tiny", COMMIT),
                           (f"some-lab/uattr-tiny@{COMMIT}", None), ("some-lab/uattr-tiny@main", None)):
        model = UnifiedEncoder.from_pretrained(name, revision=revision)
        assert model.source == str(snapshot.absolute())
        torch.testing.assert_close(model.embed(wav, sample_rate=16000)["speaker"], expected)
    with pytest.raises(ConfigError, match="two revisions, 'main' in the id and 'v2'"):
        UnifiedEncoder.from_pretrained("some-lab/uattr-tiny@main", revision="v2")


def test_uattr_extract_takes_a_hub_id(saved_model: Path, tmp_path: Path) -> None:
    cache_as_hub_model(saved_model, "some-lab/uattr-extract")
    data = make_data_dir(tmp_path, speakers=("spkA",), utts_per_speaker=2, seconds=0.5)
    argv = ["extract", "--model", "some-lab/uattr-extract", "--data", str(data), "--out", str(tmp_path / "emb")]
    assert uattr_main([*argv, "--device", "cpu", "-q"]) == 0
    table = read_embedding_table(tmp_path / "emb" / "speaker" / "data" / "emb.scp")
    assert sorted(table) == ["spkA-u1", "spkA-u2"] and all(np.isfinite(v).all() for v in table.values())


def test_an_id_neither_local_nor_on_the_hub_is_one_config_error(tmp_path: Path, capsys) -> None:
    offline = "nobody/nothing: no such local folder, and the Hugging Face Hub model could not be loaded: it is not in "
    with pytest.raises(ConfigError, match=f"^{offline}the Hub cache, and the Hub cannot be reached"):
        UnifiedEncoder.from_pretrained("nobody/nothing")
    argv = ["extract", "--model", "nobody/nothing", "--data", str(tmp_path), "--out", str(tmp_path / "emb")]
    assert uattr_main(argv) == 1
    assert f"ERROR: {offline}" in capsys.readouterr().err


def _hub_error(kind: type[Exception], text: str) -> Exception:
    """An error as huggingface_hub raises it for an HTTP status, without the response it is built from."""
    error = kind.__new__(kind)
    Exception.__init__(error, text)
    return error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_hub_error(errors.RepositoryNotFoundError, "401 Client Error."), "no such repository (or a private one"),
        (_hub_error(errors.GatedRepoError, "403 Client Error."), "the repository is gated: accept its conditions"),
        (_hub_error(errors.RevisionNotFoundError, "404 Client Error."), "the repository has no revision 'v9'"),
        (ConnectionError("\nMax retries exceeded with url: /api/models\n(caused by timeout)"), "Max retries exceeded"),
    ],
)
def test_hub_failures_say_why_in_words(monkeypatch, error: Exception, reason: str) -> None:
    """huggingface_hub's HTTP errors start with a bare status line, and the Hub answers 401 for a repository
    that does not exist: the message must not read as a login problem alone."""
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(ConfigError, match=f"^some/repo@v9: no such local folder, .* loaded: {re.escape(reason)}"):
        model_folder("some/repo@v9")


def test_what_reads_as_a_hub_id(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert hub_model_id("org/name") == ("org/name", None)
    assert hub_model_id("org/name.v1@a1b2c3") == ("org/name.v1", "a1b2c3")
    for path in ("name", "./org/name", "/org/name", "~/name", "org/name/model", "org/name@x/y", Path("org/name")):
        assert hub_model_id(path) is None, path
    (tmp_path / "exp").mkdir()  # "exp/joint" is a mistyped path here, not a repository
    assert hub_model_id("exp/joint") is None
    with pytest.raises(ConfigError, match="^exp/joint: not a uattr model dir"):
        resolve_model_dir("exp/joint")


def test_a_local_folder_is_taken_as_given_and_takes_no_revision(saved_model: Path) -> None:
    assert model_folder(saved_model) == model_folder(str(saved_model)) == saved_model
    with pytest.raises(ConfigError, match="a revision .* applies to a Hub model id, not to a path"):
        model_folder(saved_model, revision="main")
