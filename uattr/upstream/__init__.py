"""Speech encoders behind one interface: ``build_upstream(UpstreamConfig) -> Upstream``.

Loaders register in :data:`uattr.registry.UPSTREAMS` under the name's prefix: ``hf:`` (transformers) and
``s3prl:`` (s3prl); plug-ins may add more.
"""

from __future__ import annotations

from uattr.errors import ConfigError
from uattr.registry import UPSTREAMS
from uattr.upstream import hf, s3prl  # noqa: F401  (importing registers the loaders)
from uattr.upstream.base import GradientScale, Upstream, UpstreamConfig
from uattr.upstream.finetune import apply_finetune_policy
from uattr.upstream.gradient_scale import apply_gradient_scale

__all__ = [
    "GradientScale",
    "Upstream",
    "UpstreamConfig",
    "apply_finetune_policy",
    "apply_gradient_scale",
    "build_upstream",
]


def build_upstream(config: UpstreamConfig) -> Upstream:
    """Load the encoder ``config.name`` names, with its fine-tuning policy and gradient scale applied."""
    prefix, colon, _ = config.name.partition(":")
    if not colon:
        raise ConfigError(
            f"upstream.name '{config.name}' must look like <prefix>:<model>; prefixes: {', '.join(UPSTREAMS.names())}"
        )
    upstream = UPSTREAMS.get(prefix)(config)
    apply_gradient_scale(upstream, config.gradient_scale)
    return upstream
