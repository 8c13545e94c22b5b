"""Fine-tuning policies: which encoder parameters train.

* ``frozen``: nothing trains; the encoder runs in eval mode and without an autograd graph;
* ``frozen_frontend``: the front end (CNN feature encoder, or w2v-BERT's fbank feature projection) is frozen and
  the rest trains, the usual post-training set-up;
* ``full``: everything trains;
* ``top_n``: only the top ``top_n`` transformer/conformer layers train.

Only ``frozen`` switches the encoder to eval mode; the partial policies freeze by ``requires_grad`` alone, as
Hugging Face's ``freeze_feature_encoder`` does, so frozen layers keep their dropout in training.

``gradient_checkpointing`` turns on the Hugging Face model's activation checkpointing where there is one.
"""

from __future__ import annotations

import logging

from torch import nn

from uattr.errors import ConfigError
from uattr.upstream.base import Upstream, UpstreamConfig

logger = logging.getLogger(__name__)

POLICIES = ("frozen", "frozen_frontend", "full", "top_n")


def apply_finetune_policy(upstream: Upstream, config: UpstreamConfig) -> None:
    """Set ``requires_grad`` (and the frozen flag) of ``upstream``'s parameters as ``config.finetune`` says."""
    policy = config.finetune
    if policy not in POLICIES:
        raise ConfigError(f"upstream.finetune: unknown policy '{policy}'; choices: {', '.join(POLICIES)}")
    if config.top_n and policy != "top_n":  # a number of layers that trains nothing differently
        raise ConfigError(f"upstream.top_n: {config.top_n} applies to finetune: top_n only, not to '{policy}'")
    upstream.frozen = policy == "frozen"
    upstream.train(upstream.training)  # a frozen encoder switches to eval mode now
    _set_trainable(upstream, policy in ("frozen_frontend", "full"))
    if policy == "frozen_frontend":
        _set_trainable(upstream.frontend_module(), False)
    elif policy == "top_n":
        layers = upstream.encoder_layers()
        if not 1 <= config.top_n <= len(layers):
            raise ConfigError(
                f"upstream.top_n: {config.top_n} is not between 1 and the {len(layers)} layers of {upstream.name}"
            )
        for layer in layers[len(layers) - config.top_n :]:
            _set_trainable(layer, True)
    if config.gradient_checkpointing:
        if upstream.frozen:
            logger.info("%s: gradient_checkpointing is pointless for a frozen encoder; left off", upstream.name)
        elif not _enable_gradient_checkpointing(upstream):
            logger.warning("%s: no gradient checkpointing support found; training without it", upstream.name)


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    module.requires_grad_(trainable)
    # HF's CNN feature encoder marks its *input* as requiring grad while this flag is set, which would keep a
    # frozen front end's activations for a backward pass that never comes.
    for child in module.modules():
        if hasattr(child, "_requires_grad"):
            child._requires_grad = trainable


def _enable_gradient_checkpointing(upstream: Upstream) -> bool:
    """Turn on checkpointing in every HF model inside ``upstream`` (non-reentrant: works with frozen inputs)."""
    found = False
    for module in upstream.modules():
        if getattr(module, "supports_gradient_checkpointing", False):
            # transformers 5 renamed it; 4.x only has the old name.
            enable = getattr(module, "activation_checkpointing_enable", None) or module.gradient_checkpointing_enable
            enable({"use_reentrant": False})
            found = True
    return found
