"""Saved models on the Hugging Face Hub.

A model folder written by ``UnifiedEncoder.save_pretrained`` (``config.yaml``, ``model.safetensors``, ``upstream/``,
``README.md`` model card) is self-contained, so sharing one is an upload of the folder (``hf upload <org>/<name>
exp/<tag>/model``) and its README becomes the Hub's model card. :func:`model_folder` turns a Hub repo id back into a
local folder through ``huggingface_hub.snapshot_download``, which keeps the download in the Hub cache, reuses it
offline (``HF_HUB_OFFLINE=1``) and pins a revision when asked.
"""

from __future__ import annotations

import os
from pathlib import Path

from uattr.errors import ConfigError
from uattr.fileio import looks_local


def model_folder(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder as given; a name that is no local folder and reads as a Hub repo id (``org/name``), the
    folder of its snapshot (downloaded, or from the cache). ``revision`` (branch, tag or commit) pins the
    snapshot; it is refused for a local folder, which has none."""
    name = os.fspath(name_or_path)
    if looks_local(name) or "/" not in name:
        if revision is not None:
            raise ConfigError(f"{name}: a revision ('{revision}') applies to a Hub repo id, not to a local folder")
        return Path(name).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, revision=revision, library_name="uattr"))
    except (OSError, ValueError) as error:  # not found, offline and not cached, gated, invalid id, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"{name}: no local folder of that name, and no Hugging Face Hub model could be loaded for it: {reason}"
        ) from None
