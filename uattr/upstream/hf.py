"""``hf:<model id or local folder>``: Hugging Face transformers speech encoders.

Two input kinds behind the one :class:`~uattr.upstream.base.Upstream` interface:

* raw-waveform models (Wav2Vec2, HuBERT, WavLM, Data2Vec-audio): per-utterance normalisation when the feature
  extractor says ``do_normalize`` (masked, so padding changes nothing), ``attention_mask`` when the model's conv
  front end is layer-normed (``feat_extract_norm == "layer"``; group-normed models were trained without one),
  frame lengths from the model's ``_get_feat_extract_output_lengths``;
* w2v-BERT 2.0 (``Wav2Vec2BertModel``): the fbank front end of :mod:`uattr.upstream.frontend`, batched in torch.

With an attention mask, an utterance's hidden states do not depend on the padding around it in a batch, except
for Data2Vec-audio: its stacked positional convolutions carry padding into the last frames (a model property).
Those and the group-normed models are not ``padding_invariant``: embed() and extraction encode them one utterance
at a time.

An encoder's architecture files are its ``config.json`` (as run: options applied, layerdrop off) and
``preprocessor_config.json``; with ``upstream.architecture`` the model is built from them by ``from_config``, with
random weights, reading nothing from ``name`` (which may be a hub id or a folder that no longer exists).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
import transformers

from uattr.errors import ConfigError
from uattr.fileio import looks_local
from uattr.registry import UPSTREAMS
from uattr.upstream.base import Upstream, UpstreamConfig, disable_layerdrop, require_frames
from uattr.upstream.finetune import apply_finetune_policy
from uattr.upstream.frontend import StackedFbank

logger = logging.getLogger(__name__)

FBANK_MODEL_TYPES = ("wav2vec2-bert",)
WAVEFORM_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
REQUIRED_FILES = ("config.json", "preprocessor_config.json")
NORMALISATION_FLOOR = 1e-7  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


def architecture_folder(config: UpstreamConfig) -> str | None:
    """``config.architecture`` as an absolute path: always a local folder, never taken for a hub id."""
    return str(Path(config.architecture).expanduser().absolute()) if config.architecture else None


def save_hf_architecture(model_config: Any, feature_extractor: Any, directory: Path) -> None:
    """Write the files an HF encoder is built from without weights (the :data:`REQUIRED_FILES`)."""
    model_config.save_pretrained(directory)
    feature_extractor.save_pretrained(directory)


def _load_weights(config: UpstreamConfig, source: str, model_config: Any) -> Any:
    """The pretrained model. transformers only logs the weights a checkpoint lacks and initialises them at random:
    here a missing encoder layer (``upstream.options`` asking for more layers than the checkpoint has, or an
    incomplete checkpoint) is an error, and any other missing weight a warning; a weight of another shape (an
    option that changes a size) is an error naming the options."""
    try:
        # float32 whatever the checkpoint's dtype: the branches, the optimisers and fp16 loss scaling need it
        model, info = transformers.AutoModel.from_pretrained(
            source, config=model_config, output_loading_info=True, dtype=torch.float32
        )
    except OSError as error:
        raise ConfigError(f"{config.name}: cannot load the model weights: {error}") from error
    except RuntimeError as error:  # size mismatches
        raise ConfigError(
            f"{config.name}: the checkpoint's weights do not fit the configured architecture (upstream.options: "
            f"{dict(config.options) or 'none'}): {error}"
        ) from None
    missing = sorted(info.get("missing_keys", []))
    layers = [key for key in missing if ".layers." in key]
    if layers:
        raise ConfigError(
            f"{config.name}: the checkpoint has no weights for {len(layers)} encoder layer parameter(s), e.g. "
            f"'{layers[0]}' (upstream.options: {dict(config.options) or 'none'}); they would be random"
        )
    if missing:
        logger.warning("%s: the checkpoint lacks %d weight(s), initialised at random: %s", config.name, len(missing),
                       ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""))
    return model


def require_hf_folder(source: str, what: str) -> None:
    """A local HF folder must exist and hold the model and feature-extractor configs (hub ids are left to HF)."""
    if not looks_local(source):
        return
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{what}: no such model folder '{source}'")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{what}: model folder '{source}' has no {' or '.join(missing)}; a folder made with "
            f"'uattr create-upstream' or saved with save_pretrained() plus its feature extractor has both"
        )


class HFUpstream(Upstream):
    """A transformers encoder returning all its hidden states; subclasses turn waveforms into model inputs."""

    saves_architecture = True

    def __init__(self, name: str, model: Any, feature_extractor: Any) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.feature_extractor = feature_extractor  # kept for save_architecture()
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.num_layers = model.config.num_hidden_layers + 1
        self.hidden_size = model.config.hidden_size

    def save_architecture(self, directory: Path) -> None:
        save_hf_architecture(self.model.config, self.feature_extractor, directory)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Valid frames of the hidden states of each utterance."""
        raise NotImplementedError

    def _model_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's keyword arguments for a padded batch."""
        raise NotImplementedError

    def _sequence_length(self, inputs: dict[str, torch.Tensor]) -> int:
        """Frames of the padded batch ``inputs`` describe, as the encoder layers see them."""
        raise NotImplementedError

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wav_lens = wav_lens.to(wavs.device)
        frame_lens = self.frame_lengths(wav_lens)
        require_frames(frame_lens, wav_lens, self.name)
        inputs = self._model_inputs(wavs[:, : int(wav_lens.max())], wav_lens)
        # The features are computed in float32; a model cast to half precision (model.to(torch.bfloat16)) takes
        # them in its own dtype.
        dtype = self.model.dtype
        inputs = {key: value.to(dtype) if value.is_floating_point() else value for key, value in inputs.items()}
        config = self.model.config
        if self.model.training and getattr(config, "mask_time_prob", 0) > 0:  # (else no mask embedding to take one)
            frames = self._sequence_length(inputs)
            if frames < getattr(config, "mask_time_length", 0):
                # SpecAugment cannot place one time mask in so few frames (transformers raises): this batch goes
                # unmasked, as a batch of short utterances would be left alone by a masking rate anyway.
                inputs["mask_time_indices"] = torch.zeros(len(wavs), frames, dtype=torch.bool, device=wavs.device)
        outputs = self.model(**inputs, output_hidden_states=True, return_dict=True)
        return torch.stack(outputs.hidden_states), frame_lens


class HFWaveformUpstream(HFUpstream):
    """Wav2Vec2-style encoders: raw waveform through a strided CNN, 320 samples per frame at 16 kHz."""

    def __init__(self, name: str, model: Any, feature_extractor: Any) -> None:
        super().__init__(name, model, feature_extractor)
        self.normalize = bool(getattr(feature_extractor, "do_normalize", False))
        self.padding_value = float(getattr(feature_extractor, "padding_value", 0.0))
        self.use_attention_mask = getattr(model.config, "feat_extract_norm", "layer") == "layer"
        self.padding_invariant = self.use_attention_mask and model.config.model_type != "data2vec-audio"
        self.downsample_rate = math.prod(model.config.conv_stride)

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        # Hidden states come from the encoder layers, before any adapter, so the adapter's stride never applies.
        if getattr(self.model.config, "add_adapter", False):
            return self.model._get_feat_extract_output_lengths(wav_lens, add_adapter=False)
        return self.model._get_feat_extract_output_lengths(wav_lens)

    def _model_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = torch.arange(wavs.shape[1], device=wavs.device)[None, :] < wav_lens[:, None]
        values = wavs.float()
        if self.normalize:
            count = wav_lens[:, None].float()
            mean = (values * mask).sum(1, keepdim=True) / count
            variance = (((values - mean) * mask) ** 2).sum(1, keepdim=True) / count
            values = (values - mean) / torch.sqrt(variance + NORMALISATION_FLOOR)
        inputs = {"input_values": values.masked_fill(~mask, self.padding_value)}
        if self.use_attention_mask:
            inputs["attention_mask"] = mask.long()
        return inputs

    def _sequence_length(self, inputs: dict[str, torch.Tensor]) -> int:
        return int(self.frame_lengths(torch.tensor([inputs["input_values"].shape[1]])))


class HFFbankUpstream(HFUpstream):
    """w2v-BERT 2.0: stacked 160-d fbank, 20 ms frames; "frozen_frontend" freezes its feature projection."""

    padding_invariant = True

    def __init__(self, name: str, model: Any, feature_extractor: Any) -> None:
        super().__init__(name, model, feature_extractor)
        self.fbank = StackedFbank.from_feature_extractor(feature_extractor)
        self.downsample_rate = self.fbank.downsample_rate
        expected = model.config.feature_projection_input_dim
        if self.fbank.output_dim != expected:
            raise ConfigError(
                f"{name}: the feature extractor gives {self.fbank.output_dim}-d features (num_mel_bins × stride) "
                f"but the model's feature_projection_input_dim is {expected}"
            )

    def frame_lengths(self, wav_lens: torch.Tensor) -> torch.Tensor:
        return self.fbank.frame_lengths(wav_lens)

    def _model_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        features, mask, _ = self.fbank(wavs, wav_lens)
        return {"input_features": features, "attention_mask": mask}

    def _sequence_length(self, inputs: dict[str, torch.Tensor]) -> int:
        return inputs["input_features"].shape[1]

    def frontend_module(self) -> torch.nn.Module:
        return self.model.feature_projection


@UPSTREAMS.register("hf")
def load_hf_upstream(config: UpstreamConfig) -> HFUpstream:
    """Load ``hf:<id or folder>`` with layerdrop off and ``config.options`` as HF config overrides; with
    ``config.architecture``, build it from that folder with random weights instead."""
    source = config.name.split(":", 1)[1] or config.path or ""
    if not source or (config.path and config.path != source):
        raise ConfigError(f"upstream '{config.name}': name the model once, as hf:<model id or local folder>")
    source = os.path.expanduser(source)  # transformers takes '~/m' for a hub id
    folder = architecture_folder(config) or source
    require_hf_folder(folder, config.name)
    try:
        model_config = transformers.AutoConfig.from_pretrained(folder)
        feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    except OSError as error:
        where = "" if looks_local(folder) else " (no local folder of that name; tried it as a hub model id)"
        raise ConfigError(f"{config.name}: cannot load the model's configuration{where}: {error}") from error
    model_type = model_config.model_type
    if model_type not in FBANK_MODEL_TYPES + WAVEFORM_MODEL_TYPES:
        raise ConfigError(
            f"{config.name}: model type '{model_type}' is not supported; supported: "
            f"{', '.join(FBANK_MODEL_TYPES + WAVEFORM_MODEL_TYPES)}"
        )
    for key, value in config.options.items():
        if not hasattr(model_config, key):
            raise ConfigError(f"{config.name}: unknown option '{key}' (not a field of the {model_type} config)")
        setattr(model_config, key, value)
    if config.architecture:
        model = transformers.AutoModel.from_config(model_config, dtype=torch.float32)
    else:
        model = _load_weights(config, source, model_config)
    disable_layerdrop(model)
    kind = HFFbankUpstream if model_type in FBANK_MODEL_TYPES else HFWaveformUpstream
    upstream = kind(config.name, model, feature_extractor)
    apply_finetune_policy(upstream, config)
    return upstream
