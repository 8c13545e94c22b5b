"""UnifiedEncoder: one encoder pass for any subset of attributes, losses, embed(), save/load round trip."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

import huggingface_hub
import numpy as np
import pytest
import torch
import torchaudio
import yaml
from torch import nn

from uattr.attributes import AttributeConfig
from uattr.branch import BranchConfig
from uattr.config import from_dict
from uattr.errors import ConfigError, DataError
from uattr.losses import LossConfig
from uattr.model import ModelConfig, UnifiedEncoder, safetensors_sha256
from uattr.upstream.base import Upstream, UpstreamConfig

SAMPLES_PER_FRAME = 80


class FakeUpstream(Upstream):
    """Each 80-sample frame goes through a fixed random map per layer, so hidden states depend on the input frame
    by frame (padding cannot change a valid frame) and frame lengths are exact."""

    padding_invariant = True

    def __init__(self, num_layers: int = 4, hidden_size: int = 8) -> None:
        super().__init__()
        self.num_layers, self.hidden_size, self.downsample_rate = num_layers, hidden_size, SAMPLES_PER_FRAME
        generator = torch.Generator().manual_seed(0)
        self.maps = nn.Parameter(torch.randn(num_layers, SAMPLES_PER_FRAME, hidden_size, generator=generator))
        self.calls = 0

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        frames = wavs.shape[1] // SAMPLES_PER_FRAME
        chunks = wavs[:, : frames * SAMPLES_PER_FRAME].reshape(wavs.shape[0], frames, SAMPLES_PER_FRAME)
        return torch.tanh(torch.einsum("btr,lrd->lbtd", chunks, self.maps)), wav_lens // SAMPLES_PER_FRAME


def _config(loss_weighting: str = "fixed", **attributes: AttributeConfig) -> ModelConfig:
    attributes = attributes or {
        "semantic": AttributeConfig(dim=6, teacher={"name": "sentence-transformers", "field": "text.en"}),
        "speaker": AttributeConfig(dim=3, branch=BranchConfig(layer_start=2), weight=0.5),
    }
    return ModelConfig(UpstreamConfig(name="fake:"), attributes, loss_weighting)


def _model(**kwargs) -> UnifiedEncoder:
    torch.manual_seed(0)
    return UnifiedEncoder(_config(**kwargs), upstream=FakeUpstream())


def _waves(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(length, generator=generator) for length in lengths]


def test_forward_gives_every_attribute_from_one_encoder_pass() -> None:
    model = _model()
    wavs = torch.randn(2, 800)
    embeddings = model(wavs, torch.tensor([800, 400]))
    assert {name: tuple(e.shape) for name, e in embeddings.items()} == {"semantic": (2, 6), "speaker": (2, 3)}
    assert model.upstream.calls == 1
    assert list(model(wavs, torch.tensor([800, 400]), ["speaker"])) == ["speaker"]
    assert model.embedding_dim("speaker") == 3 and model.is_normalized("speaker")


def test_an_unknown_attribute_lists_the_models_attributes() -> None:
    with pytest.raises(ConfigError, match="unknown attribute 'lang'; this model has: semantic, speaker"):
        _model()(torch.randn(1, 160), torch.tensor([160]), ["lang"])


def test_fixed_weighting_sums_the_weighted_attribute_losses() -> None:
    model = _model()
    embeddings = model(torch.randn(2, 800), torch.tensor([800, 640]))
    targets = {"semantic": torch.randn(2, 6), "speaker": torch.randn(2, 3)}
    total, losses = model.compute_loss(embeddings, targets)
    assert set(losses) == {"semantic", "speaker"}
    torch.testing.assert_close(total, losses["semantic"] + 0.5 * losses["speaker"])
    total.backward()
    assert all(p.grad is not None for p in model.experts.parameters())
    assert model.upstream.maps.grad is not None


def test_uncertainty_weighting_learns_one_log_variance_per_attribute() -> None:
    model = _model(loss_weighting="uncertainty")
    with torch.no_grad():
        model.loss_log_vars["semantic"].fill_(0.5)
        model.loss_log_vars["speaker"].fill_(-1.0)
    embeddings = model(torch.randn(2, 800), torch.tensor([800, 800]))
    total, losses = model.compute_loss(embeddings, {"semantic": torch.randn(2, 6), "speaker": torch.randn(2, 3)})
    expected = np.exp(-0.5) * losses["semantic"] + 0.5 + np.exp(1.0) * 0.5 * losses["speaker"] - 1.0
    torch.testing.assert_close(total, expected.float())
    total.backward()
    assert all(p.grad is not None for p in model.loss_log_vars.values())


def test_weight_schedule_keeps_an_attribute_out_until_its_start_then_ramps_it_in() -> None:
    config = from_dict(
        ModelConfig,
        {
            "upstream": {"name": "fake:"},
            "attributes": {
                "semantic": {"dim": 6},
                "speaker": {"dim": 3, "weight": 0.5, "weight_schedule": {"start_step": 10, "ramp_steps": 4}},
            },
        },
    )
    torch.manual_seed(0)
    model = UnifiedEncoder(config, upstream=FakeUpstream())
    embeddings = model(torch.randn(2, 800), torch.tensor([800, 640]))
    targets = {"semantic": torch.randn(2, 6), "speaker": torch.randn(2, 3)}
    # Off for 10 updates (steps 0-9: updates done so far), then 1/4, 2/4, 3/4 and full at the 14th update.
    for step, share in [(0, 0.0), (9, 0.0), (10, 0.25), (11, 0.5), (12, 0.75), (13, 1.0), (500, 1.0), (None, 1.0)]:
        total, losses = model.compute_loss(embeddings, targets, step=step)
        torch.testing.assert_close(total, losses["semantic"] + share * 0.5 * losses["speaker"], msg=f"step {step}")

    # Before its start the attribute moves nothing: the encoder gets the semantic gradient alone.
    model.compute_loss(embeddings, targets, step=3)[0].backward(retain_graph=True)
    scheduled = model.upstream.maps.grad.clone()
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.experts["speaker"].parameters())
    model.zero_grad()
    model.compute_loss({"semantic": embeddings["semantic"]}, targets)[0].backward()
    torch.testing.assert_close(scheduled, model.upstream.maps.grad)


def test_weight_schedule_scales_an_uncertainty_term_whole() -> None:
    model = _model(loss_weighting="uncertainty")
    model.config.attributes["speaker"].weight_schedule.start_step = 5
    with torch.no_grad():
        model.loss_log_vars["speaker"].fill_(-1.0)
    embeddings = model(torch.randn(2, 800), torch.tensor([800, 800]))
    total, losses = model.compute_loss(embeddings, {"semantic": torch.randn(2, 6), "speaker": torch.randn(2, 3)}, 0)
    torch.testing.assert_close(total, losses["semantic"])  # exp(0)·L + 0 for semantic; speaker off with its s
    total.backward()
    assert torch.count_nonzero(model.loss_log_vars["speaker"].grad) == 0


@pytest.mark.parametrize("key", ["start_step", "ramp_steps"])
def test_a_negative_weight_schedule_names_its_key(key: str) -> None:
    speaker = AttributeConfig(dim=3)
    setattr(speaker.weight_schedule, key, -1)
    with pytest.raises(ConfigError, match=rf"attributes\.speaker\.weight_schedule\.{key}: must be ≥ 0, got -1"):
        UnifiedEncoder(_config(speaker=speaker), upstream=FakeUpstream())


def test_a_subset_of_attributes_needs_only_its_targets_and_a_missing_target_is_a_data_error() -> None:
    model = _model()
    embeddings = model(torch.randn(1, 800), torch.tensor([800]), ["speaker"])
    total, losses = model.compute_loss(embeddings, {"speaker": torch.randn(1, 3)})
    assert list(losses) == ["speaker"]
    with pytest.raises(DataError, match="no targets for attribute 'speaker'"):
        model.compute_loss(embeddings, {"semantic": torch.randn(1, 6)})


def test_embed_equals_each_utterance_alone_and_restores_training_mode() -> None:
    model = _model().train()
    waves = _waves([1600, 400, 1000])
    batched = model.embed(waves, sample_rate=16000)
    assert model.training
    for index, wave in enumerate(waves):
        alone = model.embed([wave.numpy()], sample_rate=16000)
        for name in batched:
            torch.testing.assert_close(batched[name][index], alone[name][0], atol=1e-5, rtol=1e-5)
    assert not batched["speaker"].requires_grad


class PaddingSensitiveUpstream(FakeUpstream):
    """Removes the mean of the whole padded input first, as a GroupNorm front end does: padding shifts it."""

    padding_invariant = False

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(wavs - wavs.mean(dim=1, keepdim=True), wav_lens)


def test_embed_encodes_each_utterance_alone_when_padding_would_change_it() -> None:
    torch.manual_seed(0)
    model = UnifiedEncoder(_config(), upstream=PaddingSensitiveUpstream())
    waves = [wave + 0.5 for wave in _waves([1600, 400, 1000])]  # a DC offset, so padding moves the mean
    batched = model.embed(waves, sample_rate=16000)
    padded = model(*model._pad(waves, 16000))
    assert not torch.allclose(padded["semantic"][1], batched["semantic"][1], atol=1e-3)  # what batching would give
    for index, wave in enumerate(waves):
        alone = model.embed([wave], sample_rate=16000)
        for name in batched:
            torch.testing.assert_close(batched[name][index], alone[name][0])


def test_embed_resamples_audio_at_another_rate() -> None:
    model = _model()
    wave = _waves([800])[0]
    resampled = torchaudio.functional.resample(wave, 8000, 16000)
    at_8k = model.embed(wave[None], sample_rate=8000, attributes=["semantic"])
    at_16k = model.embed([resampled], sample_rate=16000, attributes=["semantic"])
    torch.testing.assert_close(at_8k["semantic"], at_16k["semantic"])


@pytest.mark.parametrize(
    ("waveforms", "message"),
    [
        ([np.zeros((2, 160), dtype=np.float32)], "waveform 0 must be a non-empty 1-D"),
        ([torch.zeros(160), torch.zeros(0)], "waveform 1 must be a non-empty 1-D"),
        ([torch.tensor([0.0, float("nan")] * 100)], "waveform 0 has NaN"),
        (torch.zeros(160), r"expected waveforms \[batch, samples\]"),
        ([], "no waveforms"),
    ],
)
def test_embed_rejects_bad_audio(waveforms, message: str) -> None:
    with pytest.raises(DataError, match=message):
        _model().embed(waveforms, sample_rate=16000)


def test_layer_weights_have_the_shared_json_shape() -> None:
    weights = _model().layer_weights()
    assert weights["speaker"]["layers"] == [2, 3]
    assert weights["semantic"]["layers"] == [1, 2, 3]
    assert weights["semantic"]["weights"] == pytest.approx([1 / 3] * 3)
    assert json.loads(json.dumps(weights)) == weights


def test_the_untrained_baseline_is_the_mean_over_layers_and_valid_frames() -> None:
    baseline = AttributeConfig(
        branch=BranchConfig(projection="none", pooling="mean", head="none", layer_norm=False, normalize=False)
    )
    model = UnifiedEncoder(_config(semantic=baseline), upstream=FakeUpstream())
    waves = _waves([1600, 800])
    embedding = model.embed(waves, sample_rate=16000)["semantic"]
    hidden, _ = FakeUpstream()(torch.stack([waves[0][:800], waves[1]]), torch.tensor([800, 800]))
    torch.testing.assert_close(embedding[1], hidden[1:, 1].mean(dim=(0, 1)))
    hidden, _ = FakeUpstream()(waves[0][None], torch.tensor([1600]))
    torch.testing.assert_close(embedding[0], hidden[1:, 0].mean(dim=(0, 1)))
    assert model.embedding_dim("semantic") == 8 and not model.is_normalized("semantic")


def test_model_config_errors_name_the_dotted_key() -> None:
    data = {"upstream": {"name": "hf:x"}, "attributes": {"speaker": {"dim": 192, "branch": {"pooling_": "mean"}}}}
    with pytest.raises(ConfigError, match=r"attributes\.speaker\.branch\.pooling_"):
        from_dict(ModelConfig, data)
    with pytest.raises(ConfigError, match=r"loss_weighting"):
        from_dict(ModelConfig, {"upstream": {"name": "hf:x"}, "attributes": {}, "loss_weighting": "learned"})


@pytest.mark.parametrize(
    ("attributes", "key"),
    [
        ({}, "attributes"),
        ({"a.b": AttributeConfig()}, "attributes.a.b"),
        ({"s": AttributeConfig(weight=-1)}, "attributes.s.weight"),
    ],
)
def test_bad_model_configs_name_the_key(attributes: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}\b"):
        UnifiedEncoder(ModelConfig(UpstreamConfig(name="fake:"), attributes), upstream=FakeUpstream())


def test_a_zero_weight_has_no_uncertainty_to_learn() -> None:
    """exp(−s)·0 + s: the log-variance would fall without bound; with fixed weights 0 switches an attribute off."""
    attributes = {"s": AttributeConfig(weight=0.0)}
    with pytest.raises(ConfigError, match=r"^attributes\.s\.weight: 0 is no weight to learn an uncertainty for"):
        UnifiedEncoder(ModelConfig(UpstreamConfig(name="fake:"), attributes, "uncertainty"), upstream=FakeUpstream())
    UnifiedEncoder(ModelConfig(UpstreamConfig(name="fake:"), attributes, "fixed"), upstream=FakeUpstream())


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uattr.upstream.create import create_upstream

    return create_upstream(
        "w2v-bert", tmp_path_factory.mktemp("upstream") / "w2v-bert", hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, output_hidden_size=32,
    )


def test_save_and_load_round_trip_gives_identical_embeddings(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    config = ModelConfig(
        UpstreamConfig(name=f"hf:{tiny_encoder_dir}"),
        {
            "semantic": AttributeConfig(dim=16, teacher={"name": "sentence-transformers", "model": "all-MiniLM-L6-v2"}),
            "speaker": AttributeConfig(dim=8, branch=BranchConfig(layers=[2, 1], pooling="attentive_stats")),
            "lang": AttributeConfig(expert="label", classes=["en", "fr"], loss=LossConfig("aam", {"margin": 0.2})),
        },
        loss_weighting="uncertainty",
    )
    model = UnifiedEncoder(config)
    with torch.no_grad():  # training changed every weight: the loaded model must take them from the file
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    waves = _waves([16000, 9000], seed=3)
    before = model.embed(waves, sample_rate=16000)

    model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "README.md", "config.yaml", "model.safetensors", "upstream"
    ]
    assert sorted(p.name for p in (tmp_path / "model" / "upstream").iterdir()) == [
        "config.json", "preprocessor_config.json"
    ]
    loaded = UnifiedEncoder.from_pretrained(tmp_path / "model")
    after = loaded.embed(waves, sample_rate=16000)
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert loaded.layer_weights() == model.layer_weights()
    assert loaded.source == str(tmp_path / "model")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name

    saved = yaml.safe_load((tmp_path / "model" / "config.yaml").read_text())
    assert saved["attributes"]["lang"]["classes"] == ["en", "fr"] and saved["loss_weighting"] == "uncertainty"
    assert saved["upstream"]["name"] == f"hf:{tiny_encoder_dir}" and saved["upstream"]["architecture"] == "upstream"
    assert config.upstream.architecture is None  # the model's own config is left as it was
    card = (tmp_path / "model" / "README.md").read_text()
    for expected in ["| semantic | distill | 16 |", "| speaker | distill | 8 |", "[2, 1]", "| lang | label | 32 |",
                     "model: all-MiniLM-L6-v2", f"hf:{tiny_encoder_dir}", "## Layer weights", "from_pretrained",
                     "Encoder architecture: `upstream/`"]:
        assert expected in card
    # The Hub reads the front matter: library, task, attributes as tags; a local encoder is no base model.
    metadata = huggingface_hub.ModelCard(card).data.to_dict()
    assert metadata == {"library_name": "uattr", "pipeline_tag": "feature-extraction",
                        "tags": ["audio", "speech", "uattr", "semantic", "speaker", "lang"]}


def test_the_model_card_names_a_hub_encoder_as_its_base_model(tiny_encoder_dir: Path) -> None:
    """An encoder named by its Hub id (here built from its architecture files alone, as a saved model is) becomes
    the card's base_model, which links the model to it on the Hub."""
    from uattr.model import model_card

    upstream = UpstreamConfig(name="hf:facebook/w2v-bert-2.0", architecture=str(tiny_encoder_dir))
    model = UnifiedEncoder(ModelConfig(upstream, {"speaker": AttributeConfig(dim=8)}))
    metadata = huggingface_hub.ModelCard(model_card(model)).data.to_dict()
    assert metadata["base_model"] == "facebook/w2v-bert-2.0" and metadata["tags"][-1] == "speaker"


def _reverse_header_order(source: Path, target: Path) -> None:
    """Copy a safetensors file with its header's entries, and those of its metadata map, in reverse order: the same
    tensors at the same offsets, other bytes (as a save whose metadata map came out in another order)."""
    raw = source.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"] = dict(reversed(header["__metadata__"].items()))
    text = json.dumps(dict(reversed(header.items())), separators=(",", ":")).encode()
    assert len(text) <= size
    target.write_bytes(raw[:8] + text.ljust(size) + raw[8 + size :])  # padded with spaces, as safetensors pads


def test_the_weights_digest_is_that_of_the_weights_not_of_the_files_bytes(tmp_path: Path) -> None:
    """safetensors writes its metadata map in a random order: saves of one model differ in bytes now and then,
    and a digest of the bytes would make extraction redo the tables of a model saved again (init-model re-runs)."""
    import hashlib

    import safetensors.torch

    from uattr import __version__

    model = _model()
    saved = model.save_pretrained(tmp_path / "saved") / "model.safetensors"
    reordered = tmp_path / "reordered.safetensors"
    _reverse_header_order(saved, reordered)
    assert hashlib.sha256(saved.read_bytes()).digest() != hashlib.sha256(reordered.read_bytes()).digest()
    first, second = safetensors.torch.load_file(saved), safetensors.torch.load_file(reordered)
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)
    with safetensors.safe_open(reordered, "pt") as handle:
        assert handle.metadata() == {"format": "pt", "uattr": __version__}
    assert safetensors_sha256(reordered) == safetensors_sha256(saved)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert safetensors_sha256(model.save_pretrained(tmp_path / "changed") / "model.safetensors") != (
        safetensors_sha256(saved)
    )


def test_the_weights_digest_is_of_the_file_as_loaded(
    tiny_encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashed on first use: a model saved over the folder since is an error, not the digest of other weights;
    a folder given as a relative path is recorded as an absolute one (the working directory may change)."""
    config = ModelConfig(UpstreamConfig(name=f"hf:{tiny_encoder_dir}"), {"speaker": AttributeConfig(dim=4)})
    UnifiedEncoder(config).save_pretrained(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    loaded, unused = UnifiedEncoder.from_pretrained("m"), UnifiedEncoder.from_pretrained("m")
    assert loaded.source == str(tmp_path / "m")
    assert loaded.weights_sha256() == safetensors_sha256(tmp_path / "m" / "model.safetensors")
    UnifiedEncoder(config).save_pretrained(tmp_path / "m")  # other random weights
    with pytest.raises(ConfigError, match="model.safetensors: saved again since this model was loaded from it"):
        unused.weights_sha256()
    assert loaded.weights_sha256() != safetensors_sha256(tmp_path / "m" / "model.safetensors")  # as loaded


@pytest.mark.parametrize("source", ["hf_folder", "hf_hub_id", "s3prl_hf_custom"])
def test_a_saved_model_loads_from_its_own_folder_alone(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse_pretrained_weights: Callable[[], None]
) -> None:
    """After the encoder folder is deleted and the model folder moved, loading reads no encoder weights and
    gives the same embeddings; a hub id is never fetched (the tests run offline)."""
    from uattr.upstream import build_upstream
    from uattr.upstream.create import create_upstream

    tiny = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
    if source == "s3prl_hf_custom":
        encoder = create_upstream(
            "wav2vec2", tmp_path / "encoder", **tiny, conv_dim=[16] * 7, feat_extract_norm="layer",
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        )
        upstream_config = UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(encoder))
    else:
        encoder = create_upstream("w2v-bert", tmp_path / "encoder", **tiny, output_hidden_size=16)
        upstream_config = UpstreamConfig(name=f"hf:{encoder}", options={"mask_time_prob": 0.0})
    attributes = {"semantic": AttributeConfig(dim=8), "speaker": AttributeConfig(dim=4)}
    torch.manual_seed(0)
    upstream = build_upstream(upstream_config)
    if source == "hf_hub_id":  # as if trained from the hub model; its weights must not be fetched to load it
        upstream_config = UpstreamConfig(name="hf:facebook/w2v-bert-2.0", options={"mask_time_prob": 0.0})
    model = UnifiedEncoder(ModelConfig(upstream_config, attributes), upstream=upstream)
    waves = _waves([8000, 5000], seed=1)
    before = model.embed(waves, sample_rate=16000)
    model.save_pretrained(tmp_path / "model")
    shutil.rmtree(encoder)
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "model", tmp_path / "elsewhere" / "model")
    monkeypatch.chdir(tmp_path / "elsewhere")
    refuse_pretrained_weights()

    loaded = UnifiedEncoder.from_pretrained("model")
    after = loaded.embed(waves, sample_rate=16000)
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert loaded.config.upstream.name == upstream_config.name
    assert loaded.config.upstream.architecture == str(tmp_path / "elsewhere" / "model" / "upstream")

    again = UnifiedEncoder.from_pretrained(loaded.save_pretrained(tmp_path / "copy"))  # a loaded model re-saves
    for name, embedding in again.embed(waves, sample_rate=16000).items():
        assert torch.equal(before[name], embedding), name


def test_a_model_saved_without_architecture_files_builds_the_encoder_from_its_name(
    tiny_encoder_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Model folders of older uattr versions (and checkpoint-only encoders) still load, and say from where."""
    config = ModelConfig(UpstreamConfig(name=f"hf:{tiny_encoder_dir}"), {"speaker": AttributeConfig(dim=8)})
    model = UnifiedEncoder(config)
    model.save_pretrained(tmp_path)
    shutil.rmtree(tmp_path / "upstream")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["upstream"]["architecture"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    with caplog.at_level("INFO", logger="uattr.model"):
        loaded = UnifiedEncoder.from_pretrained(tmp_path)
    assert "no encoder architecture files" in caplog.text and f"hf:{tiny_encoder_dir}" in caplog.text
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_an_encoder_without_architecture_files_saves_none(tmp_path: Path) -> None:
    (tmp_path / "upstream").mkdir()  # from an earlier save: it would no longer match
    _model().save_pretrained(tmp_path)
    assert not (tmp_path / "upstream").exists()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["upstream"]["architecture"] is None
    assert "Encoder architecture: not saved" in (tmp_path / "README.md").read_text()


def test_loading_a_folder_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a saved uattr model"):
        UnifiedEncoder.from_pretrained(tmp_path)


@pytest.mark.parametrize("keep_bytes", [0, 100])
def test_truncated_weights_are_a_config_error(tiny_encoder_dir: Path, tmp_path: Path, keep_bytes: int) -> None:
    upstream = UpstreamConfig(name=f"hf:{tiny_encoder_dir}")
    UnifiedEncoder(ModelConfig(upstream, {"speaker": AttributeConfig(dim=8)})).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep_bytes])
    with pytest.raises(ConfigError, match="model.safetensors: cannot read it .*; is it truncated"):
        UnifiedEncoder.from_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config_are_a_config_error(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    upstream = UpstreamConfig(name=f"hf:{tiny_encoder_dir}")
    UnifiedEncoder(ModelConfig(upstream, {"speaker": AttributeConfig(dim=8)})).save_pretrained(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["attributes"]["speaker"]["dim"] = 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="model.safetensors: does not match"):
        UnifiedEncoder.from_pretrained(tmp_path)


def test_a_model_of_a_plug_in_that_is_not_installed_names_its_config(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    upstream = UpstreamConfig(name=f"hf:{tiny_encoder_dir}")
    UnifiedEncoder(ModelConfig(upstream, {"speaker": AttributeConfig(dim=8)})).save_pretrained(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["attributes"]["speaker"]["expert"] = "speaking_rate"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'config.yaml'))}: .*unknown attribute expert "
                                          r"'speaking_rate'.*a plug-in \(a uattr\.plugins entry point\) that is not "
                                          r"installed here\?$"):
        UnifiedEncoder.from_pretrained(tmp_path)
