"""The training loop of ``uattr train``.

One update = ``grad_accum`` micro-batches (fewer at the end of an epoch; the gradient is their mean either way),
gradient clipping over every trainable parameter, then a step of each group's optimiser (encoder and branches)
and of its lr schedule.
Every ``valid_every`` updates (or at each epoch's end) each rank validates its share of the dev set, rank 0
computes the metrics, NewBob sees the dev loss, the n-best list is updated and a checkpoint is written.

Experiment dir: ``config.yaml`` (resolved), ``train.log``, ``tensorboard/``, ``checkpoints/ckpt-<step>.pt``,
``valid_metrics.json`` (history) and ``model/`` (``save_pretrained``; the mean of the n best checkpoints
with ``average_best``, else the best one). A run that finds a checkpoint continues from it exactly: on CPU with
``num_workers: 0`` the final parameters are bit-identical to those of an uninterrupted run. So it refuses a config
that changed in anything but the loop's length and bookkeeping (:data:`RESUMABLE_CHANGES`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, ContextManager, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from uattr.config import save_yaml
from uattr.data.collate import collate_batch
from uattr.data.sampler import DynamicBatchSampler
from uattr.errors import ConfigError, DataError, UattrError, user_message
from uattr.fileio import atomic_dir, atomic_write
from uattr.log import add_file_handler
from uattr.model import WEIGHTS_FILE, UnifiedEncoder
from uattr.precision import autocast, autocast_dtype
from uattr.train.checkpoint import (
    BestCheckpoints,
    average_checkpoints,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_interrupted_saves,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from uattr.train.config import (
    ExperimentConfig,
    TrainerConfig,
    experiment_dict,
    fill_target_shapes,
    on_the_fly_attributes,
    require_data_dirs,
)
from uattr.train.data import SplitData, build_split, data_fingerprint
from uattr.train.distributed import (
    DistributedContext,
    cleanup_distributed,
    init_distributed,
    resolve_device,
    unused_parameters,
    wrap_model,
)
from uattr.train.optim import GROUPS, LearningRateSchedule, build_group, split_parameters
from uattr.train.targets import OnTheFlyTargets, build_teachers
from uattr.train.validate import classified_attributes, format_metrics, load_tasks, metric_names, validate

logger = logging.getLogger(__name__)

ResumeMode = Literal["auto", "never"]
MODEL_DIR = "model"
SELECTION_FILE = "selection.json"  # in EXP/model: the checkpoints it was made of (see Trainer._model_selection)
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "valid_metrics.json"
# Config keys a resumed run may change: they set how long it trains and what it logs or keeps, and nothing that
# the checkpoint's model, optimiser, schedule, n-best or sampler state was made with (except the length of a
# warmup_linear/warmup_cosine decay, which LearningRateSchedule.load_state_dict refuses to change).
RESUMABLE_CHANGES = frozenset(
    {
        "trainer.max_steps",
        "trainer.max_epochs",
        "trainer.log_every",
        "trainer.valid_every",
        "trainer.save_every",
        "trainer.keep_last",
        "trainer.average_best",
        "trainer.device",
        "trainer.find_unused_parameters",
        "data.num_workers",
    }
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Builds everything from the config (resuming from the latest checkpoint), then :meth:`run` trains."""

    def __init__(
        self,
        config: ExperimentConfig,
        exp_dir: str | Path,
        context: DistributedContext | None = None,
        resume: ResumeMode = "auto",
        show_progress: bool = True,
    ) -> None:
        self.context = context or DistributedContext(device=resolve_device(config.trainer.device))
        self.show_progress = show_progress and self.context.is_main
        self.exp_dir = Path(exp_dir)
        self.checkpoint_dir = self.exp_dir / CHECKPOINT_DIR
        self.device = self.context.device
        settings = config.trainer
        seed_everything(settings.seed + self.context.rank)

        require_data_dirs(config.data)
        on_the_fly = on_the_fly_attributes(config)
        teachers = build_teachers(config.attributes, on_the_fly, self.device)
        self.config = fill_target_shapes(config, {attr: teacher.dim for attr, teacher in teachers.items()})

        self.model = UnifiedEncoder(self.config.model_config()).to(self.device)
        self.targets = OnTheFlyTargets(teachers, self.model.sample_rate)
        cached = [attr for attr in self.config.attributes if attr not in on_the_fly]
        data = self.config.data
        self.train_data = build_split(
            data, "train", cached, self.model.sample_rate, settings.seed, self.context, keep_clean=bool(teachers)
        )
        self.data_fingerprint = data_fingerprint(self.train_data, "train")
        self.valid_data: SplitData | None = None
        if data.valid is not None:
            # Dev embeddings as extraction and embed() give them: an encoder whose frames depend on a batch's padding
            # (a GroupNorm front end) is validated one utterance at a time, as it is encoded there.
            dev = data if self.model.upstream.padding_invariant else dataclasses.replace(
                data, max_batch_size=1, max_batch_seconds=None
            )
            self.valid_data = build_split(dev, "valid", cached, self.model.sample_rate, settings.seed, self.context)
            self.data_fingerprint |= data_fingerprint(self.valid_data, "dev")
            self.tasks = load_tasks(data)
            names = metric_names(list(self.config.attributes), self.tasks, classified_attributes(self.model))
            if settings.best_criterion not in names:
                raise ConfigError(
                    f"trainer.best_criterion '{settings.best_criterion}' is not a validation metric; metrics: "
                    f"{', '.join(names)}"
                )

        self.total_steps = total_updates(settings, self.train_data.sampler)
        groups = split_parameters(self.model)
        self.parameters = [p for name in GROUPS for p in groups[name]]
        if not self.parameters:
            raise ConfigError("the model has no trainable parameter (is everything frozen?)")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedules: dict[str, LearningRateSchedule] = {}
        for name in GROUPS:
            if groups[name]:
                group_config = getattr(self.config.optim, name)
                self.optimizers[name], self.schedules[name] = build_group(
                    groups[name], group_config, self.total_steps, f"optim.{name}"
                )
            else:
                logger.info("no trainable %s parameters: optim.%s is not used", name, name)
        self.amp_dtype, self.scaler = amp_settings(settings.amp, self.device)
        self.model_loss = ModelLoss(self.model, self._autocast)

        self.best = BestCheckpoints(settings.n_best, settings.criterion_mode())
        self.step = 0
        self.update_lrs: dict[str, float] = {}  # each group's lr in the last update
        self.epoch = 0
        self.batches_in_epoch = 0  # training batches of the current epoch already in an update
        self.history: list[dict[str, Any]] = []
        self.checkpointed_step: int | None = None  # the step of the latest checkpoint on disk
        # Before the resume: the checkpoint's state then replaces whatever the probe's training-mode forward
        # changed in the model (e.g. BatchNorm statistics).
        find_unused = self._find_unused_parameters()
        resumed = self._resume(resume)
        if self.context.is_main:  # only now: a refused resume leaves the config.yaml of the run it belongs to
            save_yaml(experiment_dict(self.config), self.exp_dir / "config.yaml")
        self.wrapped = wrap_model(self.model_loss, self.context, find_unused)
        # Resumed: what a killed run logged after the checkpoint's step is dropped; that step's own lines stay.
        self.writer = self._tensorboard(purge_step=self.step + 1 if resumed else None)
        # The loss sums since the last log line, kept across epochs: a line covers every update since the last.
        self.running: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        self.running_since = time.monotonic()

    # ----------------------------------------------------------------------------------------------- set-up

    def _resume(self, mode: ResumeMode) -> bool:
        """Load the latest checkpoint (``auto``), or refuse to mix a fresh run with old checkpoints (``never``).

        A config that changed beyond :data:`RESUMABLE_CHANGES` is refused: the restored state would silently
        keep the old values (the optimiser's lr, the n-best list's criterion, the sampler's plan).
        """
        if self.context.is_main:  # the only writer of checkpoints
            remove_interrupted_saves(self.checkpoint_dir)
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return False
        if mode == "never":
            raise ConfigError(
                f"{self.checkpoint_dir} holds checkpoints but --resume is 'never'; remove them or use another --exp-dir"
            )
        state = load_checkpoint(path)  # on the CPU: load_state_dict() copies each tensor to its parameter's device
        changed = changed_keys(state["config"], experiment_dict(self.config))
        refused = [key for key in changed if key not in RESUMABLE_CHANGES]
        if refused:
            raise ConfigError(
                f"{path}: the config changed in {', '.join(refused)}, which a resumed run cannot honour (its "
                f"model, optimiser, schedule, n-best and sampler state keep the old values); set them back, or "
                f"train afresh in a new --exp-dir (or after removing {self.checkpoint_dir})"
            )
        if changed:
            logger.info("resuming with a changed %s", ", ".join(changed))
        self._require_same_data(path, state.get("data"))
        self.model.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
            self.schedules[name].load_state_dict(state["schedules"][name])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.train_data.sampler.load_state_dict(state["sampler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batches_in_epoch = state["batches_in_epoch"]
        self.best.load_state_dict(state["best"])
        self.history = list(state["history"])
        self.checkpointed_step = self.step
        set_rng_state(state["rng"][self.context.rank])  # same world size: the sampler's settings include it
        if self.context.is_main:
            self._after_checkpoint()
        logger.info("resumed from %s (step %d, epoch %d)", path, self.step, self.epoch)
        return True

    def _require_same_data(self, path: Path, saved: dict[str, str] | None) -> None:
        """Refuse to resume over train or dev data that changed since ``path`` under the same paths."""
        if saved is None:
            logger.warning("%s records no data fingerprint (an older uattr): changed data would go unnoticed", path)
            return
        changed = changed_keys(saved, self.data_fingerprint)
        if changed:
            raise ConfigError(
                f"{path}: the data changed since this checkpoint ({', '.join(changed)}); a resumed run would go on "
                f"with the old run's optimiser, schedule and sampler state over other data. Restore the data, or "
                f"train afresh in a new --exp-dir (or after removing {self.checkpoint_dir})"
            )

    def _find_unused_parameters(self) -> bool:
        """DDP's ``find_unused_parameters``: only when some trainable parameter gets no gradient (costly).

        The probe is a training-mode forward whose dropout draws random numbers and whose batch norms update
        their running statistics: every RNG state and buffer is put back after it, so that the run is the same
        with ``auto`` as with the value it finds.
        """
        setting = self.config.trainer.find_unused_parameters
        if setting != "auto":
            return setting
        if not self.context.enabled:
            return False
        dataset = self.train_data.dataset
        saved = rng_state()
        buffers = {name: buffer.clone() for name, buffer in self.model.named_buffers()}
        try:
            batch = self._to_device(self.targets(collate_batch([dataset[i] for i in range(min(2, len(dataset)))])))
            total, _ = self.model_loss(batch["wavs"], batch["wav_lens"], batch["targets"])
            unused = unused_parameters(self.model, total)
        finally:
            set_rng_state(saved)
            with torch.no_grad():
                for name, buffer in self.model.named_buffers():
                    buffer.copy_(buffers[name])
        if unused:
            logger.info("DDP: %d trainable parameters get no gradient (e.g. %s)", len(unused), unused[0])
        return bool(unused)

    def _tensorboard(self, purge_step: int | None) -> Any:
        if not self.context.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when training

        return SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=purge_step)

    # --------------------------------------------------------------------------------------------- training

    def run(self) -> Path:
        """Train until ``max_steps``/``max_epochs``, validate the last step, write ``EXP/model``; return it."""
        settings = self.config.trainer
        target = self.exp_dir / MODEL_DIR
        try:
            if self.finished() and self._model_is_current(target):
                logger.info("training already finished at step %d; %s exists", self.step, target)
                return target
            self.running_since = time.monotonic()
            bar = tqdm(
                total=self.total_steps, initial=self.step, desc="train", unit="step", disable=not self.show_progress
            )
            # Log lines go around the bar; without a bar the console handlers stay as they are (-q: warnings).
            redirect = logging_redirect_tqdm() if self.show_progress else contextlib.nullcontext()
            with bar as progress, redirect:
                while not self.finished():
                    self._train_epoch(progress)
                    if self.batches_in_epoch < len(self.train_data.sampler):
                        break  # stopped inside the epoch at max_steps
                    self.epoch += 1
                    self.batches_in_epoch = 0
                    if settings.valid_every is None:
                        self._validate_and_save()
                if self._last_step_unsaved():
                    self._validate_and_save()
            return self._write_model()
        finally:
            if self.writer is not None:
                self.writer.close()

    def epoch_of_step(self) -> int:
        """The 1-based epoch of the last update, in logs and valid_metrics.json: an epoch's last update belongs
        to it whether it is validated inside the epoch (``valid_every``) or after the epoch counter moved on."""
        return self.epoch + (1 if self.batches_in_epoch else 0)

    def _last_step_unsaved(self) -> bool:
        """Whether the last step still lacks its checkpoint, or (with a dev set) its validation."""
        validated = bool(self.history) and self.history[-1]["step"] == self.step
        return self.checkpointed_step != self.step or (self.valid_data is not None and not validated)

    def finished(self) -> bool:
        settings = self.config.trainer
        return (settings.max_steps is not None and self.step >= settings.max_steps) or (
            settings.max_epochs is not None and self.epoch >= settings.max_epochs
        )

    def _train_epoch(self, progress: tqdm) -> None:
        settings = self.config.trainer
        self.train_data.set_epoch(self.epoch)
        epoch_batches = len(self.train_data.sampler)
        running = self.running
        micro = micro_batches = 0
        for batch in self.train_data.loader:
            if micro == 0:  # a new update: grad_accum micro-batches, or the fewer left in the epoch
                micro_batches = min(settings.grad_accum, epoch_batches - self.batches_in_epoch)
            micro += 1
            update = micro == micro_batches
            for name, value in self._forward_backward(batch, micro_batches, sync=update).items():
                running[name] += value
            running["micro_batches"] += 1
            if not update:
                continue
            self.batches_in_epoch += micro
            micro = 0
            grad_norm = self._update()
            self.step += 1
            running["updates"] += 1
            progress.update(1)
            progress.set_postfix(loss=f"{float(running['loss'] / running['micro_batches']):.4g}", refresh=False)
            if self.step % settings.log_every == 0:
                self._log_training(running, grad_norm, time.monotonic() - self.running_since)
                running.clear()
                self.running_since = time.monotonic()
            if settings.valid_every is not None and self.step % settings.valid_every == 0:
                self._validate_and_save()
            elif settings.save_every is not None and self.step % settings.save_every == 0:
                if not self._validated_and_saved_next(epoch_batches):  # once is enough
                    self._save()
            if self.finished():
                return

    def _validated_and_saved_next(self, epoch_batches: int) -> bool:
        """Whether :meth:`run` validates and saves right after this update: the run ends, or the epoch does and
        it is validated at its end (``valid_every`` unset) or was the last one."""
        settings = self.config.trainer
        if self.finished():
            return True
        if self.batches_in_epoch < epoch_batches:
            return False
        last_epoch = settings.max_epochs is not None and self.epoch + 1 >= settings.max_epochs
        return settings.valid_every is None or last_epoch

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            **batch,
            "wavs": batch["wavs"].to(self.device, non_blocking=True),
            "wav_lens": batch["wav_lens"].to(self.device, non_blocking=True),
            "targets": {attr: value.to(self.device, non_blocking=True) for attr, value in batch["targets"].items()},
        }

    def _autocast(self) -> ContextManager:
        return autocast(self.device, self.amp_dtype)

    def _forward_backward(self, batch: dict[str, Any], micro_batches: int, sync: bool) -> dict[str, torch.Tensor]:
        """Loss and gradients of one of the ``micro_batches`` of an update (the gradient is their mean); DDP
        all-reduces only on the micro-batch that ends the update."""
        batch = self._to_device(self.targets(batch))
        no_sync = self.wrapped.no_sync() if self.context.enabled and not sync else contextlib.nullcontext()
        with no_sync:
            total, losses = self.wrapped(batch["wavs"], batch["wav_lens"], batch["targets"], step=self.step)
            scaled = total / micro_batches
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return {"loss": total.detach(), **{f"{attr}/loss": loss.detach() for attr, loss in losses.items()}}

    def _update(self) -> float | None:
        """Clip, step both optimisers (skipping non-finite gradients), zero the gradients, advance the schedules."""
        clip = self.config.trainer.grad_clip
        if self.scaler is not None:
            for optimizer in self.optimizers.values():
                self.scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(self.parameters, clip if clip else math.inf)
        # One norm over both groups: where it is not finite, clipping has scaled every gradient by 0 or NaN, so no
        # optimiser steps. (The scaler alone would step a group whose own gradients were finite.)
        if torch.isfinite(grad_norm):
            for optimizer in self.optimizers.values():
                if self.scaler is not None:
                    self.scaler.step(optimizer)
                else:
                    optimizer.step()
        if self.scaler is not None:
            self.scaler.update()  # lowers the scale on the overflow its unscale_ calls recorded
            if not torch.isfinite(grad_norm):  # dynamic loss scaling at work: expected now and then, early on
                logger.info(
                    "step %d: fp16 gradients overflowed; update skipped, loss scale now %g",
                    self.step + 1,
                    self.scaler.get_scale(),
                )
        elif not torch.isfinite(grad_norm):
            logger.warning("step %d: non-finite gradient norm; update skipped", self.step + 1)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.update_lrs = {name: schedule.current_lrs()[0] for name, schedule in self.schedules.items()}  # for logs
        for schedule in self.schedules.values():
            schedule.step()
        return float(grad_norm)

    # ------------------------------------------------------------------------------------ logging, validation

    def _log_training(self, running: dict[str, torch.Tensor], grad_norm: float | None, seconds: float) -> None:
        """Losses as means per micro-batch of the updates since the last log line, over every rank's micro-batches
        (each rank calls this at the same steps)."""
        updates = float(running.pop("updates"))
        totals = self.context.sum_over_ranks(running)
        micro_batches = totals.pop("micro_batches")
        means = {name: total / micro_batches for name, total in totals.items()}
        lrs = self.update_lrs  # the lr of the update just made (the schedules have moved on to the next one's)
        attributes = ", ".join(
            f"{name.removesuffix('/loss')} {value:.4g}" for name, value in means.items() if name != "loss"
        )
        logger.info(
            "step %d/%d (epoch %d): loss %.4g (%s), grad norm %.3g, lr %s, %.2f s/update",
            self.step,
            self.total_steps,
            self.epoch_of_step(),
            means["loss"],
            attributes,
            grad_norm,
            ", ".join(f"{name} {lr:.3g}" for name, lr in lrs.items()),
            seconds / updates,
        )
        if self.writer is None:
            return
        for name, value in means.items():
            self.writer.add_scalar(f"train/{name}", value, self.step)
        self.writer.add_scalar("train/grad_norm", grad_norm, self.step)
        for name, lr in lrs.items():
            self.writer.add_scalar(f"lr/{name}", lr, self.step)
        for attr, attribute in self.model.config.attributes.items():  # the weight the last update used
            weight = attribute.weight * attribute.weight_schedule.factor(self.step - 1)
            self.writer.add_scalar(f"loss_weight/{attr}", weight, self.step)
        for attr, entry in self.model.layer_weights().items():
            for layer, weight in zip(entry["layers"], entry["weights"]):
                self.writer.add_scalar(f"layer_weights/{attr}/layer_{layer:02d}", weight, self.step)

    def _validate_and_save(self) -> None:
        """Validate (each rank its share), share the metrics, feed NewBob and the n-best list, write a checkpoint."""
        metrics = None
        if self.valid_data is not None:
            self.valid_data.set_epoch(0)
            batches = (self.targets(batch) for batch in self.valid_data.loader)
            metrics = validate(self.model, batches, self.device, self.tasks, self._autocast, self.context)
        metrics = self.context.broadcast(metrics)
        if metrics is not None:
            criterion = self.config.trainer.best_criterion
            self.history.append({"step": self.step, "epoch": self.epoch_of_step(), **metrics})
            for schedule in self.schedules.values():
                schedule.observe_validation(metrics["valid/loss"])
            self.best.update(self.step, metrics[criterion])
            logger.info("step %d validation: %s", self.step, format_metrics(metrics))
            if self.writer is not None:
                for name, value in metrics.items():
                    self.writer.add_scalar(name, value, self.step)
        self._save()

    # ------------------------------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (RNG states of every rank)."""
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "schedules": {name: schedule.state_dict() for name, schedule in self.schedules.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.train_data.sampler.state_dict(batches_done=self.batches_in_epoch),
            "rng": self.context.gather(rng_state()),
            "step": self.step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "best": self.best.state_dict(),
            "history": self.history,
            "config": experiment_dict(self.config),
            "data": self.data_fingerprint,
        }

    def _save(self) -> None:
        state = self.state_dict()  # on every rank: gathering the RNG states is a collective
        if self.context.is_main:
            save_checkpoint(state, checkpoint_path(self.checkpoint_dir, self.step))
            self._after_checkpoint()
        self.context.barrier()
        self.checkpointed_step = self.step

    def _after_checkpoint(self) -> None:
        """What follows a checkpoint: valid_metrics.json from its history, and the pruning of older checkpoints.
        A resume does it again, so a run killed between the checkpoint and these leaves neither behind."""
        with atomic_write(self.exp_dir / METRICS_FILE) as handle:
            json.dump(self.history, handle, indent=1)
        prune_checkpoints(self.checkpoint_dir, self.config.trainer.keep_last, self.best.steps)

    def _model_selection(self) -> dict[str, Any]:
        """The checkpoints ``EXP/model`` is made of: the n best by the criterion (``average_best``), the best
        one, or the last parameters (``criterion`` None) when nothing was validated."""
        settings = self.config.trainer
        if not self.best.steps:
            return {"steps": [self.step], "criterion": None}
        return {
            "steps": self.best.steps if settings.average_best else self.best.steps[:1],
            "criterion": settings.best_criterion,
        }

    def _model_is_current(self, target: Path) -> bool:
        """Whether ``target`` holds the model of the current selection. A finished run re-run with another
        ``trainer.average_best`` rebuilds it, as config.yaml then says; a model dir written before its
        selection was recorded is kept."""
        if not (target / WEIGHTS_FILE).is_file():
            return False
        recorded = target / SELECTION_FILE
        if not recorded.is_file():
            return True
        selection, wanted = json.loads(recorded.read_text()), self._model_selection()
        if selection == wanted:
            return True
        logger.info("%s was made of %s; making it of %s", target, selection, wanted)
        return False

    def _write_model(self) -> Path:
        """``EXP/model``: the mean of the n best checkpoints (``average_best``), else the best one; the last
        parameters when nothing was validated. Swapped in whole, with its selection recorded."""
        target = self.exp_dir / MODEL_DIR
        selection = self._model_selection()
        if self.context.is_main:
            if selection["criterion"] is not None:
                steps = selection["steps"]
                checkpoints = list_checkpoints(self.checkpoint_dir)
                missing = [step for step in steps if step not in checkpoints]
                if missing:
                    raise DataError(f"{self.checkpoint_dir}: the checkpoints of best steps {missing} are gone")
                logger.info(
                    "final model: mean of the best checkpoint(s) by %s: steps %s",
                    self.config.trainer.best_criterion,
                    steps,
                )
                self.model.load_state_dict(average_checkpoints([checkpoints[step] for step in steps]))
            with atomic_dir(target) as staging:  # an older model/ is replaced only by a complete new one
                self.model.save_pretrained(staging)
                (staging / SELECTION_FILE).write_text(json.dumps(selection) + "\n")
            logger.info("wrote %s", target)
        self.context.barrier()
        return target


class ModelLoss(nn.Module):
    """The model's forward and its training loss as one module, the one DDP wraps: the parameters that only the
    loss uses (learned loss weights, a classifier's) are then used inside the wrapped forward, which DDP's
    ``find_unused_parameters`` needs to mark each parameter ready once per backward."""

    def __init__(self, model: UnifiedEncoder, autocast: Callable[[], ContextManager]) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor, targets: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``model.compute_loss`` of the batch: the encoder under autocast, the losses in float32."""
        with self.autocast():
            embeddings = self.model(wavs, wav_lens)
        embeddings = {attr: embedding.float() for attr, embedding in embeddings.items()}
        return self.model.compute_loss(embeddings, targets, step=step)


def total_updates(settings: TrainerConfig, sampler: DynamicBatchSampler) -> int:
    """Updates until ``max_steps`` or the end of ``max_epochs``, from each epoch's own batch plan (bucketing by
    duration, and weighted sampling, make the number of batches differ from epoch to epoch)."""
    if settings.max_epochs is None:
        return settings.max_steps
    plans = copy.copy(sampler)  # planning other epochs here leaves the training sampler's plan and position alone
    total = 0
    for epoch in range(settings.max_epochs):
        if settings.max_steps is not None and total >= settings.max_steps:
            break
        plans.set_epoch(epoch)
        total += math.ceil(len(plans) / settings.grad_accum)
    return total if settings.max_steps is None else min(total, settings.max_steps)


def changed_keys(old: Any, new: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain-data configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [key for key in new if key not in old]
        return [c for key in keys for c in changed_keys(old.get(key), new.get(key), f"{where}.{key}".lstrip("."))]
    return [] if old == new else [where]


def amp_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """Autocast dtype and fp16 grad scaler; mixed precision only runs on CUDA."""
    if amp == "none":
        return None, None
    if device.type != "cuda":
        logger.info("trainer.amp %s is forced off on %s", amp, device)
        return None, None
    dtype = autocast_dtype(amp, device, "trainer.amp")
    return dtype, torch.amp.GradScaler("cuda") if dtype == torch.float16 else None


def train(
    config: ExperimentConfig, exp_dir: str | Path, resume: ResumeMode = "auto", show_progress: bool = True
) -> Path:
    """Set up the process group (torchrun) or a single process, train, and tear down; returns EXP/model.

    Rank 0 logs to the console (at the verbosity set up before) and ``EXP/train.log`` (always every INFO line: a
    quiet console must not leave the run without its record); the other ranks only report warnings and errors.
    """
    context = init_distributed(config.trainer.device)
    root = logging.getLogger()
    known_handlers, level = list(root.handlers), root.level
    handler_levels = {handler: handler.level for handler in known_handlers}
    run_log = None
    try:
        if context.is_main:
            for handler in known_handlers:
                handler.setLevel(max(handler.level, level))
            root.setLevel(min(level, logging.INFO))
            run_log = add_file_handler(Path(exp_dir) / "train.log")
        else:
            root.setLevel(logging.WARNING)
        return Trainer(config, exp_dir, context, resume, show_progress).run()
    except BaseException as error:
        # The command reports the error on the console once this returns; the run's own record must end with it
        # too (a recipe points there), not with the last line before it.
        if run_log is not None:
            run_log.handle(_stop_record(error))
        raise
    finally:
        for handler in [h for h in root.handlers if h not in known_handlers]:
            root.removeHandler(handler)
            handler.close()
        for handler, handler_level in handler_levels.items():
            handler.setLevel(handler_level)
        root.setLevel(level)
        cleanup_distributed()


def _stop_record(error: BaseException) -> logging.LogRecord:
    """The train.log line of the error that stopped the run: a toolkit error's message, an interrupt, or an
    unexpected error with its traceback."""
    if isinstance(error, KeyboardInterrupt):
        message, exc_info = "training interrupted", None
    elif isinstance(error, UattrError):
        message, exc_info = f"training stopped: {user_message(error)}", None
    else:
        message, exc_info = "training stopped by an unexpected error", (type(error), error, error.__traceback__)
    return logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), exc_info)
