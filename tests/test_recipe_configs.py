"""The Common Voice recipe's training configs: they load with the real loader, say what the paper says, and build
a model. Tiny random encoders of the same family and depth (24 layers) stand in for the hub models, so the
config is tested, not the weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from uattr.model import UnifiedEncoder
from uattr.train.config import load_experiment_config
from uattr.train.optim import build_group, split_parameters
from uattr.upstream.create import create_upstream

CONF = Path(__file__).resolve().parents[1] / "egs" / "commonvoice" / "uattr1" / "conf"
PAPER = CONF / "train_sem_spk_w2vbert.yaml"
TINY = {"hidden_size": 16, "num_hidden_layers": 24, "num_attention_heads": 2, "intermediate_size": 32}
# config → (its hub encoder, its attributes and their teacher dimensions)
CONFIGS = {
    "train_sem_spk_w2vbert.yaml": ("hf:facebook/w2v-bert-2.0", {"semantic": 1024, "speaker": 192}),
    "train_sem_w2vbert.yaml": ("hf:facebook/w2v-bert-2.0", {"semantic": 1024}),
    "train_spk_w2vbert.yaml": ("hf:facebook/w2v-bert-2.0", {"speaker": 192}),
    "train_sem_xlsr_labse.yaml": ("s3prl:xls_r_300m", {"semantic": 768}),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run far faster on one thread than on a shared machine's contended pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, list[tuple[str, object]]]:
    """Overrides that swap each hub encoder for a tiny random one of the same family with 24 layers."""
    root = tmp_path_factory.mktemp("encoders")
    w2v_bert = create_upstream("w2v-bert", root / "w2v-bert", **TINY, conv_depthwise_kernel_size=3)
    wav2vec2 = create_upstream("wav2vec2", root / "xls-r", **TINY, conv_dim=[16] * 7, num_conv_pos_embeddings=16,
                               num_conv_pos_embedding_groups=4)
    return {
        "hf:facebook/w2v-bert-2.0": [("upstream.name", f"hf:{w2v_bert}")],
        "s3prl:xls_r_300m": [("upstream.name", "s3prl:hf_wav2vec2_custom"), ("upstream.path", str(wav2vec2))],
    }


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_builds_a_model_with_a_stand_in_encoder(name, stand_ins):
    encoder, dims = CONFIGS[name]
    assert load_experiment_config(CONF / name).upstream.name == encoder
    config = load_experiment_config(CONF / name, stand_ins[encoder])
    assert {attr: block.dim for attr, block in config.attributes.items()} == dims
    model = UnifiedEncoder(config.model_config())
    embeddings = model(torch.randn(2, 8000), torch.tensor([8000, 5600]))
    assert {attr: tuple(value.shape) for attr, value in embeddings.items()} == {attr: (2, dim) for attr, dim in dims.items()}
    assert all(weights["layers"] == list(range(1, 25)) for weights in model.layer_weights().values())
    groups = split_parameters(model)
    encoder_optimizer, _ = build_group(groups["upstream"], config.optim.upstream, 100, "optim.upstream")
    branch_optimizer, _ = build_group(groups["branches"], config.optim.branches, 100, "optim.branches")
    assert (type(encoder_optimizer).__name__, encoder_optimizer.defaults["lr"]) == ("Adam", 1e-5)
    assert type(branch_optimizer).__name__ == "Adadelta"
    assert {key: branch_optimizer.defaults[key] for key in ("lr", "rho", "eps")} == {"lr": 1.5, "rho": 0.95, "eps": 1e-8}


def test_paper_config_holds_the_paper_settings():
    config = load_experiment_config(PAPER)
    assert (config.upstream.name, config.upstream.finetune) == ("hf:facebook/w2v-bert-2.0", "full")
    for attr in ("semantic", "speaker"):
        block = config.attributes[attr]
        branch = block.branch
        assert (branch.layer_start, branch.layer_end, branch.projection, branch.pooling) == (1, 24, "per_layer", "attention")
        assert branch.layer_norm and branch.normalize and branch.head == "linear"
        assert (block.loss.name, block.loss.options, block.weight) == ("cosine", {"scale": 50.0, "reduction": "sum"}, 1.0)
    upstream, branches = config.optim.upstream, config.optim.branches
    assert (upstream.scheduler.name, upstream.scheduler.threshold, upstream.scheduler.factor) == ("newbob", 0.0025, 0.9)
    assert (branches.scheduler.factor, branches.scheduler.patience) == (0.5, 2)
    assert (config.data.max_seconds, config.data.sampling, config.data.alpha) == (10.0, "language", 0.05)
    assert (config.data.max_batch_size, config.trainer.max_epochs) == (20, 10)
    assert config.data.valid_retrieval["semantic"].query2ref == "data/dev/query2ref"


def test_paper_table_points_at_the_lines_that_set_each_value():
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    rows = [re.match(r"# \|.*\| `([^`]+)`\s*\| (\d+)\s*\|$", line) for line in lines]
    rows = [row for row in rows if row]
    assert len(rows) == 24
    for row in rows:
        key, number = row.group(1), int(row.group(2))
        assert lines[number - 1].strip().startswith(key.rsplit(".", 1)[-1] + ":"), (key, number, lines[number - 1])
