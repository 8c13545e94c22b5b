"""Validation on the dev set: per-attribute losses, EER on dev trials, speech→teacher R@1 on a dev gallery.

Model selection and NewBob only ever see these numbers; test sets are not touched during training.
Metric names: ``valid/loss``, ``valid/<attr>/loss``, ``valid/<attr>/eer`` (%), ``valid/<attr>/min_dcf_0.01``,
``valid/<attr>/r@1`` (%), and for a label attribute ``valid/<attr>/acc`` (%, the classifier its loss trains).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Mapping, Sequence

import numpy as np
import torch

from uattr.attributes.label import LabelExpert
from uattr.errors import ConfigError
from uattr.losses.base import gives_logits
from uattr.scoring.embeddings import EmbeddingSet, load_embedding_set, normalise_rows
from uattr.scoring.metrics import sv_metrics
from uattr.scoring.retrieval import evaluate_retrieval, relevance_by_id, relevance_from_map, retrieval_metrics
from uattr.scoring.sv import score_trials
from uattr.scoring.trials import Trials, read_trials
from uattr.train.config import DataConfig, table_files
from uattr.train.distributed import DistributedContext


@dataclasses.dataclass
class RetrievalTask:
    gallery: EmbeddingSet
    query2ref: str | None


@dataclasses.dataclass
class ValidationTasks:
    """The dev trials and retrieval galleries, read once when training starts."""

    trials: dict[str, Trials] = dataclasses.field(default_factory=dict)
    retrieval: dict[str, RetrievalTask] = dataclasses.field(default_factory=dict)

    @property
    def attributes(self) -> set[str]:
        """Attributes whose dev embeddings the tasks need."""
        return set(self.trials) | set(self.retrieval)


def load_tasks(config: DataConfig) -> ValidationTasks:
    """Read ``data.valid_trials`` and the galleries of ``data.valid_retrieval`` when training starts, so that a
    wrong file shows at once rather than at the first validation."""
    tasks = ValidationTasks()
    for attr, path in config.valid_trials.items():
        trials = read_trials(path)
        if trials.labels is None or trials.labels.all() or not trials.labels.any():
            raise ConfigError(
                f"data.valid_trials.{attr}: {path} must label its trials target/nontarget, with both classes "
                "(the dev EER needs them)"
            )
        tasks.trials[attr] = trials
    for attr, retrieval in config.valid_retrieval.items():
        if retrieval.query2ref is not None and not Path(retrieval.query2ref).is_file():
            raise ConfigError(f"data.valid_retrieval.{attr}.query2ref: no such file {retrieval.query2ref}")
        gallery = retrieval.gallery or config.target_table(attr, "valid")
        tasks.retrieval[attr] = RetrievalTask(load_embedding_set(table_files(gallery)[0]), retrieval.query2ref)
    return tasks


def _sv_metric_names(attr: str) -> tuple[str, str]:
    """The names of ``attr``'s dev EER and minDCF, spelled here only (the metrics and their list both use it)."""
    return f"valid/{attr}/eer", f"valid/{attr}/min_dcf_0.01"


def _retrieval_metric_name(attr: str) -> str:
    return f"valid/{attr}/r@1"


def _accuracy_name(attr: str) -> str:
    return f"valid/{attr}/acc"


def classified_attributes(model: torch.nn.Module) -> list[str]:
    """The attributes of ``model`` (a UnifiedEncoder) whose experts classify with a loss that gives its class
    scores (a plug-in loss may not): their dev accuracy is measured."""
    return [
        attr for attr in model.attributes
        if isinstance(model.expert(attr), LabelExpert) and gives_logits(model.expert(attr).loss_fn)
    ]


def metric_names(attributes: Sequence[str], tasks: ValidationTasks, classified: Sequence[str] = ()) -> list[str]:
    """The names :func:`validate` returns (see the module docstring), known before any validation runs;
    ``classified`` as :func:`classified_attributes` gives them."""
    names = ["valid/loss"] + [f"valid/{attr}/loss" for attr in attributes]
    names += [_accuracy_name(attr) for attr in attributes if attr in classified]
    for attr in attributes:
        if attr in tasks.trials:
            names += _sv_metric_names(attr)
        if attr in tasks.retrieval:
            names.append(_retrieval_metric_name(attr))
    return names


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Iterable[dict[str, Any]],
    device: torch.device,
    tasks: ValidationTasks,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    context: DistributedContext | None = None,
) -> dict[str, float] | None:
    """Run ``model`` (unwrapped, not DDP) over the dev ``batches`` (with targets) and compute every metric.

    In a DDP run each rank passes its share of the dev batches: rank 0 gathers the loss sums and embeddings
    and returns the metrics, the other ranks None (a dev set thus takes 1/world of the time, well within the
    process group's timeout). Losses are the training losses (full weights) averaged over the dev utterances,
    the same however the dev set is batched or shared out (see :func:`_utterance_sums`; the trainer gives an encoder
    that is not ``padding_invariant`` one utterance per batch, as extraction does: a slower validation).
    """
    context = context or DistributedContext()
    was_training = model.training
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    count = 0
    collected: dict[str, tuple[list[str], list[np.ndarray]]] = {attr: ([], []) for attr in tasks.attributes}
    classified = classified_attributes(model)
    try:
        for batch in batches:
            with autocast():
                embeddings = model(batch["wavs"].to(device), batch["wav_lens"].to(device))
            embeddings = {attr: embedding.float() for attr, embedding in embeddings.items()}
            targets = {attr: target.to(device) for attr, target in batch["targets"].items()}
            count += len(batch["ids"])
            for attr, embedding in embeddings.items():
                weighted, loss = _utterance_sums(model, attr, embedding, targets)
                sums["valid/loss"] += weighted
                sums[f"valid/{attr}/loss"] += loss
                if attr in classified:
                    expert = model.expert(attr)
                    predicted = expert.logits(embedding).argmax(dim=-1)
                    sums[_accuracy_name(attr)] += 100.0 * float((predicted == targets[expert.target_key]).sum())
            for attr, (ids, vectors) in collected.items():
                ids.extend(batch["ids"])
                vectors.append(embeddings[attr].cpu().numpy())
    finally:
        model.train(was_training)
    shares = context.gather_to_main((dict(sums), count, collected))
    if shares is None:
        return None
    totals: dict[str, float] = defaultdict(float)
    count = 0
    merged: dict[str, tuple[list[str], list[np.ndarray]]] = {attr: ([], []) for attr in tasks.attributes}
    for share_sums, share_count, share_collected in shares:
        count += share_count
        for name, value in share_sums.items():
            totals[name] += value
        for attr, (ids, vectors) in share_collected.items():
            merged[attr][0].extend(ids)
            merged[attr][1].extend(vectors)
    metrics = {name: value / max(count, 1) for name, value in totals.items()}
    for attr, (ids, vectors) in merged.items():
        source = f"dev '{attr}' embeddings"
        student = EmbeddingSet(ids, normalise_rows(np.concatenate(vectors).astype(np.float64), ids, source), source)
        metrics.update(_task_metrics(attr, student, tasks))
    return metrics


def _utterance_sums(
    model: torch.nn.Module, attr: str, embedding: torch.Tensor, targets: dict[str, torch.Tensor]
) -> tuple[float, float]:
    """``attr``'s weighted loss (its term of the total) and its plain loss, each summed over the batch's utterances.

    A sum-reduced loss (the paper's cosine loss) sums the utterances' losses, but its weighted term may add a
    constant once per batch (a learned log-variance), so its utterances are scored one at a time. Any other loss
    is a batch mean (or, as InfoNCE's, a batch-level value) that counts once for each utterance.
    """
    size = len(embedding)
    if getattr(model.expert(attr).loss_fn, "reduction", "mean") != "sum":
        total, losses = model.compute_loss({attr: embedding}, targets)
        return float(total) * size, float(losses[attr]) * size
    weighted = plain = 0.0
    for index in range(size):
        total, losses = model.compute_loss(
            {attr: embedding[index : index + 1]}, {key: value[index : index + 1] for key, value in targets.items()}
        )
        weighted, plain = weighted + float(total), plain + float(losses[attr])
    return weighted, plain


def _task_metrics(attr: str, student: EmbeddingSet, tasks: ValidationTasks) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if attr in tasks.trials:
        scores = score_trials(tasks.trials[attr], student, skip_missing=True)
        sv = sv_metrics(scores.scores, scores.labels, p_targets=(0.01,))
        eer_name, min_dcf_name = _sv_metric_names(attr)
        metrics[eer_name] = sv["eer"]
        metrics[min_dcf_name] = sv["min_dcf"]["0.01"]
    if attr in tasks.retrieval:
        task = tasks.retrieval[attr]
        relevance = (
            relevance_from_map(task.query2ref, student, task.gallery)
            if task.query2ref
            else relevance_by_id(student, task.gallery)
        )
        outcome = evaluate_retrieval(student.vectors, task.gallery.vectors, relevance, margin="absolute")
        metrics[_retrieval_metric_name(attr)] = retrieval_metrics(outcome, ks=(1,))["r@1"]
    return metrics


def format_metrics(metrics: Mapping[str, float]) -> str:
    """``loss 1.23, semantic/loss 0.61, speaker/eer 4.5`` for log lines."""
    return ", ".join(f"{name.removeprefix('valid/')} {value:.4g}" for name, value in metrics.items())
