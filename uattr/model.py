"""The UnifiedEncoder: one speech encoder, one expert (branch + loss) per attribute, one forward pass for all.

``save_pretrained(dir)`` writes ``config.yaml`` (the ModelConfig), ``model.safetensors`` (every weight, upstream
included), ``upstream/`` (the encoder's architecture files, no weights) and a ``README.md`` model card;
``from_pretrained(dir)`` rebuilds the model from those files alone and never unpickles anything. So a model folder
loads anywhere, offline, after a move or after the encoder it was trained from is gone. The exception is an encoder
that builds only from a checkpoint (s3prl names such as ``wavlm_large``): no ``upstream/`` is written, and loading
goes through the original checkpoint (s3prl's cache or a download) before this model's weights replace it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import safetensors.torch
import torch
import torchaudio
import yaml
from safetensors import SafetensorError
from torch import nn

from uattr import __version__
from uattr.attributes import AttributeConfig, AttributeExpert, build_expert
from uattr.attributes.label import LabelExpert
from uattr.config import from_dict, load_yaml, save_yaml
from uattr.errors import ConfigError, DataError
from uattr.fileio import atomic_dir, atomic_path, atomic_write
from uattr.hub import hub_model_id, model_folder
from uattr.losses.base import gives_logits
from uattr.registry import UnknownComponentError
from uattr.upstream.base import Upstream, UpstreamConfig

__all__ = ["AttributeConfig", "ModelConfig", "UnifiedEncoder"]

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
ARCHITECTURE_DIR = "upstream"  # the encoder's architecture files (UpstreamConfig.architecture), relative
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # a valid nn.ModuleDict key and file-name part

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelConfig:
    """The encoder, one block per attribute, and how the attribute losses are combined.

    ``loss_weighting``: ``fixed`` = Σ weight_τ · L_τ (the paper: 1.0 each); ``uncertainty`` = learned
    homoscedastic-uncertainty weighting (Kendall et al., 2018), Σ exp(−s_τ) · weight_τ · L_τ + s_τ.
    """

    upstream: UpstreamConfig
    attributes: dict[str, AttributeConfig]
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"


def safetensors_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a safetensors file's header (keys sorted) and tensor data: safetensors writes its metadata map in
    a random order, so two saves of the same weights may differ in their bytes but never in this digest."""
    with open(path, "rb") as weights:
        header_size = int.from_bytes(weights.read(8), "little")
        header = json.loads(weights.read(header_size))
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers in memory: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class UnifiedEncoder(nn.Module):
    """Upstream + experts; ``forward`` returns ``{attribute: embedding [B, E]}`` from one encoder pass."""

    def __init__(self, config: ModelConfig, upstream: Upstream | None = None) -> None:
        super().__init__()
        _check_attributes(config)
        self.config = config
        self.source: str | None = None  # the folder from_pretrained() read (absolute), for provenance in outputs
        self._weights_sha256: str | None = None
        self._weights_file_state: tuple[int, int, int] | None = None  # that file's (inode, size, mtime) at load
        if upstream is None:
            from uattr.upstream import build_upstream  # the loaders import transformers/s3prl: only when needed

            upstream = build_upstream(config.upstream)
        self.upstream = upstream
        self.experts = nn.ModuleDict(
            {
                name: build_expert(name, attribute, upstream.num_layers, upstream.hidden_size)
                for name, attribute in config.attributes.items()
            }
        )
        self.loss_log_vars = (
            nn.ParameterDict({name: nn.Parameter(torch.zeros(())) for name in config.attributes})
            if config.loss_weighting == "uncertainty"
            else None
        )

    @property
    def sample_rate(self) -> int:
        return self.upstream.sample_rate

    @property
    def attributes(self) -> list[str]:
        return list(self.experts.keys())

    def expert(self, attribute: str) -> AttributeExpert:
        """The expert of ``attribute``; an unknown name lists the model's attributes."""
        if attribute not in self.experts:
            raise ConfigError(f"unknown attribute '{attribute}'; this model has: {', '.join(self.experts)}")
        return self.experts[attribute]

    def embedding_dim(self, attribute: str) -> int:
        return self.expert(attribute).embedding_dim

    def is_normalized(self, attribute: str) -> bool:
        """Whether the attribute's embeddings are L2-normalised."""
        return self.expert(attribute).branch.normalize

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, attributes: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Embeddings of ``attributes`` (default: all) for a padded batch ``wavs`` [B, S] with lengths [B]."""
        if isinstance(attributes, str):
            attributes = [attributes]
        experts = [self.expert(name) for name in (self.attributes if attributes is None else attributes)]
        hidden, frame_lens = self.upstream(wavs, wav_lens)
        return {expert.name: expert(hidden, frame_lens) for expert in experts}

    def compute_loss(
        self, embeddings: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, {attribute: unweighted loss})`` over the attributes present in ``embeddings``; the total at
        training update ``step`` follows each attribute's ``weight_schedule`` (None: the full weights)."""
        losses = {}
        for name, embedding in embeddings.items():
            expert = self.expert(name)
            if expert.target_key not in targets:
                raise DataError(f"the batch has no targets for attribute '{name}' (targets: {', '.join(targets)})")
            losses[name] = expert.loss(embedding, targets[expert.target_key].to(embedding.device))
        total = sum(self._weighted(name, loss, step) for name, loss in losses.items())
        return total, losses

    def _weighted(self, name: str, loss: torch.Tensor, step: int | None) -> torch.Tensor:
        attribute = self.config.attributes[name]
        weighted = attribute.weight * loss
        if self.loss_log_vars is not None:
            log_var = self.loss_log_vars[name]
            weighted = torch.exp(-log_var) * weighted + log_var
        # The whole term is scaled, so a learned uncertainty s_τ stays put while its attribute is off.
        return weighted if step is None else attribute.weight_schedule.factor(step) * weighted

    @torch.no_grad()
    def embed(
        self,
        waveforms: torch.Tensor | Sequence[torch.Tensor | np.ndarray],
        sample_rate: int,
        attributes: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Embeddings of raw audio, in eval mode: a [B, S] tensor or a list of 1-D arrays (any lengths).

        Audio at another rate is resampled to the encoder's. Each embedding equals the one of the utterance alone:
        the batch is padded with its lengths, or, for an encoder that is not ``padding_invariant``, each utterance
        is encoded by itself.
        """
        waveforms = _as_waveform_list(waveforms)
        was_training = self.training
        self.eval()
        try:
            if self.upstream.padding_invariant or len(waveforms) <= 1:
                return self(*self._pad(waveforms, sample_rate), attributes)
            alone = [self(*self._pad([wav], sample_rate), attributes) for wav in waveforms]
            return {attr: torch.cat([embeddings[attr] for embeddings in alone]) for attr in alone[0]}
        finally:
            self.train(was_training)

    @torch.no_grad()
    def classify(
        self, waveforms: torch.Tensor | Sequence[torch.Tensor | np.ndarray], sample_rate: int, attribute: str
    ) -> tuple[list[str], torch.Tensor]:
        """Class posteriors [B, C] of label attribute ``attribute`` for raw audio (taken as :meth:`embed` takes
        it), and the class names of its columns: what a language or gender branch predicts, from the classifier
        its loss trained."""
        expert = self.classifier(attribute)
        embedding = self.embed(waveforms, sample_rate, [attribute])[attribute]
        return expert.classes, torch.softmax(expert.logits(embedding).float(), dim=-1)  # the classifier: no dropout

    def classifier(self, attribute: str) -> LabelExpert:
        """The expert of label attribute ``attribute``, whose ``logits`` turn its embeddings into class scores; a
        ConfigError for an attribute that has none."""
        expert = self.expert(attribute)
        if not isinstance(expert, LabelExpert):
            raise ConfigError(f"attribute '{attribute}' is not a label attribute (its expert: {expert.config.expert})")
        if not gives_logits(expert.loss_fn):
            loss = type(expert.loss_fn).__name__
            raise ConfigError(f"attribute '{attribute}': its loss {loss} gives no class scores")
        return expert

    def _pad(self, waveforms: list[torch.Tensor], sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.parameters()).device
        if sample_rate != self.sample_rate:
            waveforms = [torchaudio.functional.resample(wav, sample_rate, self.sample_rate) for wav in waveforms]
        wav_lens = torch.tensor([len(wav) for wav in waveforms], device=device)
        wavs = nn.utils.rnn.pad_sequence(waveforms, batch_first=True).to(device)
        return wavs, wav_lens

    def weights_sha256(self) -> str:
        """SHA-256 of the model.safetensors this model was loaded from: what tells embeddings of a retrained model
        from those of the one it replaced in the same folder. A model not loaded from a folder gets the digest
        of its weights as they are now (extracted tables of two such models must not pass for each other's).

        Computed on first use (hashing gigabytes costs seconds), from the file as it was loaded: one saved over
        it since then is an error rather than the digest of weights this model does not hold."""
        if self.source is None:
            return state_sha256(self)  # not kept: the weights may still change
        if self._weights_sha256 is None:
            path = Path(self.source) / WEIGHTS_FILE
            digest = safetensors_sha256(path)
            if _file_state(path) != self._weights_file_state:
                raise ConfigError(f"{path}: saved again since this model was loaded from it; load it again")
            self._weights_sha256 = digest
        return self._weights_sha256

    def layer_weights(self) -> dict[str, dict[str, list]]:
        """Each branch's mixing weights: ``{attr: {"layers": [int, ...], "weights": [float, ...]}}``."""
        return {
            name: {"layers": list(expert.branch.layers), "weights": expert.branch.layer_weights().tolist()}
            for name, expert in self.experts.items()
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.yaml, model.safetensors, upstream/ and the README.md model card into ``directory``, each
        atomically; config.yaml keeps the encoder's original name and points at upstream/."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        architecture = self._save_architecture(directory)
        with atomic_path(directory / WEIGHTS_FILE) as staging:
            # save_model (not save_file) drops tied duplicates and makes tensors contiguous, as safetensors needs.
            safetensors.torch.save_model(self, str(staging), metadata={"format": "pt", "uattr": __version__})
        upstream = dataclasses.replace(self.config.upstream, architecture=architecture)
        save_yaml(dataclasses.replace(self.config, upstream=upstream), directory / CONFIG_FILE)
        with atomic_write(directory / CARD_FILE) as handle:
            handle.write(model_card(self, architecture))
        return directory

    def _save_architecture(self, directory: Path) -> str | None:
        """``directory/upstream/`` with the encoder's architecture files; None when the encoder cannot be rebuilt
        without its original checkpoint (then a stale upstream/ of an earlier save is removed)."""
        target = directory / ARCHITECTURE_DIR
        if not self.upstream.saves_architecture:
            logger.info(
                "%s builds only from its checkpoint: the saved model will load it from there again",
                self.config.upstream.name,
            )
            shutil.rmtree(target, ignore_errors=True)
            return None
        with atomic_dir(target) as staging:
            self.upstream.save_architecture(staging)
        return ARCHITECTURE_DIR

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, device: str | torch.device = "cpu", revision: str | None = None
    ) -> "UnifiedEncoder":
        """Rebuild a saved model from config.yaml + model.safetensors (no pickle), in eval mode. ``directory`` is a
        model folder, or the id of one uploaded to the Hugging Face Hub (``org/name``, at ``revision`` if given;
        see :mod:`uattr.hub`).

        The encoder is built with random weights from the architecture files config.yaml points at (relative to
        ``directory``), then every weight comes from the safetensors. A model saved without them (by an older
        uattr, or with a checkpoint-only encoder) builds the encoder from its original name first: a local folder
        must still exist there, a hub id or s3prl name is taken from its cache or downloaded.
        """
        directory = model_folder(directory, revision)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise ConfigError(f"{directory}: not a saved uattr model (no {name})")
        config = from_dict(ModelConfig, load_yaml(directory / CONFIG_FILE))
        if config.upstream.architecture:
            config.upstream.architecture = str(directory.absolute() / config.upstream.architecture)
        else:
            logger.info(
                "%s: no encoder architecture files; building %s from its original source before loading %s",
                directory,
                config.upstream.name,
                WEIGHTS_FILE,
            )
        try:
            model = cls(config)
        except UnknownComponentError as error:
            raise ConfigError(
                f"{directory / CONFIG_FILE}: {error}; was the model trained with a plug-in (a uattr.plugins entry "
                "point) that is not installed here?"
            ) from None
        state = _file_state(directory / WEIGHTS_FILE)
        try:
            safetensors.torch.load_model(model, directory / WEIGHTS_FILE, strict=True)
        except RuntimeError as error:
            raise ConfigError(
                f"{directory / WEIGHTS_FILE}: does not match {directory / CONFIG_FILE}: {error}"
            ) from None
        except (SafetensorError, OSError) as error:
            raise ConfigError(
                f"{directory / WEIGHTS_FILE}: cannot read it ({error}); is it truncated? save the model again"
            ) from None
        model.source, model._weights_file_state = str(directory.absolute()), state
        return model.to(device).eval()


def _file_state(path: Path) -> tuple[int, int, int]:
    """What changes when a file is written again or replaced: its inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _check_attributes(config: ModelConfig) -> None:
    if not config.attributes:
        raise ConfigError("attributes: the model needs at least one attribute")
    for name, attribute in config.attributes.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise ConfigError(
                f"attributes.{name}: attribute names are letters, digits, '_' and '-', starting with a letter or '_'"
            )
        if attribute.weight < 0:
            raise ConfigError(f"attributes.{name}.weight: must be ≥ 0, got {attribute.weight}")
        if attribute.weight == 0 and config.loss_weighting == "uncertainty":
            # exp(−s)·0 + s: the learned log-variance s would only ever fall, without bound.
            raise ConfigError(f"attributes.{name}.weight: 0 is no weight to learn an uncertainty for; drop the "
                              f"attribute, or use loss_weighting: fixed")
        for key, value in dataclasses.asdict(attribute.weight_schedule).items():
            if value < 0:
                raise ConfigError(f"attributes.{name}.weight_schedule.{key}: must be ≥ 0, got {value}")


def _weight_text(attribute: AttributeConfig) -> str:
    """The model card's loss weight, with the update it starts from when it does not start at once."""
    schedule = attribute.weight_schedule
    if schedule.start_step == 0 and schedule.ramp_steps == 0:
        return f"{attribute.weight:g}"
    return f"{attribute.weight:g} (from update {schedule.start_step}, ramped over {schedule.ramp_steps})"


def _as_waveform_list(waveforms: torch.Tensor | Sequence[torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
    """1-D float32 tensors; empty, multi-channel or non-finite audio is a DataError naming the batch item."""
    if isinstance(waveforms, torch.Tensor):
        if waveforms.dim() != 2:
            raise DataError(f"embed: expected waveforms [batch, samples], got shape {tuple(waveforms.shape)}")
        waveforms = list(waveforms)
    result = []
    for index, wav in enumerate(waveforms):
        wav = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).float().cpu()
        if wav.dim() != 1 or wav.numel() == 0:
            raise DataError(f"embed: waveform {index} must be a non-empty 1-D array, got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise DataError(f"embed: waveform {index} has NaN or infinite samples")
        result.append(wav)
    if not result:
        raise DataError("embed: no waveforms given")
    return result


def _hub_metadata(model: UnifiedEncoder) -> list[str]:
    """The model card's YAML front matter, which the Hugging Face Hub reads when the folder is uploaded: the
    library, the task, the attributes as tags, and the encoder it was trained from when that is a Hub model."""
    metadata: dict[str, object] = {
        "library_name": "uattr",
        "pipeline_tag": "feature-extraction",
        "tags": ["audio", "speech", "uattr", *model.attributes],
    }
    family, _, source = model.config.upstream.name.partition(":")
    if family == "hf" and hub_model_id(source) is not None:
        metadata["base_model"] = source
    return ["---", yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]


def model_card(model: UnifiedEncoder, architecture: str | None = None) -> str:
    """A README.md for a saved model: what each embedding is, where it comes from, and how to load it;
    ``architecture`` is the folder of the encoder's architecture files, if saved."""
    config = model.config
    rows = []
    for name, expert in model.experts.items():
        attribute = config.attributes[name]
        branch = attribute.branch
        teacher = ", ".join(f"{key}: {value}" for key, value in attribute.teacher.items()) or "–"
        layers = expert.branch.layers
        span = f"{layers[0]}–{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else str(layers)
        loss = attribute.loss.name + (f" {attribute.loss.options}" if attribute.loss.options else "")
        rows.append(
            f"| {name} | {attribute.expert} | {expert.embedding_dim} | {'yes' if branch.normalize else 'no'} | "
            f"{span} | {branch.projection} | {branch.pooling} | {loss} | {_weight_text(attribute)} | {teacher} |"
        )
    weights = model.layer_weights()
    all_layers = sorted({layer for entry in weights.values() for layer in entry["layers"]})
    weight_rows = []
    for layer in all_layers:
        cells = []
        for entry in weights.values():
            by_layer = dict(zip(entry["layers"], entry["weights"]))
            cells.append(f"{by_layer[layer]:.4f}" if layer in by_layer else "")
        weight_rows.append(f"| {layer} | " + " | ".join(cells) + " |")
    upstream = model.upstream
    return "\n".join(
        [
            *_hub_metadata(model),
            "# uattr unified speech encoder",
            "",
            f"One speech encoder, {len(weights)} utterance-level embedding(s) from one forward pass "
            f"(made with uattr {__version__}).",
            "",
            f"- Upstream: `{config.upstream.name}`"
            + (f" (path `{config.upstream.path}`)" if config.upstream.path else "")
            + f", {upstream.num_layers} hidden states of size {upstream.hidden_size}, "
            f"{upstream.sample_rate} Hz input, fine-tuning policy `{config.upstream.finetune}`",
            (
                f"- Encoder architecture: `{architecture}/` (configuration only; `from_pretrained` builds the encoder "
                "from it, offline, and never needs the original encoder)"
                if architecture
                else "- Encoder architecture: not saved (the encoder builds only from its checkpoint): "
                "`from_pretrained` loads the original encoder first (from its cache, or downloaded), then this "
                "model's weights"
            ),
            f"- Loss weighting: {config.loss_weighting}",
            "",
            "| attribute | expert | dim | L2-normalised | layers | projection | pooling | loss | weight | teacher |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "## Layer weights",
            "",
            "Softmax mixing weights of each branch over the encoder's hidden states (0 = input to the first layer).",
            "",
            "| layer | " + " | ".join(weights) + " |",
            "|---" * (len(weights) + 1) + "|",
            *weight_rows,
            "",
            "## Usage",
            "",
            "```python",
            "from uattr.model import UnifiedEncoder",
            "",
            'model = UnifiedEncoder.from_pretrained("<this folder, or its Hugging Face Hub id>")',
            "embeddings = model.embed([waveform], sample_rate=16000)  # {attribute: tensor [1, dim]}",
            "```",
            "",
        ]
    )
