"""Upstreams: tiny random encoders saved locally, loaded through every path (hf:, s3prl:), and their policies."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from transformers import SeamlessM4TFeatureExtractor

from uattr.bin.main import main as uattr_main
from uattr.errors import ConfigError, DataError
from uattr.upstream import Upstream, UpstreamConfig, build_upstream
from uattr.upstream.create import create_upstream
from uattr.upstream.frontend import StackedFbank

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# Layer-normed CNN (so the model takes an attention mask), small positional conv; layerdrop high on purpose:
# the loaders must switch it off or the layer count would vary in training mode.
TINY_WAVEFORM = {
    **TINY,
    "conv_dim": [32] * 7,
    "feat_extract_norm": "layer",
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "layerdrop": 0.9,
}
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)  # the HF default wav2vec2 CNN: 320 samples per frame
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
WAV_LENS = [16000, 9001, 5000]  # 1 s, and two shorter ones with odd fbank frame counts


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "w2v-bert": create_upstream("w2v-bert", root / "w2v-bert", **TINY, layerdrop=0.9),
        "wav2vec2": create_upstream("wav2vec2", root / "wav2vec2", **TINY_WAVEFORM, do_stable_layer_norm=True),
        "hubert": create_upstream("hubert", root / "hubert", **TINY_WAVEFORM),
        "wavlm": create_upstream("wavlm", root / "wavlm", **TINY_WAVEFORM),
    }


def padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(WAV_LENS), max(WAV_LENS))
    for row, length in enumerate(WAV_LENS):
        wavs[row, :length] = 0.1 * torch.randn(length, generator=generator) + 0.01  # a DC offset to normalise away
    return wavs, torch.tensor(WAV_LENS)


def conv_frames(num_samples: int) -> int:
    for kernel, stride in zip(CONV_KERNELS, CONV_STRIDES):
        num_samples = (num_samples - kernel) // stride + 1
    return num_samples


def hf_frames(num_samples: int) -> int:
    """Frames per the HF w2v-BERT feature extractor: its attention mask for the utterance alone."""
    extractor = SeamlessM4TFeatureExtractor(padding_value=1.0)
    wav = np.zeros(num_samples, dtype=np.float32)
    return int(extractor(wav, sampling_rate=16000, return_tensors="np")["attention_mask"].sum())


def trainable(upstream: torch.nn.Module) -> set[str]:
    return {name for name, parameter in upstream.named_parameters() if parameter.requires_grad}


@pytest.mark.parametrize("arch", ["w2v-bert", "wav2vec2", "hubert", "wavlm"])
def test_hf_constant_layers_frame_lengths_and_padding_invariance(models: dict[str, Path], arch: str) -> None:
    upstream = build_upstream(UpstreamConfig(name=f"hf:{models[arch]}"))
    assert (upstream.num_layers, upstream.hidden_size, upstream.downsample_rate) == (3, 32, 320)
    assert upstream.sample_rate == 16000 and upstream.frame_rate == 50
    expected = [hf_frames(n) if arch == "w2v-bert" else conv_frames(n) for n in WAV_LENS]
    wavs, wav_lens = padded_batch()
    upstream.train()
    for _ in range(2):  # layerdrop 0.9 in the saved config would drop a layer in nearly every pass
        hidden, frame_lens = upstream(wavs, wav_lens)
        assert hidden.shape[0] == 3 and hidden.shape[1] == 3 and hidden.shape[3] == 32
        assert frame_lens.tolist() == expected
        assert hidden.shape[2] >= max(expected)
    upstream.eval()
    with torch.no_grad():
        hidden, frame_lens = upstream(wavs, wav_lens)
        for row, length in enumerate(WAV_LENS):
            alone, alone_lens = upstream(wavs[row : row + 1, :length], wav_lens[row : row + 1])
            valid = int(frame_lens[row])
            assert int(alone_lens[0]) == valid
            torch.testing.assert_close(alone[:, 0, :valid], hidden[:, row, :valid], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("s3prl_name", "arch"), [("hf_wav2vec2_custom", "wav2vec2"), ("hf_hubert_custom", "hubert")])
def test_s3prl_hf_custom_loads_local_folder(models: dict[str, Path], s3prl_name: str, arch: str) -> None:
    config = UpstreamConfig(name=f"s3prl:{s3prl_name}", path=str(models[arch]), finetune="frozen_frontend")
    upstream = build_upstream(config)
    assert (upstream.num_layers, upstream.hidden_size, upstream.downsample_rate) == (3, 32, 320)
    wavs, wav_lens = padded_batch()
    upstream.train()
    for _ in range(2):
        hidden, frame_lens = upstream(wavs, wav_lens)
        assert hidden.shape[:2] == (3, 3) and hidden.shape[3] == 32
        # The CNN's real output lengths, not s3prl's ceil(n / 320), which counts 1-2 frames the CNN never made.
        assert frame_lens.tolist() == [conv_frames(n) for n in WAV_LENS]
    assert trainable(upstream) and not any("feature_extractor" in name for name in trainable(upstream))
    upstream.eval()
    with torch.no_grad():
        hidden, frame_lens = upstream(wavs, wav_lens)
        for row, length in enumerate(WAV_LENS):
            alone, alone_lens = upstream(wavs[row : row + 1, :length], wav_lens[row : row + 1])
            assert alone.shape[2] == int(alone_lens[0]) == int(frame_lens[row])
            torch.testing.assert_close(alone[:, 0], hidden[:, row, : alone.shape[2]], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("name", "arch", "norm", "invariant"),
    [
        ("hf:{}", "w2v-bert", None, True),
        ("hf:{}", "wav2vec2", "layer", True),
        ("hf:{}", "wav2vec2", "group", False),  # GroupNorm over the padded waveform, no attention mask
        ("s3prl:hf_wav2vec2_custom", "wav2vec2", "layer", True),
        ("s3prl:hf_wav2vec2_custom", "wav2vec2", "group", False),
    ],
)
def test_padding_invariance_is_known_per_encoder(
    tmp_path: Path, name: str, arch: str, norm: str | None, invariant: bool
) -> None:
    """An encoder said to be padding-invariant gives the same hidden states alone and batched; the others do
    not, which is why embed() and extraction encode them one utterance at a time."""
    overrides = TINY if norm is None else {**TINY_WAVEFORM, "feat_extract_norm": norm}
    folder = create_upstream(arch, tmp_path / arch, **overrides)
    path = str(folder) if name.startswith("s3prl") else None
    upstream = build_upstream(UpstreamConfig(name=name.format(folder), path=path)).eval()
    assert upstream.padding_invariant is invariant
    wavs, wav_lens = padded_batch()
    with torch.no_grad():
        hidden, frame_lens = upstream(wavs, wav_lens)
        alone, _ = upstream(wavs[2:, : WAV_LENS[2]], wav_lens[2:])
    valid = int(frame_lens[2])
    assert torch.allclose(alone[:, 0, :valid], hidden[:, 2, :valid], atol=1e-4) is invariant


def test_torch_fbank_matches_seamless_feature_extractor() -> None:
    extractor = SeamlessM4TFeatureExtractor(padding_value=1.0)
    frontend = StackedFbank.from_feature_extractor(extractor)
    wavs, wav_lens = padded_batch(seed=3)
    features, mask, frame_lens = frontend(wavs, wav_lens)
    reference = extractor(
        [wav[:length].numpy() for wav, length in zip(wavs, WAV_LENS)], sampling_rate=16000, return_tensors="pt"
    )
    assert features.shape == reference["input_features"].shape and features.shape[-1] == 160
    torch.testing.assert_close(features, reference["input_features"], atol=2e-3, rtol=1e-3)
    assert torch.equal(mask, reference["attention_mask"].long())
    assert frame_lens.tolist() == reference["attention_mask"].sum(1).tolist()


def test_finetune_policies_leave_the_intended_parameters_trainable(models: dict[str, Path]) -> None:
    everything = trainable(build_upstream(UpstreamConfig(name=f"hf:{models['wav2vec2']}", finetune="full")))
    front = {name for name in everything if name.startswith("model.feature_extractor.")}
    top = {name for name in everything if name.startswith("model.encoder.layers.1.")}
    assert front and top

    def build(finetune: str, top_n: int = 0, arch: str = "wav2vec2") -> torch.nn.Module:
        return build_upstream(UpstreamConfig(name=f"hf:{models[arch]}", finetune=finetune, top_n=top_n))

    assert trainable(build("frozen_frontend")) == everything - front
    assert trainable(build("top_n", top_n=1)) == top
    bert = build("frozen_frontend", arch="w2v-bert")
    assert trainable(bert) and all(not name.startswith("model.feature_projection.") for name in trainable(bert))
    assert any(name.startswith("model.feature_projection.") for name, _ in bert.named_parameters())

    frozen = build("frozen")
    frozen.train()
    assert not trainable(frozen) and not frozen.training and not frozen.model.training
    hidden, _ = frozen(*padded_batch())
    assert not hidden.requires_grad

    upstream = build("frozen_frontend")
    hidden, frame_lens = upstream(*padded_batch())
    hidden[-1, 0, : frame_lens[0]].sum().backward()
    grads = {name for name, parameter in upstream.named_parameters() if parameter.grad is not None}
    assert grads and grads <= everything - front

    for top_n in (0, 3):
        with pytest.raises(ConfigError, match="top_n"):
            build("top_n", top_n=top_n)
    with pytest.raises(ConfigError, match="upstream.top_n: 1 applies to finetune: top_n only, not to 'full'"):
        build("full", top_n=1)


def test_gradient_checkpointing_gives_the_same_gradients(models: dict[str, Path]) -> None:
    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        config = UpstreamConfig(
            name=f"hf:{models['w2v-bert']}", gradient_checkpointing=checkpointing, options={"mask_time_prob": 0.0}
        )
        upstream = build_upstream(config)
        upstream.train()
        torch.manual_seed(0)
        hidden, _ = upstream(*padded_batch())
        hidden.pow(2).mean().backward()
        assert upstream.model.encoder.layers[0].gradient_checkpointing == checkpointing
        return {name: p.grad for name, p in upstream.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and any(".layers.0." in name for name in plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("arch", "name"), [("w2v-bert", "hf:facebook/w2v-bert-2.0"), ("hubert", "s3prl:hf_hubert_custom")]
)
def test_architecture_files_rebuild_the_encoder_with_random_weights(
    models: dict[str, Path], tmp_path: Path, refuse_pretrained_weights: Callable[[], None], arch: str, name: str
) -> None:
    """The original encoder (here named by a hub id or a deleted path) is never read: only config files."""
    if name.startswith("hf:"):
        original = build_upstream(UpstreamConfig(name=f"hf:{models[arch]}", options={"mask_time_prob": 0.0}))
    else:
        original = build_upstream(UpstreamConfig(name=name, path=str(models[arch])))
    assert original.saves_architecture
    original.save_architecture(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "preprocessor_config.json"]
    refuse_pretrained_weights()

    deleted = None if name.startswith("hf:") else str(tmp_path / "deleted")
    rebuilt = build_upstream(UpstreamConfig(name=name, path=deleted, architecture=str(tmp_path)))
    assert [getattr(rebuilt, key) for key in ("num_layers", "hidden_size", "downsample_rate", "sample_rate")] == [
        getattr(original, key) for key in ("num_layers", "hidden_size", "downsample_rate", "sample_rate")
    ]
    model = rebuilt.model if name.startswith("hf:") else rebuilt.upstream.upstream.model
    assert model.config.layerdrop == 0.0 and model.config.mask_time_prob == (0.0 if name.startswith("hf:") else 0.05)
    state = original.state_dict()
    assert {key: value.shape for key, value in rebuilt.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert not all(torch.equal(value, state[key]) for key, value in rebuilt.state_dict().items())  # random weights
    rebuilt.load_state_dict(state)
    original.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(*padded_batch())[0], original(*padded_batch())[0], atol=0, rtol=0)


def test_architecture_folder_errors(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="only hf_wav2vec2_custom, hf_hubert_custom build from architecture files"):
        build_upstream(UpstreamConfig(name="s3prl:wavlm_large", architecture=str(models["wavlm"])))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no such model folder .*/upstream'"):  # a local folder, never a hub id
        build_upstream(UpstreamConfig(name="hf:facebook/w2v-bert-2.0", architecture="upstream"))


def test_missing_preprocessor_config_is_a_clear_error(models: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(models["wav2vec2"], tmp_path / "no_preprocessor")
    (folder / "preprocessor_config.json").unlink()
    for config in (
        UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(folder)),
        UpstreamConfig(name=f"hf:{folder}"),
    ):
        with pytest.raises(ConfigError, match="preprocessor_config.json"):
            build_upstream(config)
    with pytest.raises(ConfigError, match="no such model folder"):
        build_upstream(UpstreamConfig(name=f"hf:{tmp_path / 'absent'}"))
    with pytest.raises(ConfigError, match="tried it as a hub model id"):  # hub ids stay hub ids (offline here)
        build_upstream(UpstreamConfig(name="hf:facebook/w2v-bert-2.0"))
    with pytest.raises(ConfigError, match="set upstream.path"):
        build_upstream(UpstreamConfig(name="s3prl:hf_hubert_custom"))


def test_model_folders_under_the_home_directory(models: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """``~/...`` passed the folder checks but reached transformers unexpanded (as an invalid hub id), and s3prl's
    hf_*_custom then fell back to a hub feature extractor."""
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(models["wav2vec2"], tmp_path / "encoder")
    expected = build_upstream(UpstreamConfig(name=f"hf:{models['wav2vec2']}")).num_layers
    for config in (
        UpstreamConfig(name="hf:~/encoder"), UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path="~/encoder")
    ):
        assert build_upstream(config).num_layers == expected


def test_unknown_names_and_options_list_the_choices(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="unknown upstream 'fairseq'.*hf, s3prl"):
        build_upstream(UpstreamConfig(name="fairseq:wav2vec2"))
    with pytest.raises(ConfigError, match="<prefix>:<model>"):
        build_upstream(UpstreamConfig(name="wavlm_large"))
    with pytest.raises(ConfigError, match="unknown s3prl upstream 'no_such_model'.*wavlm_large"):
        build_upstream(UpstreamConfig(name="s3prl:no_such_model"))
    with pytest.raises(ConfigError, match="unknown option 'hiden_size'"):
        build_upstream(UpstreamConfig(name=f"hf:{models['wavlm']}", options={"hiden_size": 8}))


def test_weights_a_checkpoint_lacks_are_not_silently_random(models: dict[str, Path], tmp_path: Path, caplog) -> None:
    folder = models["wav2vec2"]
    with pytest.raises(ConfigError, match=r"no weights for \d+ encoder layer parameter\(s\), e.g. 'encoder.layers.2.*"
                                          r"upstream.options: \{'num_hidden_layers': 4\}"):
        build_upstream(UpstreamConfig(name=f"hf:{folder}", options={"num_hidden_layers": 4}))
    with pytest.raises(ConfigError, match=r"weights do not fit the configured architecture \(upstream.options: "
                                          r"\{'hidden_size': 48\}\)"):
        build_upstream(UpstreamConfig(name=f"hf:{folder}", options={"hidden_size": 48}))
    incomplete = tmp_path / "incomplete"
    shutil.copytree(folder, incomplete)
    weights = load_file(incomplete / "model.safetensors")
    save_file({key: value for key, value in weights.items() if "masked_spec_embed" not in key},
              incomplete / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        build_upstream(UpstreamConfig(name=f"hf:{incomplete}"))
    assert "the checkpoint lacks 1 weight(s), initialised at random: masked_spec_embed" in caplog.text


def test_too_short_utterance_is_a_data_error(models: dict[str, Path]) -> None:
    upstream = build_upstream(UpstreamConfig(name=f"hf:{models['w2v-bert']}"))
    wavs, wav_lens = padded_batch()
    wav_lens[1] = 500  # one fbank frame: no 20 ms output frame
    with pytest.raises(DataError, match="batch item 1: upstream .*: 500 samples, too short for one output frame"):
        upstream(wavs, wav_lens)
    s3prl = build_upstream(UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(models["wav2vec2"])))
    for samples in (700, 1000):  # s3prl zero-pads a batch of 700 to 800 samples; 1000 fails its frame-count check
        wav_lens[1] = samples
        with pytest.raises(DataError, match=f"batch item 1: upstream .*: {samples} samples; through s3prl it needs "
                                            f"at least 1040 \\(0.0650 s\\)"):
            s3prl(wavs, wav_lens)
    with torch.no_grad():  # the shortest that works, in a batch of its length (eval: no time masks of 10 frames)
        s3prl.eval()(wavs[:, :1040], torch.tensor([1040, 1040]))


def brute_force_s3prl_minimum(convolutions: list[tuple[int, int, int, int]], rate: int, longest: int) -> int:
    """The shortest length from which on (up to ``longest``) s3prl's frame counts agree within a factor of 2."""
    def passes(samples: int) -> bool:
        frames = samples
        for kernel, stride, padding, dilation in convolutions:
            frames = max((frames + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1, 0)
        expected = -(-samples // rate)
        return min(frames, expected) > 0 and max(frames, expected) // min(frames, expected) == 1

    failing = [samples for samples in range(800, longest) if not passes(samples)]
    return failing[-1] + 1 if failing else 800


@pytest.mark.parametrize("convolutions, rate", [
    ([(10, 5, 0, 1)] + [(3, 2, 0, 1)] * 4 + [(2, 2, 0, 1)] * 2, 320),  # wav2vec 2.0's
    ([(10, 5, 0, 1)] + [(3, 2, 0, 1)] * 6, 320),
    ([(160, 160, 0, 1)], 160),  # a small receptive field: the search range is s3prl's padding alone
    ([(7, 4, 3, 1), (5, 4, 2, 2), (3, 2, 1, 1)], 32),  # padding and dilation
])
def test_s3prl_minimum_length_matches_a_brute_force_search(convolutions, rate: int) -> None:
    from uattr.upstream.s3prl import s3prl_min_samples

    assert s3prl_min_samples(convolutions, rate) == brute_force_s3prl_minimum(convolutions, rate, 20000)


def test_the_s3prl_minimum_length_follows_the_front_end(tmp_path: Path) -> None:
    """Wider kernels, same 320 stride: s3prl's frame-count check fails up to a longer length, computed from them."""
    kernels = [10, 3, 3, 3, 3, 3, 3]
    folder = create_upstream("wav2vec2", tmp_path / "wide", **TINY_WAVEFORM, conv_kernel=kernels)
    upstream = build_upstream(UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(folder))).eval()
    assert upstream.min_samples == 1280  # 1040 with the default kernels
    wavs = 0.1 * torch.randn(1, 1700, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with pytest.raises(AssertionError):  # s3prl's own check, without uattr's: one sample short
            upstream.upstream(wavs[:, :1279], torch.tensor([1279]))
        for samples in range(1280, 1700, 7):
            upstream(wavs[:, :samples], torch.tensor([samples]))
        with pytest.raises(DataError, match="1279 samples; through s3prl it needs at least 1280 \\(0.0800 s\\)"):
            upstream(wavs[:, :1279], torch.tensor([1279]))
    strided = create_upstream("wav2vec2", tmp_path / "strided", **TINY_WAVEFORM, conv_stride=[5, 2, 2, 2, 2, 2, 1])
    with pytest.raises(ConfigError, match="stride 160 samples per frame, but s3prl counts 320 .* as hf:<folder>"):
        build_upstream(UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(strided)))


def test_create_upstream_is_seeded_atomic_and_rerunnable(tmp_path: Path) -> None:
    def weights(folder: Path) -> dict[str, torch.Tensor]:
        return load_file(folder / "model.safetensors")

    first = create_upstream("w2v-bert", tmp_path / "a", seed=1, **TINY)
    again = create_upstream("w2v-bert", tmp_path / "b", seed=1, **TINY)
    other = create_upstream("w2v-bert", tmp_path / "c", seed=2, **TINY)
    assert sorted(p.name for p in first.iterdir()) == [
        "config.json", "create_upstream.json", "model.safetensors", "preprocessor_config.json"
    ]
    a, b, c = weights(first), weights(again), weights(other)
    assert all(torch.equal(a[key], b[key]) for key in a) and not all(torch.equal(a[key], c[key]) for key in a)
    assert create_upstream("w2v-bert", first, seed=1, **TINY) == first  # same settings: kept
    with pytest.raises(ConfigError, match="not made with these settings"):
        create_upstream("w2v-bert", first, seed=3, **TINY)
    create_upstream("w2v-bert", first, seed=2, overwrite=True, **TINY)
    assert all(torch.equal(weights(first)[key], c[key]) for key in c)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary folders left behind
    with pytest.raises(ConfigError, match="unknown Wav2Vec2BertConfig field 'hiden_size'"):
        create_upstream("w2v-bert", tmp_path / "d", hiden_size=8)
    with pytest.raises(ConfigError, match="unknown architecture"):
        create_upstream("conformer", tmp_path / "e")
    assert not (tmp_path / "d").exists()


def test_create_upstream_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "encoder.yaml"
    config.write_text(yaml.safe_dump({**TINY_WAVEFORM, "feature_extractor": {"do_normalize": False}}))
    out = tmp_path / "encoder"
    assert uattr_main(["create-upstream", "--arch", "wav2vec2", "--config", str(config), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    upstream = build_upstream(UpstreamConfig(name=f"hf:{out}"))
    assert upstream.num_layers == 3 and not upstream.normalize and upstream.use_attention_mask
    config.write_text(yaml.safe_dump({"num_hidden_layer": 2}))
    assert uattr_main(["create-upstream", "--arch", "hubert", "--config", str(config), "--out", str(out) + "2"]) == 1


def test_quiet_commands_draw_no_hugging_face_progress_bars(tmp_path: Path) -> None:
    """-q leaves warnings and errors alone on stderr: a recipe's logs should not fill with "Writing model shards"."""
    config = tmp_path / "encoder.yaml"
    config.write_text(yaml.safe_dump(TINY))
    # Without the switch an earlier in-process -q run may have left in this process's environment.
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_DISABLE_PROGRESS_BARS"}
    stderr = {}
    for quiet in ("-q", ""):
        command = [sys.executable, "-m", "uattr", "create-upstream", "--arch", "w2v-bert", "--config", str(config),
                   "--out", str(tmp_path / f"encoder{quiet}"), *([quiet] if quiet else [])]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        stderr[quiet] = done.stderr
    assert "Writing model shards" in stderr[""] and "Writing model shards" not in stderr["-q"]


# WavLM: its first layer computes the relative-position bias that the layers above it take as an argument.
@pytest.mark.parametrize(
    ("name", "arch"), [("hf:{}", "w2v-bert"), ("hf:{}", "wavlm"), ("s3prl:hf_wav2vec2_custom", "wav2vec2")]
)
def test_gradient_scale_scales_only_what_the_upper_layers_send_down(
    models: dict[str, Path], name: str, arch: str
) -> None:
    def gradients(scale: float, read: int, from_layer: int = 2) -> dict[str, torch.Tensor]:
        """Encoder gradients of a loss on hidden state ``read``, with the gradient of layer ``from_layer``'s input
        scaled."""
        config = UpstreamConfig(
            name=name.format(models[arch]), path=str(models[arch]), finetune="full",
            options={"mask_time_prob": 0.0} if name.startswith("hf:") else {},
        )
        config.gradient_scale.from_layer, config.gradient_scale.scale = from_layer, scale
        upstream = build_upstream(config)
        upstream.eval()  # no dropout: the two runs must differ by the scale alone
        hidden, frame_lens = upstream(*padded_batch())
        hidden[read, 0, : frame_lens[0]].pow(2).sum().backward()
        return {key: p.grad for key, p in upstream.named_parameters() if p.grad is not None}

    full, scaled = gradients(1.0, read=2), gradients(0.25, read=2)
    lower = [key for key in full if ".layers.0." in key]
    upper = [key for key in full if ".layers.1." in key]
    assert lower and upper
    # Relative tolerance only: some lower gradients are tiny (WavLM's position-bias table: ~1e-7).
    for key in lower:  # the path from hidden state 2 down through layer 2 into hidden state 1 and below
        torch.testing.assert_close(scaled[key], 0.25 * full[key], atol=0, rtol=1e-5)
    for key in upper:  # layer 2's own parameters see hidden state 2's gradient unscaled
        torch.testing.assert_close(scaled[key], full[key], atol=0, rtol=1e-5)
    # A loss on hidden state 1 never passes through layer 2: nothing is scaled.
    direct_full, direct_scaled = gradients(1.0, read=1), gradients(0.0, read=1)
    assert [key for key in direct_full if ".layers.0." in key]
    for key in direct_full:
        torch.testing.assert_close(direct_scaled[key], direct_full[key])
    # Nor does a loss on hidden state 0, the input of layer 1 itself (the hidden state the encoder records for it
    # must be the unscaled tensor).
    direct_full, direct_scaled = gradients(1.0, read=0, from_layer=1), gradients(0.0, read=0, from_layer=1)
    assert direct_full
    for key in direct_full:
        torch.testing.assert_close(direct_scaled[key], direct_full[key])


def test_gradient_scale_options_are_checked(models: dict[str, Path]) -> None:
    def build(from_layer: int, scale: float = 0.5, finetune: str = "full") -> Upstream:
        config = UpstreamConfig(name=f"hf:{models['w2v-bert']}", finetune=finetune)
        config.gradient_scale.from_layer, config.gradient_scale.scale = from_layer, scale
        return build_upstream(config)

    with pytest.raises(ConfigError, match=r"gradient_scale.from_layer: 3 is not between 1 and the 2 layers"):
        build(3)
    with pytest.raises(ConfigError, match=r"gradient_scale.scale: must be ≥ 0, got -1"):
        build(1, scale=-1.0)
    with pytest.raises(ConfigError, match="gradient_scale: the encoder is frozen"):
        build(1, finetune="frozen")
    assert build(0, scale=1.0).num_layers == 3  # from_layer 0: off
    with pytest.raises(ConfigError, match=r"gradient_scale.scale: 0.3 without upstream.gradient_scale.from_layer "
                                          r"scales nothing"):
        build(0, scale=0.3)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("arch", ["w2v-bert", "wav2vec2"])
def test_a_model_cast_to_half_precision_embeds_float32_audio(
    models: dict[str, Path], arch: str, dtype: torch.dtype, device: str
) -> None:
    from uattr.attributes import AttributeConfig
    from uattr.branch import BranchConfig
    from uattr.losses import LossConfig
    from uattr.model import ModelConfig, UnifiedEncoder

    attributes = {
        pooling: AttributeConfig(dim=8, branch=BranchConfig(layers=[2, 1], pooling=pooling))
        for pooling in ("mean", "attention", "attentive_stats")
    }
    attributes["lang"] = AttributeConfig(expert="label", classes=["en", "fr"], loss=LossConfig("aam", {"margin": 0.2}))
    torch.manual_seed(0)
    model = UnifiedEncoder(ModelConfig(UpstreamConfig(name=f"hf:{models[arch]}"), attributes, "fixed"))
    waves = [0.1 * torch.randn(length, generator=torch.Generator().manual_seed(length)) for length in WAV_LENS]
    full = model.embed(waves, sample_rate=16000)
    half = model.to(device, dtype).embed(waves, sample_rate=16000)
    for name, embedding in half.items():
        assert embedding.dtype == dtype and embedding.device.type == device, name
        # Half precision keeps about 3 significant digits; the embeddings' entries are of order 0.1–1.
        torch.testing.assert_close(embedding.float().cpu(), full[name], atol=0.05, rtol=0.05)


def test_an_s3prl_upstream_in_half_precision_is_a_clear_error(models: dict[str, Path]) -> None:
    upstream = build_upstream(UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(models["wav2vec2"])))
    with pytest.raises(ConfigError, match="s3prl feeds its model float32 input, so the model must stay in float32"):
        upstream.to(torch.bfloat16)(*padded_batch())


@pytest.mark.parametrize("name", ["hf:{}", "s3prl:hf_wav2vec2_custom"])
def test_a_half_precision_checkpoint_loads_in_float32(models: dict[str, Path], tmp_path: Path, name: str) -> None:
    """transformers loads a checkpoint in the dtype its config names: the branches, optimisers and loss scaling
    need float32 weights (an fp16 encoder failed at the first scaled update, or at build time through s3prl)."""
    import transformers

    folder = tmp_path / "half"
    transformers.AutoModel.from_pretrained(models["wav2vec2"]).half().save_pretrained(folder)
    shutil.copy(models["wav2vec2"] / "preprocessor_config.json", folder)
    assert '"float16"' in (folder / "config.json").read_text()
    upstream = build_upstream(UpstreamConfig(name=name.format(folder), path=str(folder) if "s3prl" in name else None))
    assert {parameter.dtype for parameter in upstream.parameters()} == {torch.float32}
    hidden, _ = upstream(*padded_batch())
    assert hidden.dtype == torch.float32


@pytest.mark.parametrize("mask_time_prob", [0.5, 0.0])
@pytest.mark.parametrize("arch", ["w2v-bert", "wav2vec2"])
def test_a_batch_too_short_for_a_spec_augment_mask_trains_unmasked(
    models: dict[str, Path], arch: str, mask_time_prob: float
) -> None:
    """A padded batch of fewer frames than mask_time_length (0.2 s): transformers would raise. Without time masks
    (rate 0) the model has no mask embedding, and is given no mask."""
    options = {"mask_time_prob": mask_time_prob}
    upstream = build_upstream(UpstreamConfig(name=f"hf:{models[arch]}", options=options))
    upstream.train()
    wavs, wav_lens = torch.randn(2, 3000), torch.tensor([3000, 2500])
    hidden, frame_lens = upstream(wavs, wav_lens)
    assert hidden.shape[2] < upstream.model.config.mask_time_length and frame_lens.tolist()
    long_hidden, _ = upstream(*padded_batch())  # long enough: masked as usual
    assert long_hidden.shape[1] == 3


def test_an_s3prl_hf_expert_refuses_a_folder_of_another_model_type(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"holds a 'wavlm' model, and hf_wav2vec2_custom builds 'wav2vec2' ones"):
        build_upstream(UpstreamConfig(name="s3prl:hf_wav2vec2_custom", path=str(models["wavlm"])))


FAIRSEQ_TINY = {  # s3prl's own (fairseq-style) encoders: config keys of their checkpoints
    "extractor_mode": "layer_norm", "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2, "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
}


def pre_ln_wavlm_checkpoint(path: Path) -> Path:
    """A WavLM Large-style checkpoint (layer_norm_first: a final LayerNorm after the last layer), as s3prl's
    wavlm_local loads it."""
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    config = {**FAIRSEQ_TINY, "layer_norm_first": True, "conv_pos": 16, "conv_pos_groups": 4,
              "relative_position_embedding": True, "num_buckets": 32, "max_distance": 64, "gru_rel_pos": True}
    torch.manual_seed(0)
    model = WavLM(WavLMConfig(config))
    with torch.no_grad():
        model.encoder.layer_norm.weight.mul_(3.0)  # a final LayerNorm that changes its input
    torch.save({"cfg": config, "model": model.state_dict()}, path)
    return path


def test_s3prl_pre_ln_encoders_give_the_last_layers_output_and_train_their_cnn(tmp_path: Path) -> None:
    """Index L is the output of layer L, as hf: gives it (s3prl took the final LayerNorm's output); with finetune
    full the CNN gets gradients (s3prl's feature_grad_mult 0 ran it under no_grad)."""
    path = pre_ln_wavlm_checkpoint(tmp_path / "wavlm.pt")
    upstream = build_upstream(UpstreamConfig(name="s3prl:wavlm_local", path=str(path), finetune="full"))
    model = upstream.upstream.upstream.model
    last = {}
    model.encoder.layers[-1].register_forward_hook(lambda module, args, output: last.update(x=output[0]))
    upstream.train()
    hidden, frame_lens = upstream(*padded_batch())
    valid = int(frame_lens[0])
    torch.testing.assert_close(hidden[-1, 0, :valid], last["x"].transpose(0, 1)[0, :valid])
    hidden[-1].pow(2).sum().backward()
    assert all(parameter.grad is not None for parameter in model.feature_extractor.parameters())
    assert not any(parameter.requires_grad for parameter in model.encoder.layer_norm.parameters())  # unused
    frozen_cnn = build_upstream(UpstreamConfig(name="s3prl:wavlm_local", path=str(path)))  # frozen_frontend
    assert frozen_cnn.upstream.upstream.model.feature_grad_mult == 0.0


def test_s3prl_data2vec_with_stacked_positional_convolutions_is_not_padding_invariant(tmp_path: Path) -> None:
    from s3prl.upstream.data2vec.data2vec_model import Data2VecAudioConfig, Data2VecAudioModel

    config = {**FAIRSEQ_TINY, "conv_pos": 5, "conv_pos_groups": 4, "pos_conv_depth": 5}
    model = Data2VecAudioModel(Data2VecAudioConfig(**config))
    model.remove_pretraining_modules()
    torch.save({"task_cfg": {"normalize": True}, "model_cfg": config, "model_weight": {**model.state_dict(),
                                                                                      "_ema": None}},
               tmp_path / "d2v.pt")
    upstream = build_upstream(UpstreamConfig(name="s3prl:data2vec_local", path=str(tmp_path / "d2v.pt")))
    assert not upstream.padding_invariant
    upstream.eval()
    with torch.no_grad():  # what the flag says: an utterance's frames depend on the batch's padding
        wavs, wav_lens = padded_batch()
        hidden, _ = upstream(wavs, wav_lens)
        alone, alone_lens = upstream(wavs[1:2, : WAV_LENS[1]], wav_lens[1:2])
        assert not torch.allclose(alone[:, 0, : int(alone_lens[0])], hidden[:, 1, : int(alone_lens[0])], atol=1e-3)
