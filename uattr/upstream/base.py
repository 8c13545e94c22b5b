"""The one interface every speech encoder ("upstream") presents to the attribute branches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from uattr.errors import BatchItemError, ConfigError

FinetunePolicy = Literal["frozen", "frozen_frontend", "full", "top_n"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclasses.dataclass
class GradientScale:
    """``scale`` multiplies the gradient flowing from encoder layer ``from_layer`` (and above) into the hidden state
    below it (``from_layer - 1``); hidden state ``l`` is the output of layer ``l``. ``from_layer`` 0 is off.
    See :mod:`uattr.upstream.gradient_scale` for why."""

    from_layer: int = 0
    scale: float = 1.0


@dataclasses.dataclass
class UpstreamConfig:
    """Which encoder to load and how much of it to train.

    ``name`` is ``hf:<model id or local folder>`` (transformers) or ``s3prl:<upstream name>`` (s3prl, with
    ``path`` for the local-checkpoint names such as ``hf_wav2vec2_custom``). ``options`` go to the loader: Hugging
    Face config overrides for ``hf:`` (e.g. ``mask_time_prob: 0.0``), s3prl ``extra_conf`` for ``s3prl:``.

    ``architecture`` is a local folder of weight-free architecture files (what ``save_pretrained`` writes as
    ``<model>/upstream/``): the loader builds the encoder from it with random weights, so the original model
    folder or hub id in ``name``/``path`` is never read and stays only as the record of where the encoder came from.
    """

    name: str
    path: str | None = None
    finetune: FinetunePolicy = "frozen_frontend"
    top_n: int = 0  # trainable top layers when finetune == "top_n"
    gradient_checkpointing: bool = False
    gradient_scale: GradientScale = dataclasses.field(default_factory=GradientScale)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to the loader
    architecture: str | None = None  # build from these architecture files, random weights (see above)


class Upstream(nn.Module):
    """Waveforms in, all hidden states out.

    ``forward(wavs [B, S] float at sample_rate, wav_lens [B])`` returns ``(hidden [L, B, T, D], frame_lens [B])``.
    Index 0 of ``L`` is the input to the first transformer/conformer layer (after the front end), index ``l``
    the output of layer ``l``; ``num_layers`` is ``L`` and never changes (layerdrop is forced off).
    Frames beyond ``frame_lens[b]`` are padding and must be ignored downstream.

    Subclasses implement :meth:`_forward`; :meth:`forward` adds what every encoder shares: no autograd graph
    when the encoder is frozen, and the constant-layer-count check.
    """

    name: str = "upstream"  # the configured name, for messages
    sample_rate: int = 16000
    num_layers: int
    hidden_size: int
    downsample_rate: int  # input samples per output frame
    frozen: bool = False  # set by the "frozen" fine-tuning policy: eval mode and no autograd graph
    saves_architecture: bool = False  # whether save_architecture() can write files to rebuild it without weights
    # Whether an utterance's valid hidden states are the same alone and in a padded batch (to float noise). Not so
    # for encoders that normalise over the padded input (a GroupNorm front end) or attend to it (no attention
    # mask): UnifiedEncoder.embed() and extraction then encode one utterance at a time.
    padding_invariant: bool = False

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        return self.sample_rate / self.downsample_rate

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden, frame_lens = self._forward(wavs, wav_lens)
        if hidden.shape[0] != self.num_layers:
            raise RuntimeError(f"{self.name}: returned {hidden.shape[0]} hidden states, expected {self.num_layers}")
        return hidden, frame_lens

    def _forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Upstream":
        """A frozen encoder stays in eval mode (no dropout, fixed normalisation) whatever the trainer asks."""
        return super().train(mode and not self.frozen)

    def save_architecture(self, directory: Path) -> None:
        """Write into ``directory`` the files its loader builds this encoder from without weights (given as
        ``UpstreamConfig.architecture``), so a saved model never needs the original encoder again."""
        raise NotImplementedError(f"{self.name}: cannot be rebuilt from architecture files")

    def frontend_module(self) -> nn.Module:
        """What the "frozen_frontend" policy freezes; by default the CNN feature encoder (``feature_extractor``)."""
        return self._find_submodule("feature_extractor", nn.Module, "CNN feature encoder")

    def encoder_layers(self) -> nn.ModuleList:
        """The transformer/conformer layers in order (the "top_n" policy trains the last n)."""
        return self._find_submodule("encoder.layers", nn.ModuleList, "encoder layers")

    def _find_submodule(self, suffix: str, kind: type[ModuleT], what: str) -> ModuleT:
        for name, module in self.named_modules():
            if (name == suffix or name.endswith("." + suffix)) and isinstance(module, kind):
                return module
        raise ConfigError(f"upstream {self.name}: cannot find its {what} ('{suffix}'); use finetune: full or frozen")


def disable_layerdrop(model: nn.Module) -> None:
    """Turn layerdrop off everywhere (HF configs and fairseq-style modules): it changes the layer count in training."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(getattr(config, "layerdrop", None), (int, float)):
            config.layerdrop = 0.0
        if isinstance(getattr(module, "layerdrop", None), (int, float)):
            module.layerdrop = 0.0


def require_frames(frame_lens: torch.Tensor, wav_lens: torch.Tensor, name: str) -> None:
    """Every utterance must yield at least one frame; a shorter one is bad data, not a model error."""
    short = (frame_lens < 1).nonzero().flatten().tolist()
    if short:
        raise BatchItemError(
            f"upstream {name}: {int(wav_lens[short[0]])} samples, too short for one output frame ({len(short)} "
            "such item(s) in the batch); drop utterances this short from the data", short[0]
        )
