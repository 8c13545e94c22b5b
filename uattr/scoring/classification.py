"""Label attributes (language, emotion, gender, …) scored by the classifier their loss trained, on extracted
embeddings: accuracy, balanced accuracy and macro F1 against a ``utt2<label>`` table.

The embeddings are those of ``uattr extract`` (the attribute's table), so scoring never encodes audio again; the
classifier is the one :meth:`UnifiedEncoder.classify` applies, so a prediction here equals ``classify`` on the
utterance's audio. Balanced accuracy (the mean of the per-class recalls) and macro F1 are averaged over the classes
present in the labels: language-ID and emotion test sets are rarely balanced, and plain accuracy then mostly says
how the largest class fares. Test labels the classifier does not know count as errors, with a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import sklearn.metrics
import torch

from uattr.data.tables import read_embedding_table
from uattr.errors import DataError
from uattr.fileio import PathLike, atomic_write, read_table
from uattr.model import UnifiedEncoder
from uattr.scoring.embeddings import describe_ids

logger = logging.getLogger(__name__)

BATCH = 4096  # embeddings per classifier call


@dataclass(frozen=True)
class Predictions:
    """Each utterance's label, the class the classifier picks and that class's posterior (in ``ids`` order)."""

    ids: list[str]
    labels: list[str]
    predicted: list[str]
    posteriors: np.ndarray


def classification_metrics(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 in percent (the last two over the classes in ``labels``), and the
    number of utterances and of those classes."""
    classes = sorted(set(labels))
    return {
        "accuracy": 100 * sklearn.metrics.accuracy_score(labels, predicted),
        "balanced_accuracy": 100 * float(np.mean(
            sklearn.metrics.recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
        )),
        "macro_f1": 100 * sklearn.metrics.f1_score(labels, predicted, labels=classes, average="macro", zero_division=0),
        "n_utterances": len(labels),
        "n_classes": len(classes),
    }


def per_class_metrics(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per class of ``labels``: its accuracy (recall: the share of its utterances recognised) and its count."""
    classes = sorted(set(labels))
    recalls = sklearn.metrics.recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
    counts = Counter(labels)
    return {label: {"accuracy": 100 * float(recall), "n_utterances": counts[label]}
            for label, recall in zip(classes, recalls)}


def predict(model: UnifiedEncoder, attribute: str, emb_scp: PathLike, labels_path: PathLike) -> Predictions:
    """Classify the embedding of every utterance of ``labels_path`` (``<utt> <label>`` lines) from ``emb_scp``."""
    expert = model.classifier(attribute)
    labels = read_table(labels_path)
    if not labels:
        raise DataError(f"{labels_path}: no labels")
    table = read_embedding_table(emb_scp)  # checks ids, dimensions and NaN/inf, naming file:line and id
    missing = [utt for utt in labels if utt not in table]
    if missing:
        raise DataError(f"{emb_scp}: no embedding of {len(missing)} labelled utterance(s) of {labels_path}: "
                        f"{describe_ids(missing)}")
    unlabelled = len(table) - len(labels)
    if unlabelled > 0:
        logger.info("%s: %d embedding(s) without a label in %s, not scored", emb_scp, unlabelled, labels_path)
    unknown = sorted(set(labels.values()) - set(expert.classes))
    if unknown:
        logger.warning("%s: label(s) the classifier of '%s' does not know, counted as errors: %s (it knows: %s)",
                       labels_path, attribute, ", ".join(unknown), ", ".join(expert.classes))
    ids = list(labels)
    dim = len(table[ids[0]])  # one for the whole table: read_embedding_table refuses mixed dimensions
    if dim != expert.embedding_dim:
        raise DataError(f"{emb_scp}: {dim}-d embeddings, but the classifier of '{attribute}' takes "
                        f"{expert.embedding_dim}-d ones (a table of another attribute or model?)")
    chosen, best = [], []
    parameter = next(expert.parameters())
    expert.eval()
    with torch.inference_mode():
        for start in range(0, len(ids), BATCH):
            vectors = np.stack([table[utt] for utt in ids[start : start + BATCH]])
            batch = torch.from_numpy(vectors).to(device=parameter.device, dtype=parameter.dtype)
            posteriors = torch.softmax(expert.logits(batch).float(), dim=-1)
            top, index = posteriors.max(dim=-1)
            chosen += index.tolist()
            best.append(top.cpu().numpy())
    classes = expert.classes
    return Predictions(ids, [labels[utt] for utt in ids], [classes[i] for i in chosen], np.concatenate(best))


def write_predictions(path: PathLike, predictions: Predictions) -> None:
    """``<utt> <label> <predicted> <posterior of predicted>`` lines."""
    with atomic_write(path) as handle:
        for utt, label, predicted, posterior in zip(
            predictions.ids, predictions.labels, predictions.predicted, predictions.posteriors
        ):
            handle.write(f"{utt} {label} {predicted} {posterior:.6f}\n")


def score_predictions(predictions: Predictions, per_class: bool = False) -> Mapping[str, object]:
    """The metrics of :func:`classification_metrics`, with those of :func:`per_class_metrics` as ``per_class`` if
    asked (``uattr results`` shows them as ``[class]`` rows)."""
    metrics: dict[str, object] = dict(classification_metrics(predictions.labels, predictions.predicted))
    if per_class:
        metrics["per_class"] = per_class_metrics(predictions.labels, predictions.predicted)
    return metrics
