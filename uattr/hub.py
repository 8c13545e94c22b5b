"""Saved models on the Hugging Face Hub.

A model folder written by ``UnifiedEncoder.save_pretrained`` (``config.yaml``, ``model.safetensors``, ``upstream/``,
``README.md`` model card) is self-contained, so sharing one is an upload of the folder (``hf upload <org>/<name>
exp/<tag>/model``) and its README, with its metadata, becomes the Hub's model card. :func:`model_folder` turns a
Hub model id, ``<org>/<name>`` or ``<org>/<name>@<revision>``, back into a local folder through
``huggingface_hub.snapshot_download``, which keeps the download in the Hub cache and reuses it offline
(``HF_HUB_OFFLINE=1``).

What reads as an id: two names joined by one ``/`` (and an optional ``@revision``), neither a path that starts with
``/``, ``.`` or ``~`` nor one whose first part exists here (``exp/joint`` with an ``exp/`` folder is a mistyped
path, not a repository). The recipe template applies the same rule to ``--external_model``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from uattr.errors import ConfigError

HUB_ID = re.compile(r"^(?P<repo>[^/.~@][^/@]*/[^/@]+)(?:@(?P<revision>[^/@]+))?$")
# What a model folder holds (and an uploaded experiment dir's model/): its checkpoints and logs are not fetched.
MODEL_FILES = ["config.yaml", "model.safetensors", "README.md", "selection.json", "upstream/*", "model/*"]


def hub_model_id(name_or_path: str | os.PathLike) -> tuple[str, str | None] | None:
    """``(repo id, revision or None)`` if ``name_or_path`` reads as a Hub model id (module docstring), else None.
    A ``Path`` object is always a path."""
    if not isinstance(name_or_path, str):
        return None
    match = HUB_ID.match(name_or_path)
    if match is None or Path(name_or_path.split("/")[0]).exists():
        return None
    return match["repo"], match["revision"]


def model_folder(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder of a model: a path as given; a Hub model id's snapshot, downloaded or from the cache.
    ``revision`` (branch, tag or commit) pins the snapshot, as ``@<revision>`` in the id does."""
    hub_id = hub_model_id(name_or_path)
    if hub_id is None:
        if revision is not None:
            raise ConfigError(f"{name_or_path}: a revision ('{revision}') applies to a Hub model id, not to a path")
        return Path(name_or_path).expanduser()
    repo_id, id_revision = hub_id
    if id_revision is not None and revision is not None and id_revision != revision:
        raise ConfigError(f"{name_or_path}: two revisions, '{id_revision}' in the id and '{revision}'")
    revision = id_revision or revision
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES, library_name="uattr"))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{name_or_path}: no such local folder, and the Hugging Face Hub model could not be loaded: "
            f"{_hub_failure(error, revision)}"
        ) from None


def _hub_failure(error: Exception, revision: str | None) -> str:
    """Why ``snapshot_download`` failed, in words: its HTTP errors start with a bare status line ("401 Client
    Error."), and the Hub answers 401 for a repository that does not exist."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        return "the repository is gated: accept its conditions on the Hub, then log in (hf auth login)"
    if isinstance(error, RepositoryNotFoundError):
        return "no such repository (or a private one: log in with hf auth login)"
    if isinstance(error, RevisionNotFoundError):
        return f"the repository has no revision '{revision}'"
    if isinstance(error, LocalEntryNotFoundError):
        return "it is not in the Hub cache, and the Hub cannot be reached (HF_HUB_OFFLINE=1, or no connection)"
    if isinstance(error, HFValidationError):
        return f"not a valid repository id ({error})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
