"""The experiment config of ``uattr train``: one YAML with the model, data, optimiser and trainer sections.

The model's own fields (``upstream``, ``attributes``, ``loss_weighting``) sit at the top level, so a recipe
config reads like the paper's table. Every section is a strict dataclass (uattr.config.from_dict): an
unknown key is an error naming its dotted path. The optimiser, loss and data-filtering defaults are the paper's
settings (from the authors' public configuration; egs/commonvoice/uattr1/conf/train_sem_spk_w2vbert.yaml maps each
to its key). Three defaults are not, because they suit more set-ups than the paper's, and that config sets them:
``data.sampling`` is "none" (language sampling needs an utt2lang), ``upstream.finetune`` is "frozen_frontend" (the
paper trains every w2v-BERT weight: "full"), and the final model is the mean of the 3 best checkpoints (the paper's
config: the best one).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal, Sequence

from uattr.attributes.label import LabelExpert
from uattr.config import apply_overrides, from_dict, load_yaml, to_dict
from uattr.data.augment import AugmentConfig
from uattr.data.tables import META_NAME, SCP_NAME, read_table_meta
from uattr.errors import ConfigError
from uattr.model import AttributeConfig, ModelConfig
from uattr.registry import ATTRIBUTE_EXPERTS
from uattr.upstream.base import UpstreamConfig

SplitName = Literal["train", "valid"]


@dataclasses.dataclass
class TargetTables:
    """One attribute's teacher tables: an ``emb.scp`` or the folder holding it (with its ``meta.json``)."""

    train: str
    valid: str


@dataclasses.dataclass
class RetrievalConfig:
    """Speech→teacher retrieval on the dev set (R@1 of the student's speech embeddings).

    The gallery is the attribute's valid teacher table unless ``gallery`` names another table (e.g. the
    teacher embeddings of the dev set's distinct texts). A query's relevant item is the gallery item with its
    id, or those ``query2ref`` names (``<query utt> <gallery id> ...`` lines, as ``uattr score-retrieval``).
    """

    query2ref: str | None = None
    gallery: str | None = None


@dataclasses.dataclass
class DataConfig:
    """Training and dev data, their teacher targets, filtering, batching and sampling."""

    train: str = "data/train"
    valid: str | None = "data/dev"  # None: no validation (no NewBob, final model = last parameters)
    # Teacher tables: explicit ones per attribute, the pattern for the others ({set} = the data dir's name).
    targets: dict[str, TargetTables] = dataclasses.field(default_factory=dict)
    target_pattern: str = "dump/teacher/{attr}/{set}"
    min_seconds: float = 0.0
    max_seconds: float | None = 10.0  # utterances of max_seconds and more are dropped (the paper: 10 s)
    crop_seconds: float | None = None  # random crop of longer training utterances
    max_batch_seconds: float | None = None  # padded seconds per batch
    max_batch_size: int = 20
    sampling: Literal["none", "language", "speaker"] = "none"
    alpha: float = 0.05  # language sampling exponent (the paper)
    num_workers: int = 2
    drop_missing: bool = False  # drop utterances without a target instead of failing
    valid_trials: dict[str, str] = dataclasses.field(default_factory=dict)  # attr → dev trials → EER
    valid_retrieval: dict[str, RetrievalConfig] = dataclasses.field(default_factory=dict)  # attr → R@1
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)  # noise and reverb, train only

    def __post_init__(self) -> None:
        _at_least(self, 0, "num_workers", "min_seconds", "alpha")
        _at_least(self, 1, "max_batch_size")
        for name in ("max_seconds", "crop_seconds", "max_batch_seconds"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (or null), got {getattr(self, name)}")
        if self.max_seconds is not None and self.max_seconds <= self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) must exceed min_seconds ({self.min_seconds})")

    def target_table(self, attr: str, split: SplitName) -> Path:
        """The teacher table (``emb.scp`` or its folder) of ``attr`` for the train or valid split."""
        if attr in self.targets:
            return Path(getattr(self.targets[attr], split))
        data_dir = self.train if split == "train" else self.valid
        try:
            return Path(self.target_pattern.format(attr=attr, set=Path(data_dir).name))
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(
                f"data.target_pattern '{self.target_pattern}': only {{attr}} and {{set}} are known ({error})"
            )


@dataclasses.dataclass
class OptimizerConfig:
    """A torch optimiser: ``adam`` | ``adamw`` | ``adadelta`` | ``sgd``; ``kwargs`` go to its constructor."""

    name: Literal["adam", "adamw", "adadelta", "sgd"] = "adam"
    lr: float = 1e-5
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")


@dataclasses.dataclass
class SchedulerConfig:
    """The lr schedule of one optimiser (see uattr.train.optim).

    ``newbob`` anneals by ``factor`` when the validation loss improves by less than ``threshold``
    (relative) more than ``patience`` times; the warm-up schedules ramp up over ``warmup_steps`` updates.
    """

    name: Literal["newbob", "warmup_linear", "warmup_cosine", "constant"] = "newbob"
    warmup_steps: int = 0
    threshold: float = 0.0025
    factor: float = 0.5
    patience: int = 0

    def __post_init__(self) -> None:
        _at_least(self, 0, "warmup_steps", "threshold", "patience")
        if not 0 < self.factor <= 1:
            raise ValueError(f"factor (the lr multiplier of an annealing) must be in (0, 1], got {self.factor}")


@dataclasses.dataclass
class GroupConfig:
    """Optimiser and schedule of one parameter group."""

    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)


def _paper_upstream_group() -> GroupConfig:
    return GroupConfig(OptimizerConfig("adam", 1e-5), SchedulerConfig("newbob", threshold=0.0025, factor=0.9))


def _paper_branches_group() -> GroupConfig:
    return GroupConfig(
        OptimizerConfig("adadelta", 1.5, {"rho": 0.95, "eps": 1e-8}),
        SchedulerConfig("newbob", threshold=0.0025, factor=0.5, patience=2),
    )


@dataclasses.dataclass
class OptimConfig:
    """Two parameter groups, two optimisers: the encoder ("upstream") and everything else ("branches")."""

    upstream: GroupConfig = dataclasses.field(default_factory=_paper_upstream_group)
    branches: GroupConfig = dataclasses.field(default_factory=_paper_branches_group)


@dataclasses.dataclass
class TrainerConfig:
    """Loop length, update mechanics, validation, checkpoints and the device."""

    max_steps: int | None = None  # optimiser updates; training stops at max_steps or max_epochs, first reached
    max_epochs: int | None = 10
    grad_accum: int = 1
    grad_clip: float | None = 5.0  # max global grad norm (None: no clipping)
    amp: Literal["none", "bf16", "fp16"] = "none"  # forced off on CPU
    seed: int = 0
    log_every: int = 50
    valid_every: int | None = None  # updates between validations (None: at the end of every epoch)
    save_every: int | None = None  # updates between extra checkpoints (validations always save one)
    keep_last: int = 2
    n_best: int = 3
    best_criterion: str = "valid/loss"
    best_mode: Literal["auto", "min", "max"] = "auto"  # auto: max for r@k/mrr/acc, min otherwise
    average_best: bool = True  # final model = parameter mean of the n best checkpoints (false: the best one)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (one process only: under DDP, cuda = the local rank's GPU)
    teacher_mode: Literal["cached", "on_the_fly"] = "cached"
    on_the_fly: list[str] | None = None  # attributes whose teacher runs on the batch (None: all)
    find_unused_parameters: bool | Literal["auto"] = "auto"  # DDP; auto: probe one batch for unused parameters

    def __post_init__(self) -> None:
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("set trainer.max_steps or trainer.max_epochs")
        _at_least(self, 1, "grad_accum", "log_every", "keep_last", "n_best")
        _at_least(self, 0, "seed")  # numpy takes no negative seed
        for name in ("max_steps", "max_epochs", "valid_every", "save_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (or null), got {getattr(self, name)}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number (or null: no clipping), got {self.grad_clip}")

    def criterion_mode(self) -> Literal["min", "max"]:
        """Whether a larger or a smaller ``best_criterion`` is better."""
        if self.best_mode != "auto":
            return self.best_mode
        metric = self.best_criterion.rsplit("/", 1)[-1].lower()
        return "max" if metric.startswith(("r@", "mrr", "acc")) else "min"


@dataclasses.dataclass
class ExperimentConfig:
    """Everything one training run needs; saved resolved as ``EXP/config.yaml``."""

    upstream: UpstreamConfig
    attributes: dict[str, AttributeConfig]
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"

    def __post_init__(self) -> None:
        for key in ("targets", "valid_trials", "valid_retrieval"):  # a misspelt attribute would be ignored
            unknown = [attr for attr in getattr(self.data, key) if attr not in self.attributes]
            if unknown:
                raise ValueError(
                    f"data.{key}.{unknown[0]}: no such attribute; attributes: {', '.join(self.attributes)}"
                )

    def model_config(self) -> ModelConfig:
        """The model section as uattr.model.ModelConfig."""
        return ModelConfig(upstream=self.upstream, attributes=self.attributes, loss_weighting=self.loss_weighting)


def _at_least(section: object, bound: float, *names: str) -> None:
    """Each named field of ``section`` must be at least ``bound``; raised as ValueError, which
    uattr.config.from_dict reports with the section's dotted path."""
    for name in names:
        if not getattr(section, name) >= bound:
            raise ValueError(f"{name} must be at least {bound}, got {getattr(section, name)}")


def on_the_fly_attributes(config: ExperimentConfig) -> list[str]:
    """Attributes whose teacher runs on each batch instead of being read from a cached table."""
    trainer = config.trainer
    if trainer.teacher_mode == "cached":
        if trainer.on_the_fly:
            raise ConfigError("trainer.on_the_fly lists attributes but trainer.teacher_mode is 'cached'")
        return []
    names = list(config.attributes) if trainer.on_the_fly is None else trainer.on_the_fly
    unknown = [name for name in names if name not in config.attributes]
    if unknown:
        raise ConfigError(
            f"trainer.on_the_fly: unknown attribute '{unknown[0]}'; attributes: {', '.join(config.attributes)}"
        )
    return names


def table_files(path: str | Path) -> tuple[Path, Path]:
    """``(emb.scp, table dir)`` of a table given as either."""
    path = Path(path)
    return (path, path.parent) if path.suffix == ".scp" else (path / SCP_NAME, path)


def require_data_dirs(data: DataConfig) -> None:
    """A ConfigError for a train, dev, noise or RIR data dir that does not exist, before anything reads its
    teacher tables (which would be blamed) or loads an on-the-fly teacher (slow)."""
    dirs = [("data.train", data.train), ("data.valid", data.valid), ("data.augment.rir", data.augment.rir)]
    dirs += [(f"data.augment.noise.{name}.data", noise.data) for name, noise in data.augment.noise.items()]
    for key, data_dir in dirs:
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ConfigError(f"{key}: {data_dir}: no such data directory")


def fill_target_shapes(config: ExperimentConfig, teacher_dims: dict[str, int] | None = None) -> ExperimentConfig:
    """Fill each attribute's empty ``dim`` (or ``classes``) from its train table's meta.json, before the model
    is built; a value that disagrees with the table is a ConfigError (the targets would not fit the head).

    ``teacher_dims`` gives the dimension of on-the-fly teachers, which have no table.
    """
    teacher_dims = teacher_dims or {}
    attributes = {}
    for name, attribute in config.attributes.items():
        where = f"attributes.{name}"
        if name in teacher_dims:
            meta, source = {"dim": teacher_dims[name]}, f"the on-the-fly teacher of '{name}'"
        else:
            table_dir = table_files(config.data.target_table(name, "train"))[1]
            meta, source = read_table_meta(table_dir), str(table_dir / META_NAME)
        if meta.get("classes") is not None:  # a label table: the classes fix the indices, dim is the branch's own
            # An unknown expert is named when the model is built; a factory function is not checked here.
            factory = ATTRIBUTE_EXPERTS.get(attribute.expert) if attribute.expert in ATTRIBUTE_EXPERTS else None
            if isinstance(factory, type) and not issubclass(factory, LabelExpert):
                classes = ", ".join(meta["classes"][:5]) + (", …" if len(meta["classes"]) > 5 else "")
                raise ConfigError(
                    f"{where}.expert: {source} is a labels table (class indices of {classes}), but expert "
                    f"'{attribute.expert}' learns float vectors: use a 'label' expert, or make its targets with a "
                    "teacher that gives them"
                )
            if attribute.classes is None:
                attribute = dataclasses.replace(attribute, classes=list(meta["classes"]))
            elif list(attribute.classes) != list(meta["classes"]):
                raise ConfigError(f"{where}.classes: {attribute.classes} differ from the classes of {source}")
        elif attribute.dim is None:
            if not isinstance(meta.get("dim"), int):
                raise ConfigError(f"{where}.dim: not set, and {source} gives no dimension")
            attribute = dataclasses.replace(attribute, dim=meta["dim"])
        elif attribute.dim != meta.get("dim"):
            raise ConfigError(f"{where}.dim: {attribute.dim}, but {source} has {meta.get('dim')}-d targets")
        if attribute.loss.name == "mse" and attribute.branch.normalize and meta.get("normalized") is False:
            raise ConfigError(
                f"{where}: the mse loss compares lengths, but the branch outputs unit vectors "
                f"(branch.normalize) and {source} says its targets are not unit-norm; use the cosine loss, set "
                "branch.normalize: false, or extract unit-norm targets"
            )
        attributes[name] = attribute
    return dataclasses.replace(config, attributes=attributes)


def load_experiment_config(path: str | Path, overrides: Sequence[tuple[str, Any]] = ()) -> ExperimentConfig:
    """Read the YAML, apply dotted overrides, and build the strict config (errors name the dotted key)."""
    data = apply_overrides(load_yaml(path), overrides)
    return from_dict(ExperimentConfig, data)


def experiment_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain data of a config, for EXP/config.yaml and checkpoints."""
    return to_dict(config)
