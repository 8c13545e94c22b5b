"""Attribute experts; importing this package registers the built-ins in ``uattr.registry.ATTRIBUTE_EXPERTS``.

``distill`` (teacher-embedding distillation: semantic, speaker, any teacher) and ``label`` (classification
from ``utt2<label>``). A plug-in registers its own with ``@ATTRIBUTE_EXPERTS.register("name")`` on an
:class:`AttributeExpert` subclass.
"""

from uattr.attributes import distill, label  # noqa: F401  (registration)
from uattr.attributes.base import AttributeConfig, AttributeExpert, WeightSchedule, build_expert

__all__ = ["AttributeConfig", "AttributeExpert", "WeightSchedule", "build_expert"]
