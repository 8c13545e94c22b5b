"""Named registries of pluggable components.

Built-in components register with a decorator where they are defined; an installed plug-in package registers
its own through the ``uattr.plugins`` entry-point group (each entry point names a module to import, whose
decorators then run). Unknown names and duplicate registrations are clear errors that list the choices.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Callable, Generic, Iterator, TypeVar

from uattr.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "uattr.plugins"

# Modules whose import registers the built-in components (imported once, on first lookup).
_BUILTIN_MODULES = (
    "uattr.upstream",
    "uattr.branch",
    "uattr.losses",
    "uattr.attributes",
    "uattr.teachers",
)

_plugins_loaded = False
_REGISTRIES: list[Registry] = []  # every registry, so a plug-in that fails to load can be taken out of all


def load_plugins() -> None:
    """Import the built-in component modules and every ``uattr.plugins`` entry point (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # first: a plug-in that looks a component up while it is imported must not recurse
    try:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            logger.debug("loading uattr plug-in %s (%s)", entry.name, entry.value)
            _load_plugin(entry)
    except BaseException:
        _plugins_loaded = False  # a later lookup tries again rather than missing the plug-ins after this one
        raise


def _load_plugin(entry: EntryPoint) -> None:
    # A plug-in that fails after registering some components leaves none: the next lookup imports it again, and
    # its new classes must not look like other components taking the names.
    before = [(registry, dict(registry._items)) for registry in _REGISTRIES]
    try:
        entry.load()
    except BaseException as error:
        for registry, items in before:
            registry._items.clear()
            registry._items.update(items)
        if isinstance(error, ConfigError) or not isinstance(error, Exception):
            raise  # a ConfigError (e.g. a name already taken) names both components itself
        package = entry.dist.name if entry.dist is not None else "an unknown package"
        raise ConfigError(
            f"uattr plug-in '{entry.name}' ({entry.value}, from {package}) failed to load: "
            f"{type(error).__name__}: {error}"
        ) from error


class UnknownComponentError(ConfigError):
    """A name no built-in or installed plug-in registered."""


class Registry(Generic[T]):
    """A name → component map for one kind of component (e.g. ``attribute expert``)."""

    def __init__(self, kind: str, name_attribute: str | None = None) -> None:
        _REGISTRIES.append(self)
        self.kind = kind
        self._items: dict[str, T] = {}
        # Set on each component to the name it is registered under (teachers record it in their tables).
        self.name_attribute = name_attribute

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a class or factory under ``name``; a second use of a name is an error."""

        def decorator(component: T) -> T:
            if name in self._items and self._items[name] is not component:
                raise ConfigError(
                    f"{self.kind} '{name}' is already registered (by {_describe(self._items[name])}); "
                    f"{_describe(component)} must choose another name"
                )
            self._items[name] = component
            if self.name_attribute:
                setattr(component, self.name_attribute, name)
            return component

        return decorator

    def get(self, name: str, where: str | None = None) -> T:
        """Look ``name`` up, loading built-ins and plug-ins first; unknown names list the choices. ``where``, the
        config key that named it (e.g. ``attributes.speaker.expert``), begins any error, a plug-in's failure to
        load included; the error keeps its type (an UnknownComponentError stays one)."""
        try:
            load_plugins()
            if name not in self._items:
                raise UnknownComponentError(
                    f"unknown {self.kind} '{name}'; choices: {', '.join(sorted(self._items)) or '(none)'}"
                )
        except ConfigError as error:
            if where is None:
                raise
            raise type(error)(f"{where}: {error}") from None
        return self._items[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _describe(component: object) -> str:
    return f"{getattr(component, '__module__', '?')}.{getattr(component, '__qualname__', repr(component))}"


UPSTREAMS: Registry = Registry("upstream")
POOLINGS: Registry = Registry("pooling")
PROJECTIONS: Registry = Registry("projection")
LOSSES: Registry = Registry("loss")
ATTRIBUTE_EXPERTS: Registry = Registry("attribute expert")
TEACHERS: Registry = Registry("teacher", name_attribute="name")
