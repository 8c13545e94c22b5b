"""Batching: dataset items → the shared batch contract (docs/ARCHITECTURE.md, "Batch").

Waveforms are zero-padded to the longest in the batch and their true lengths kept, so every later stage
(upstream frame lengths, masked pooling) can ignore the padding.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from uattr.data.dataset import describe_ids
from uattr.errors import DataError


def stack_targets(attr: str, ids: Sequence[str], values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack one attribute's targets; differing shapes mean the teacher table mixes dimensions."""
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        first = tuple(values[0].shape)
        odd = [i for i, v in zip(ids, values) if tuple(v.shape) != first]
        raise DataError(
            f"target '{attr}' has differing shapes {sorted(shapes)} in one batch "
            f"(shape {first} for '{ids[0]}', other shapes for {describe_ids(odd)})"
        )
    return torch.stack(list(values))


def collate_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"ids", "wavs": FloatTensor[B, S_max] zero-padded, "wav_lens": LongTensor[B], "targets": {attr: [B, ...]}}``,
    and ``"clean_wavs"`` (padded the same way) when the items hold the clean audio of augmented ones."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    ids = [item["id"] for item in items]
    wavs = [item["wav"] for item in items]
    targets = {
        attr: stack_targets(attr, ids, [item["targets"][attr] for item in items]) for attr in items[0]["targets"]
    }
    batch = {
        "ids": ids,
        "wavs": pad_sequence(wavs, batch_first=True, padding_value=0.0),
        "wav_lens": torch.tensor([len(w) for w in wavs], dtype=torch.long),
        "targets": targets,
    }
    if "clean_wav" in items[0]:
        batch["clean_wavs"] = pad_sequence([item["clean_wav"] for item in items], batch_first=True, padding_value=0.0)
    return batch
