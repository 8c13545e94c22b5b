"""Teachers: frozen models (or label maps) whose per-utterance vectors are the students' targets.

Importing this package registers the built-ins in ``uattr.registry.TEACHERS``: ``sentence-transformers``,
``speechbrain-ecapa``, ``resemblyzer`` and ``labels``. Their heavy libraries load only when one is built.
"""

from uattr.teachers import ecapa, labels, resemblyzer, text  # noqa: F401  (registration side effects)
from uattr.teachers.base import Teacher, build_teacher, register_teacher, resolve_model

__all__ = ["Teacher", "build_teacher", "register_teacher", "resolve_model"]
