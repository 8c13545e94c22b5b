"""Attribute branches; importing this package registers the built-in projections and poolings."""

from uattr.branch import pooling, projection  # noqa: F401  (registration)
from uattr.branch.branch import AttributeBranch, BranchConfig, resolve_layers

__all__ = ["AttributeBranch", "BranchConfig", "resolve_layers"]
