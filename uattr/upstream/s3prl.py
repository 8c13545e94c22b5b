"""``s3prl:<name>``: any s3prl upstream through ``s3prl.nn.S3PRLUpstream`` (package espnet-s3prl).

Names ending in ``_local``, ``_url`` or ``_custom`` load the checkpoint given as ``upstream.path``. The Hugging
Face ones (``hf_wav2vec2_custom``, ``hf_hubert_custom``) need a ``preprocessor_config.json`` in a local folder:
without one s3prl silently falls back to a hub model's feature extractor, so a missing file is an error here.
Frame lengths are s3prl's own hidden-state lengths. s3prl is imported on first use (it takes seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from uattr.errors import ConfigError
from uattr.registry import UPSTREAMS
from uattr.upstream.base import Upstream, UpstreamConfig, disable_layerdrop
from uattr.upstream.finetune import apply_finetune_policy
from uattr.upstream.hf import require_hf_folder

CHECKPOINT_SUFFIXES = ("_local", "_url", "_custom")
SAMPLE_RATE = 16000  # every s3prl upstream takes 16 kHz audio


class S3PRLHubUpstream(Upstream):
    """An ``s3prl.nn.S3PRLUpstream`` with its list of hidden states stacked into ``[L, B, T, D]``."""

    def __init__(self, name: str, upstream: Any) -> None:
        super().__init__()
        self.name = name
        self.upstream = upstream
        self.sample_rate = SAMPLE_RATE
        self.num_layers = upstream.num_layers
        if len(set(upstream.hidden_sizes)) != 1 or len(set(upstream.downsample_rates)) != 1:
            raise ConfigError(
                f"{name}: layers differ in size {sorted(set(upstream.hidden_sizes))} or frame rate "
                f"{sorted(set(upstream.downsample_rates))}; uattr needs one hidden size and one frame rate"
            )
        self.hidden_size = upstream.hidden_sizes[0]
        self.downsample_rate = upstream.downsample_rates[0]

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, lens = self.upstream(wavs, wav_lens.to(wavs.device))
        return torch.stack(hidden), lens[0]


@UPSTREAMS.register("s3prl")
def load_s3prl_upstream(config: UpstreamConfig) -> S3PRLHubUpstream:
    """Load ``s3prl:<name>`` (``config.path`` for checkpoint names, ``config.options`` as s3prl's extra_conf)."""
    from s3prl import hub
    from s3prl.nn import S3PRLUpstream as Loader

    name = config.name.split(":", 1)[1]
    if not name or not hasattr(hub, name):
        raise ConfigError(
            f"upstream '{config.name}': unknown s3prl upstream '{name}'; choices: {', '.join(Loader.available_names())}"
        )
    if name.endswith(CHECKPOINT_SUFFIXES) and not config.path:
        raise ConfigError(f"upstream '{config.name}' loads a checkpoint: set upstream.path")
    if name.startswith("hf_") and config.path:
        require_hf_folder(config.path, config.name)
    elif name.endswith("_local") and not Path(config.path).expanduser().exists():
        raise ConfigError(f"upstream '{config.name}': no such checkpoint '{config.path}'")
    try:
        loaded = Loader(name, path_or_url=config.path, extra_conf=dict(config.options))
    except OSError as error:
        raise ConfigError(f"upstream '{config.name}': cannot load it: {error}") from error
    disable_layerdrop(loaded)
    upstream = S3PRLHubUpstream(config.name, loaded)
    apply_finetune_policy(upstream, config)
    return upstream
