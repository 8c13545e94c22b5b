"""Randomly initialised encoder folders in Hugging Face format, for tests and the mini recipe.

No pretrained speech model can be fetched offline, so small encoders are built from a configuration instead. A
folder holds ``config.json``, ``model.safetensors`` and the matching ``preprocessor_config.json``; it loads as
``hf:<folder>`` and (wav2vec2, hubert) as ``s3prl:hf_wav2vec2_custom`` / ``s3prl:hf_hubert_custom`` with that path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
import transformers

from uattr.errors import ConfigError
from uattr.fileio import atomic_dir

logger = logging.getLogger(__name__)

SPEC_FILE = "create_upstream.json"  # what made the folder, so a re-run can tell "done" from "different"
FEATURE_EXTRACTOR_KEY = "feature_extractor"  # override section for the feature extractor's settings


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Names of the transformers classes of one architecture and its feature extractor's defaults."""

    config_class: str
    model_class: str
    extractor_class: str
    extractor_defaults: dict[str, Any]


_WAVEFORM_EXTRACTOR = {"feature_size": 1, "sampling_rate": 16000, "padding_value": 0.0, "do_normalize": True}

ARCHITECTURES: dict[str, Architecture] = {
    # Feature-extractor settings of facebook/w2v-bert-2.0's preprocessor_config.json (padding_value 1).
    "w2v-bert": Architecture(
        "Wav2Vec2BertConfig",
        "Wav2Vec2BertModel",
        "SeamlessM4TFeatureExtractor",
        {"feature_size": 80, "num_mel_bins": 80, "stride": 2, "sampling_rate": 16000, "padding_value": 1.0},
    ),
    "wav2vec2": Architecture("Wav2Vec2Config", "Wav2Vec2Model", "Wav2Vec2FeatureExtractor", _WAVEFORM_EXTRACTOR),
    "hubert": Architecture("HubertConfig", "HubertModel", "Wav2Vec2FeatureExtractor", _WAVEFORM_EXTRACTOR),
    "wavlm": Architecture("WavLMConfig", "WavLMModel", "Wav2Vec2FeatureExtractor", _WAVEFORM_EXTRACTOR),
}


def create_upstream(
    arch: str, out_dir: str | os.PathLike, seed: int = 0, overwrite: bool = False, **overrides: Any
) -> Path:
    """Write a random ``arch`` encoder (HF config fields overridden by ``overrides``) to ``out_dir``; return it.

    A ``feature_extractor`` mapping in ``overrides`` sets feature-extractor fields. The folder appears whole or not
    at all. If it already exists from the same arguments it is kept; from other arguments it is an error unless
    ``overwrite``.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture '{arch}'; choices: {', '.join(ARCHITECTURES)}")
    spec = {"arch": arch, "seed": seed, "overrides": overrides}
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        if _read_spec(out_dir) == json.loads(json.dumps(spec)):
            logger.info("%s exists with the same settings; kept", out_dir)
            return out_dir
        raise ConfigError(
            f"{out_dir} exists and was not made with these settings; remove it, or replace it (--overwrite)"
        )
    architecture = ARCHITECTURES[arch]
    model_overrides = dict(overrides)
    extractor_overrides = model_overrides.pop(FEATURE_EXTRACTOR_KEY, None) or {}
    config = _build_config(architecture, model_overrides)
    extractor = _build_extractor(architecture, config, extractor_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, architecture.model_class)(config)
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging)
        extractor.save_pretrained(staging)
        (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("wrote a random %s encoder (%d parameters) to %s", arch, model.num_parameters(), out_dir)
    return out_dir


def _build_config(architecture: Architecture, overrides: dict[str, Any]) -> Any:
    config_class = getattr(transformers, architecture.config_class)
    known = config_class().to_dict()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown {architecture.config_class} field '{unknown[0]}'"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; '{FEATURE_EXTRACTOR_KEY}:' holds feature-extractor fields"
        )
    try:
        return config_class(**overrides)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{architecture.config_class}: {error}") from error


def _build_extractor(architecture: Architecture, config: Any, overrides: dict[str, Any]) -> Any:
    settings = dict(architecture.extractor_defaults)
    if architecture.extractor_class == "Wav2Vec2FeatureExtractor":
        # Group-normed CNN front ends were trained without an attention mask, layer-normed ones with it.
        settings["return_attention_mask"] = config.feat_extract_norm == "layer"
    settings.update(overrides)
    extractor = getattr(transformers, architecture.extractor_class)(**settings)
    if architecture.model_class == "Wav2Vec2BertModel":
        features = extractor.num_mel_bins * extractor.stride
        if features != config.feature_projection_input_dim:
            raise ConfigError(
                f"the feature extractor gives {features}-d features (num_mel_bins × stride) but "
                f"feature_projection_input_dim is {config.feature_projection_input_dim}"
            )
    return extractor


def _read_spec(folder: Path) -> Any:
    try:
        return json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

