"""``s3prl:<name>``: any s3prl upstream through ``s3prl.nn.S3PRLUpstream`` (package espnet-s3prl).

Names ending in ``_local``, ``_url`` or ``_custom`` load the checkpoint given as ``upstream.path``. The Hugging
Face ones (``hf_wav2vec2_custom``, ``hf_hubert_custom``) need a ``preprocessor_config.json`` in a local folder:
without one s3prl silently falls back to a hub model's feature extractor, so a missing file is an error here.
s3prl is imported on first use (it takes seconds).

Frame lengths: s3prl reports ``ceil(samples / stride)`` frames and fills the one or two frames a CNN front end does
not produce by repeating the last one (alone) or with outputs at padded positions (in a batch). Masked pooling would
count those, and an embedding would depend on its batch; so where the front end is a stack of 1-D convolutions
(wav2vec 2.0, HuBERT, WavLM, data2vec, XLS-R), the lengths are the convolutions' real output lengths. s3prl also pads
a batch whose longest utterance is under 0.05 s with zeros it treats as audio, and its frame-count check fails just
above that (with the 400/320 front end of wav2vec 2.0 and HuBERT: up to 1039 samples), so shorter utterances are
refused; the minimum is computed from the front end's convolutions (``s3prl_min_samples``).

s3prl's own (fairseq-style) encoders are adjusted to the toolkit's conventions: a pre-LN encoder's final LayerNorm
is bypassed, so the last hidden state is the last layer's output (as with ``hf:``), and a policy that trains the
CNN sets ``feature_grad_mult`` to 1 (s3prl's 0 runs the CNN without gradients).

Architecture files (``upstream.architecture``) exist for the Hugging Face names only: their ``config.json`` and
``preprocessor_config.json``, from which the model is built with random weights. The other names build from a
checkpoint that holds configuration and weights together, so a saved model with one of them loads it through s3prl
again (from s3prl's cache, or downloaded) before its own weights replace the checkpoint's.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import transformers
from torch import nn

from uattr.errors import BatchItemError, ConfigError
from uattr.registry import UPSTREAMS
from uattr.upstream.base import Upstream, UpstreamConfig, disable_layerdrop, require_frames
from uattr.upstream.finetune import apply_finetune_policy
from uattr.upstream.hf import architecture_folder, require_hf_folder, save_hf_architecture

CHECKPOINT_SUFFIXES = ("_local", "_url", "_custom")
SAMPLE_RATE = 16000  # every s3prl upstream takes 16 kHz audio
PADDED_SAMPLES = 800  # s3prl's MIN_SECOND * 16 kHz: a shorter batch is zero-padded to it, as if it were audio
# s3prl's Hugging Face experts, each with the transformers model class as its expert module names it.
# With the model type each builds: a folder of another type would lose its own weights (a WavLM's position bias).
HF_EXPERTS = {
    "hf_wav2vec2_custom": ("s3prl.upstream.hf_wav2vec2.expert.Wav2Vec2Model", "wav2vec2"),
    "hf_hubert_custom": ("s3prl.upstream.hf_hubert.expert.HubertModel", "hubert"),
}


class RandomInitModel:
    """Stands in for a transformers model class in an s3prl expert module while it builds from architecture files:
    s3prl always calls ``<model class>.from_pretrained(folder)`` and has no switch for a weight-free build."""

    @staticmethod
    def from_pretrained(folder: str, *args: Any, **kwargs: Any) -> Any:
        return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(folder), dtype=torch.float32)


def float32_model(model_class: Any) -> Any:
    """``model_class`` with a ``from_pretrained`` that loads float32 weights: transformers loads a checkpoint in the
    dtype its config names, and s3prl feeds its model float32 input."""

    class Float32Model:
        @staticmethod
        def from_pretrained(folder: str, *args: Any, **kwargs: Any) -> Any:
            return model_class.from_pretrained(folder, *args, **{**kwargs, "dtype": torch.float32})

    return Float32Model


class S3PRLHubUpstream(Upstream):
    """An ``s3prl.nn.S3PRLUpstream`` with its list of hidden states stacked into ``[L, B, T, D]``."""

    def __init__(self, name: str, upstream: Any) -> None:
        super().__init__()
        self.name = name
        self.upstream = upstream
        self.saves_architecture = name.split(":", 1)[1] in HF_EXPERTS
        self.sample_rate = SAMPLE_RATE
        self.num_layers = upstream.num_layers
        if len(set(upstream.hidden_sizes)) != 1 or len(set(upstream.downsample_rates)) != 1:
            raise ConfigError(
                f"{name}: layers differ in size {sorted(set(upstream.hidden_sizes))} or frame rate "
                f"{sorted(set(upstream.downsample_rates))}; uattr needs one hidden size and one frame rate"
            )
        self.hidden_size = upstream.hidden_sizes[0]
        self.downsample_rate = upstream.downsample_rates[0]
        try:
            frontend: nn.Module | None = self.frontend_module()
        except ConfigError:  # not a CNN front end s3prl exposes as ``feature_extractor``
            frontend = None
        self.convolutions = conv_geometry(frontend)
        stride = math.prod(c[1] for c in self.convolutions) if self.convolutions is not None else None
        if stride not in (None, self.downsample_rate):  # s3prl's HF experts say 320 whatever the config
            raise ConfigError(
                f"{name}: its convolutions stride {stride} samples per frame, but s3prl counts "
                f"{self.downsample_rate} (its frame-count check would fail, and the frame lengths would be wrong); "
                f"a Hugging Face model folder loads as hf:<folder>"
            )
        self.min_samples = s3prl_min_samples(self.convolutions, self.downsample_rate)
        # s3prl's experts pass a padding mask to the transformer; a GroupNorm in the CNN still sees the padding, and
        # so do stacked positional convolutions (data2vec's): the padding they read is no longer zero after the first.
        positional = getattr(getattr(getattr(upstream.upstream, "model", None), "encoder", None), "pos_conv", None)
        self.padding_invariant = (
            self.convolutions is not None
            and not any(isinstance(module, nn.GroupNorm) for module in frontend.modules())
            and (positional is None or sum(isinstance(m, nn.Conv1d) for m in positional.modules()) <= 1)
        )

    def frame_lengths(self, wav_lens: torch.Tensor, reported: torch.Tensor) -> torch.Tensor:
        """Frames the CNN front end really produces (``reported``, s3prl's count, where it is not a CNN)."""
        if self.convolutions is None:
            return reported
        return torch.minimum(conv_output_lengths(wav_lens, self.convolutions), reported)

    def save_architecture(self, directory: Path) -> None:
        if not self.saves_architecture:
            super().save_architecture(directory)
        expert = self.upstream.upstream  # s3prl's UpstreamExpert of an HF model
        save_hf_architecture(expert.model.config, expert.extracter, directory)

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = next(self.upstream.parameters()).dtype
        if dtype != torch.float32:  # s3prl's experts build float32 inputs themselves (via numpy)
            raise ConfigError(
                f"upstream {self.name}: s3prl feeds its model float32 input, so the model must stay in float32, not "
                f"{dtype}; for half precision run it in float32 under torch.autocast"
            )
        wav_lens = wav_lens.to(wavs.device)
        short = (wav_lens < self.min_samples).nonzero().flatten().tolist()
        if short:
            raise BatchItemError(
                f"upstream {self.name}: {int(wav_lens[short[0]])} samples; through s3prl it needs at least "
                f"{self.min_samples} ({self.min_samples / SAMPLE_RATE:.4f} s); drop utterances this short from the "
                f"data", short[0]
            )
        hidden, lens = self.upstream(wavs, wav_lens)
        frame_lens = self.frame_lengths(wav_lens, lens[0])
        require_frames(frame_lens, wav_lens, self.name)
        return torch.stack(hidden)[:, :, : int(frame_lens.max())], frame_lens


def conv_geometry(frontend: nn.Module | None) -> list[tuple[int, int, int, int]] | None:
    """(kernel, stride, padding, dilation) of each 1-D convolution of the front end, in order; None where the
    front end is not such a stack (none found, or one without plain numeric convolutions)."""
    if frontend is None:
        return None
    convolutions = [module for module in frontend.modules() if isinstance(module, nn.Conv1d)]
    if not convolutions or any(isinstance(conv.padding, str) for conv in convolutions):
        return None
    return [(conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]) for conv in convolutions]


def conv_output_lengths(lens: torch.Tensor, convolutions: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """Output frames of a stack of 1-D convolutions (``conv_geometry``) for inputs of ``lens`` samples."""
    for kernel, stride, padding, dilation in convolutions:
        span = dilation * (kernel - 1) + 1
        lens = (torch.div(lens + 2 * padding - span, stride, rounding_mode="floor") + 1).clamp(min=0)
    return lens


def s3prl_min_samples(convolutions: list[tuple[int, int, int, int]] | None, downsample_rate: int) -> int:
    """The fewest samples from which on every length passes ``S3PRLUpstream``: it zero-pads a batch under
    PADDED_SAMPLES as if that were audio, and its ``_match_length`` asserts that the front end's frame count and
    ``ceil(samples / downsample_rate)`` differ by less than a factor of 2, whichever is larger. Without a known front
    end, only the padding is avoided."""
    if convolutions is None:
        return PADDED_SAMPLES
    # Past 2 * (receptive field + padding) + downsample_rate samples, the computed frames exceed half the expected
    # ones (and stay under twice them), so the lengths below that bound are all that can fail.
    field, jump, padding = 1, 1, 0
    for kernel, stride, pad, dilation in convolutions:
        field, padding, jump = field + dilation * (kernel - 1) * jump, padding + 2 * pad * jump, jump * stride
    lens = torch.arange(PADDED_SAMPLES, max(PADDED_SAMPLES, 2 * (field + padding) + downsample_rate) + 1)
    computed = conv_output_lengths(lens, convolutions)
    expected = torch.div(lens + downsample_rate - 1, downsample_rate, rounding_mode="floor")
    larger, smaller = torch.maximum(computed, expected), torch.minimum(computed, expected)
    failing = lens[(smaller == 0) | (larger // smaller.clamp(min=1) != 1)]
    return int(failing.max()) + 1 if failing.numel() else PADDED_SAMPLES


@UPSTREAMS.register("s3prl")
def load_s3prl_upstream(config: UpstreamConfig) -> S3PRLHubUpstream:
    """Load ``s3prl:<name>`` (``config.path`` for checkpoint names, ``config.options`` as s3prl's extra_conf); with
    ``config.architecture`` (HF names only), build it from that folder with random weights instead."""
    from s3prl import hub
    from s3prl.nn import S3PRLUpstream as Loader

    name = config.name.split(":", 1)[1]
    if not name or not hasattr(hub, name):
        raise ConfigError(
            f"upstream '{config.name}': unknown s3prl upstream '{name}'; choices: {', '.join(Loader.available_names())}"
        )
    architecture = architecture_folder(config)
    if architecture and name not in HF_EXPERTS:
        raise ConfigError(
            f"upstream '{config.name}': only {', '.join(HF_EXPERTS)} build from architecture files "
            f"(upstream.architecture); the others need their checkpoint"
        )
    checkpoint = architecture or (os.path.expanduser(config.path) if config.path else config.path)
    if name.endswith(CHECKPOINT_SUFFIXES) and not checkpoint:
        raise ConfigError(f"upstream '{config.name}' loads a checkpoint: set upstream.path")
    if name in HF_EXPERTS and checkpoint:
        require_hf_folder(checkpoint, config.name)
        model_type, expected = transformers.AutoConfig.from_pretrained(checkpoint).model_type, HF_EXPERTS[name][1]
        if model_type != expected:
            raise ConfigError(
                f"upstream '{config.name}': {checkpoint} holds a '{model_type}' model, and {name} builds "
                f"'{expected}' ones (its own weights would be dropped); load it as hf:{checkpoint}"
            )
    elif name.endswith("_local") and not Path(checkpoint).expanduser().exists():
        raise ConfigError(f"upstream '{config.name}': no such checkpoint '{checkpoint}'")
    if name in HF_EXPERTS:
        class_path = HF_EXPERTS[name][0]
        module, model_class = class_path.rsplit(".", 1)
        original = getattr(importlib.import_module(module), model_class)
        loader = mock.patch(class_path, RandomInitModel if architecture else float32_model(original))
    else:
        loader = contextlib.nullcontext()
    try:
        with loader:
            loaded = Loader(name, path_or_url=checkpoint, extra_conf=dict(config.options))
    except OSError as error:
        raise ConfigError(f"upstream '{config.name}': cannot load it: {error}") from error
    disable_layerdrop(loaded)
    upstream = S3PRLHubUpstream(config.name, loaded)
    apply_finetune_policy(upstream, config)
    fairseq_model = getattr(loaded.upstream, "model", None)
    if hasattr(fairseq_model, "feature_grad_mult"):  # s3prl's fairseq-style experts
        bypass_final_layer_norm(fairseq_model.encoder)
        # s3prl sets 0, which runs the CNN under no_grad whatever requires_grad says: a trained front end needs 1.
        trained = any(parameter.requires_grad for parameter in fairseq_model.feature_extractor.parameters())
        fairseq_model.feature_grad_mult = 1.0 if trained else 0.0
    return upstream


def bypass_final_layer_norm(encoder: nn.Module) -> None:
    """A pre-LN fairseq encoder (``layer_norm_first``: WavLM, HuBERT and wav2vec 2.0 Large, XLS-R) ends with a
    LayerNorm, and s3prl takes the encoder's output as the last hidden state: index L would be LN(output of layer
    L), unlike the other indices and unlike hf: for the same checkpoint. That LayerNorm passes its input through
    here, and its parameters, unused then, are frozen."""
    norm = getattr(encoder, "layer_norm", None)
    if getattr(encoder, "layer_norm_first", False) and isinstance(norm, nn.Module):
        norm.register_forward_hook(lambda module, inputs, output: inputs[0])
        norm.requires_grad_(False)
