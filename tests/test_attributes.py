"""Attribute experts, their configs, and the registries (built-ins, plug-ins, entry points)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import kaldiio
import pytest
import torch

import uattr.registry as registry
from uattr.attributes import AttributeConfig, AttributeExpert, build_expert
from uattr.attributes.distill import DistillExpert
from uattr.branch import BranchConfig
from uattr.config import from_dict
from uattr.errors import ConfigError, DataError
from uattr.losses import LossConfig
from uattr.registry import ATTRIBUTE_EXPERTS, LOSSES, POOLINGS, PROJECTIONS, TEACHERS

PLUGIN_DIR = Path(__file__).parent / "plugins"
NUM_HIDDEN_STATES, HIDDEN = 4, 8


def _expert(name: str = "speaker", **config) -> AttributeExpert:
    return build_expert(name, AttributeConfig(**config), NUM_HIDDEN_STATES, HIDDEN)


def _hidden(batch: int = 3, frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(NUM_HIDDEN_STATES, batch, frames, HIDDEN), torch.tensor([frames, 4, 2][:batch])


@pytest.fixture
def isolated_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it (the registries are module-level singletons)."""
    registry.load_plugins()
    for component_registry in (POOLINGS, PROJECTIONS, LOSSES, ATTRIBUTE_EXPERTS, TEACHERS):
        monkeypatch.setattr(component_registry, "_items", dict(component_registry._items))



def _import_fresh(module: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(sys.modules, module, raising=False)
    imported = importlib.import_module(module)
    monkeypatch.delitem(sys.modules, module)
    return imported


def test_distill_expert_embeds_into_the_teacher_dimension_and_learns_from_its_vectors() -> None:
    expert = _expert(dim=5, teacher={"name": "speechbrain-ecapa"})
    hidden, frame_lens = _hidden()
    embedding = expert(hidden, frame_lens)
    assert expert.target_key == "speaker" and expert.embedding_dim == 5 and embedding.shape == (3, 5)
    loss = expert.loss(embedding, torch.randn(3, 5))
    loss.backward()
    assert loss.shape == () and expert.branch.layer_logits.grad is not None


def test_distill_targets_of_the_wrong_dimension_name_the_attribute_and_the_dim_key() -> None:
    expert = _expert(dim=5)
    hidden, frame_lens = _hidden()
    with pytest.raises(DataError, match=r"attribute 'speaker'.*attributes\.speaker\.dim"):
        expert.loss(expert(hidden, frame_lens), torch.randn(3, 7))


def test_distill_without_dim_keeps_the_pooled_dimension() -> None:
    assert _expert().embedding_dim == HIDDEN


@pytest.mark.parametrize("loss", ["ce", "aam"])
def test_label_expert_classifies_into_its_classes(loss: str) -> None:
    expert = _expert("lang", expert="label", classes=["de", "en", "fr"], dim=4, loss=LossConfig(loss))
    hidden, frame_lens = _hidden()
    embedding = expert(hidden, frame_lens)
    value = expert.loss(embedding, torch.tensor([0, 2, 1]))
    assert embedding.shape == (3, 4) and value.shape == () and torch.isfinite(value)
    assert expert.loss_fn.num_classes == 3 and expert.loss_fn.embedding_dim == 4
    assert expert.logits(embedding).shape == (3, 3)


@pytest.mark.parametrize("loss", [LossConfig("ce"), LossConfig("aam", {"margin": 0.0})])
def test_label_expert_logits_are_the_scores_its_loss_trains(loss: LossConfig) -> None:
    """Less a training-only margin: with none, the loss is their cross-entropy."""
    expert = _expert("lang", expert="label", classes=["de", "en", "fr"], dim=4, loss=loss)
    embedding = expert(*_hidden())
    target = torch.tensor([0, 2, 1])
    torch.testing.assert_close(expert.loss(embedding, target),
                               torch.nn.functional.cross_entropy(expert.logits(embedding), target))


def test_label_targets_must_be_class_indices() -> None:
    expert = _expert("lang", expert="label", classes=["de", "en"], loss=LossConfig("ce"))
    hidden, frame_lens = _hidden()
    with pytest.raises(DataError, match="attribute 'lang'.*int class indices"):
        expert.loss(expert(hidden, frame_lens), torch.randn(3, 2))
    for outside in (2, -1):  # ce would raise a bare IndexError, aam a RuntimeError (a device assert on CUDA)
        with pytest.raises(DataError, match=f"attribute 'lang': class index {outside} is outside the 2 classes"):
            expert.loss(expert(hidden, frame_lens), torch.tensor([0, outside, 1]))


@pytest.mark.parametrize(
    ("name", "config", "key"),
    [
        ("lang", {"expert": "label", "loss": LossConfig("ce")}, "attributes.lang.classes"),
        ("lang", {"expert": "label", "classes": ["en", "en"], "loss": LossConfig("ce")}, "attributes.lang.classes"),
        ("lang", {"expert": "label", "classes": ["en", "fr"]}, "attributes.lang.loss.name"),
        ("speaker", {"classes": ["a", "b"]}, "attributes.speaker.classes"),
        ("speaker", {"dim": 0}, "attributes.speaker.dim"),
        ("speaker", {"expert": "distil"}, "attributes.speaker.expert"),
        ("speaker", {"loss": LossConfig("cosine", {"margin": 1})}, "attributes.speaker.loss.options"),
        ("speaker", {"branch": BranchConfig(layer_end=9)}, "attributes.speaker.branch.layer_end"),
    ],
)
def test_bad_attribute_configs_name_the_key(name: str, config: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}\b"):
        _expert(name, **config)


def test_config_parsing_errors_name_the_dotted_key() -> None:
    with pytest.raises(ConfigError, match=r"attributes\.speaker\.branch\.poolng"):
        from_dict(AttributeConfig, {"branch": {"poolng": "mean"}}, "attributes.speaker")
    with pytest.raises(ConfigError, match=r"attributes\.speaker\.branch\.head"):
        from_dict(AttributeConfig, {"branch": {"head": "deep"}}, "attributes.speaker")
    with pytest.raises(ConfigError, match=r"attributes\.speaker\.weight"):
        from_dict(AttributeConfig, {"weight": "heavy"}, "attributes.speaker")


def test_a_yaml_block_builds_the_papers_speaker_branch() -> None:
    config = from_dict(
        AttributeConfig,
        {
            "dim": 192,
            "branch": {"layer_start": 1, "layer_end": 3},
            "loss": {"name": "cosine", "options": {"scale": 50}},
        },
        "attributes.speaker",
    )
    expert = build_expert("speaker", config, NUM_HIDDEN_STATES, HIDDEN)
    assert expert.branch.layers == [1, 2, 3] and expert.embedding_dim == 192


def test_builtin_experts_are_registered() -> None:
    assert {"distill", "label"} <= set(ATTRIBUTE_EXPERTS.names())


def test_a_plugin_outside_the_package_registers_and_is_used(
    isolated_registries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    _import_fresh("uattr_toy_plugin", monkeypatch)
    expert = _expert("rate", expert="toy_scalar", branch=BranchConfig(pooling="toy_max"), loss=LossConfig("mse"))
    hidden, frame_lens = _hidden()
    hidden[:, 2, 2:] = float("inf")  # padding of the shortest utterance: masked max must ignore it
    embedding = expert(hidden, frame_lens)
    assert embedding.shape == (3, 1) and torch.isfinite(embedding).all()


def test_the_plugin_teacher_of_the_readme_caches_one_number_per_utterance(
    isolated_registries: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from uattr.bin.main import main
    from uattr.data.tables import read_table_meta

    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    _import_fresh("uattr_toy_plugin", monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("s1-a a.wav\ns1-b b.wav\n")
    (data / "utt2spk").write_text("s1-a s1\ns1-b s1\n")
    (data / "utt2rate").write_text("s1-a 3.5\ns1-b 4.25\n")
    out = tmp_path / "rate"
    assert main(["extract-teacher", "--teacher", "toy_number", "--data", str(data), "--out", str(out)]) == 0
    vectors = dict(kaldiio.load_scp(str(tmp_path / "rate" / "emb.scp")))
    assert {utt: vector.tolist() for utt, vector in vectors.items()} == {"s1-a": [3.5], "s1-b": [4.25]}
    meta = read_table_meta(tmp_path / "rate")
    assert (meta["teacher"], meta["dim"], meta["field"]) == ("toy_number", 1, "utt2rate")


def test_registering_a_taken_name_is_an_error(isolated_registries: None) -> None:
    with pytest.raises(ConfigError, match="attribute expert 'distill' is already registered .*DistillExpert"):

        @ATTRIBUTE_EXPERTS.register("distill")
        class Another(DistillExpert):
            pass


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown attribute expert 'speeker'; choices: .*distill, label"):
        ATTRIBUTE_EXPERTS.get("speeker")


L1_PLUGIN = (  # a plug-in module registering an L1 distillation loss under {name!r}
    "from uattr.losses import DistillationLoss\n"
    "from uattr.registry import LOSSES\n\n"
    "@LOSSES.register({name!r})\n"
    "class L1Loss(DistillationLoss):\n"
    "    def forward(self, student, teacher):\n"
    "        return (student - teacher).abs().mean()\n"
)


def _install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, module: str, source: str | None = None
) -> None:
    """An installed distribution (a dist-info on sys.path) whose ``uattr.plugins`` entry point ``entry`` names
    ``module`` (written from ``source`` unless None); the registry loads plug-ins again at its next lookup."""
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    dist = module.replace("_", "-")
    dist_info = tmp_path / f"{module}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[uattr.plugins]\n{entry} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(registry, "_plugins_loaded", False)


def test_an_installed_package_registers_through_its_entry_point(
    isolated_registries: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install_plugin(tmp_path, monkeypatch, "ep", "uattr_ep_plugin", L1_PLUGIN.format(name="ep_l1"))
    assert "ep_l1" in LOSSES  # lookup loads the entry points
    monkeypatch.delitem(sys.modules, "uattr_ep_plugin")
    expert = _expert(dim=3, loss=LossConfig("ep_l1"))
    value = expert.loss(torch.zeros(2, 3), torch.ones(2, 3))
    assert float(value) == pytest.approx(1.0)


def test_a_plug_in_that_fails_to_import_is_named(
    isolated_registries: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install_plugin(tmp_path, monkeypatch, "broken", "not_there_plugin")
    message = r"plug-in 'broken' \(not_there_plugin, from not-there-plugin\) failed to load: ModuleNotFoundError"
    for _ in range(2):  # not loaded the first time: a later lookup tries again and says so again
        with pytest.raises(ConfigError, match=message):
            ATTRIBUTE_EXPERTS.get("distill")


def test_a_plug_in_that_fails_after_registering_is_named_again_on_the_next_lookup(
    isolated_registries: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = L1_PLUGIN.format(name="half_l1") + "\nimport some_missing_dependency\n"
    _install_plugin(tmp_path, monkeypatch, "half", "uattr_half_plugin", source)
    message = r"plug-in 'half' .*failed to load: ModuleNotFoundError: No module named 'some_missing_dependency'"
    for _ in range(2):  # not "loss 'half_l1' is already registered" by the class of the first attempt
        with pytest.raises(ConfigError, match=message):
            LOSSES.get("cosine")
        assert "half_l1" not in LOSSES._items
    monkeypatch.delitem(sys.modules, "uattr_half_plugin", raising=False)
