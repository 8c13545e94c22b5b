"""Speaker teacher: a speechbrain EncoderClassifier, by default ECAPA-TDNN (``speechbrain/spkrec-ecapa-voxceleb``,
192-d), loaded from a hub id or a local folder (hyperparams.yaml + checkpoints, e.g. a downloaded copy).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from uattr.errors import BatchItemError, ConfigError
from uattr.speechbrain_import import import_speechbrain
from uattr.teachers.base import SAMPLE_RATE, Teacher, register_teacher, resolve_model

DEFAULT_ECAPA_MODEL = "speechbrain/spkrec-ecapa-voxceleb"


@register_teacher("speechbrain-ecapa")
class EcapaTeacher(Teacher):
    """Batched speaker embeddings (raw, not unit-norm: the paper's cosine loss normalises them itself)."""

    input = "audio"
    libraries = ("speechbrain", "torch")
    normalized = False

    def __init__(self, model: str = DEFAULT_ECAPA_MODEL, device: str = "cpu") -> None:
        classifiers = import_speechbrain("speechbrain.inference.classifiers")  # heavy: imported only when built
        fetching = import_speechbrain("speechbrain.utils.fetching")

        self.model = model
        if device == "cuda":  # speechbrain wants an index; plain "cuda" means torch's current device
            device = f"cuda:{torch.cuda.current_device()}"
        source = resolve_model(model)
        local = Path(source).is_dir()
        # A local folder is its own savedir: speechbrain then finds every checkpoint there and never looks at
        # the hub paths its hyperparams.yaml may name; a hub id goes through the Hugging Face cache.
        try:
            self._classifier = classifiers.EncoderClassifier.from_hparams(
                source=source,
                savedir=source if local else None,
                run_opts={"device": device},
                fetch_config=fetching.FetchConfig(allow_network=not local),
            )
        except (OSError, ValueError) as error:  # a hub id that cannot be fetched; a folder that is not a model
            raise ConfigError(f"speechbrain-ecapa model '{model}': cannot load it ({error})") from None
        self._classifier.eval()
        self.dim = int(self._embed_batch([np.zeros(SAMPLE_RATE, dtype=np.float32)]).shape[1])

    @functools.cached_property
    def min_samples(self) -> int:
        """The fewest samples the model embeds alone. Its convolutions pad by reflection, which needs more frames
        than the padding: shorter audio fails inside torch, and only when no longer utterance shares the batch
        (padded, it gets an embedding of mostly padding). Found by bisection below one second (the length the
        constructor embeds), when the first utterance shorter than that comes: not at start-up."""
        low, high = 0, SAMPLE_RATE  # fails at low (or low is 0), works at high
        while high - low > 1:
            middle = (low + high) // 2
            try:
                self._embed_batch([np.zeros(middle, dtype=np.float32)])
                high = middle
            except RuntimeError:
                low = middle
        return high

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        for index, wav in enumerate(batch):
            if len(wav) < SAMPLE_RATE and len(wav) < self.min_samples:
                raise BatchItemError(
                    f"speechbrain-ecapa: {len(wav)} samples, shorter than the {self.min_samples} "
                    f"({1000 * self.min_samples / SAMPLE_RATE:.0f} ms) its model needs", index
                )
        return self._embed_batch(batch)

    def _embed_batch(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        wavs = [torch.as_tensor(np.asarray(wav, dtype=np.float32)) for wav in batch]
        lengths = torch.tensor([len(wav) for wav in wavs], dtype=torch.float32)
        padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        relative = lengths / lengths.max()
        mods = self._classifier.mods
        device = self._classifier.device
        with torch.inference_mode():
            padded, relative = padded.to(device), relative.to(device)
            # EncoderClassifier.encode_batch, plus one step: it leaves padded frames at log(0) energy, and those
            # leak through the TDNN convolutions into the last real frames (cos ≈ 0.8 to the unpadded
            # embedding). Zeroing them (the sentence mean after normalisation) brings it to ≥ 0.9998 with a random
            # tiny model (conv edges at the padding remain). The frame count is rounded up, as speechbrain's own
            # masks do (make_padding_mask): rounded to nearest, it zeroed an utterance's last real frame.
            feats = mods.compute_features(padded)
            feats = mods.mean_var_norm(feats, relative)
            frames = feats.shape[1]
            real_frames = torch.ceil(relative * frames - 1e-6)
            valid = torch.arange(frames, device=device)[None, :] < real_frames[:, None]
            feats = feats * valid.unsqueeze(-1)
            embeddings = mods.embedding_model(feats, relative)
        return embeddings.reshape(len(batch), -1).float().cpu().numpy()
