"""YAML configs: loading, dotted command-line overrides, and strict conversion into dataclasses.

Overrides are ``--a.b.c value`` pairs whose value is parsed with ``yaml.safe_load`` (never ``eval``). Every
section is a dataclass; a key the dataclass does not declare is an error naming its dotted path.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from uattr.errors import ConfigError, DataError
from uattr.fileio import atomic_write, read_text

T = TypeVar("T")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error: PyYAML keeps the last, so a
    second ``trainer:`` section would silently replace the first whole."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' keys may be overridden: not repeats
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{line}: key '{key}' is given twice in one mapping (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; syntax errors, repeated keys and non-mapping documents name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(read_text(path), Loader=_UniqueKeyLoader)
    except DataError as error:  # not UTF-8: still a config problem
        raise ConfigError(str(error)) from error
    except ConfigError as error:
        raise ConfigError(f"{path}:{error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(describe_yaml_error(path, error)) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def describe_yaml_error(path: str | Path, error: yaml.YAMLError) -> str:
    """``PATH:LINE:COLUMN: invalid YAML: problem`` in one line (PyYAML's own text spans lines, quotes the source
    and names the file "<unicode string>")."""
    mark = getattr(error, "problem_mark", None)
    position = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    problem = "; ".join(part for part in parts if part) or " ".join(str(error).split())
    return f"{path}{position}: invalid YAML: {problem}"


_EXPONENT_FLOAT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def parse_overrides(argv: Sequence[str]) -> list[tuple[str, Any]]:
    """Turn ``["--trainer.max_steps", "500", ...]`` into ``[("trainer.max_steps", 500), ...]``."""
    pairs: list[tuple[str, Any]] = []
    items = list(argv)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--") or len(flag) == 2:
            raise ConfigError(f"override '{flag}' must look like --section.key value")
        key = flag[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        elif items:
            raw = items.pop(0)
        else:
            raise ConfigError(f"override --{key} has no value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"override --{key}: cannot parse value {raw!r}: {error}") from error
        pairs.append((key, value))
    return pairs


def apply_overrides(config: dict[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted key in a deep copy of ``config``; intermediate mappings are created as needed."""
    result = yaml.safe_load(yaml.safe_dump(config))  # deep copy of plain data
    for key, value in overrides:
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override --{key}: '{part}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return result


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "", default: T | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses; unknown keys are errors.

    A partial mapping changes only the keys it gives: the others keep the values of ``default`` or, for a nested
    section, of the section's own default (e.g. the paper's optimiser of a parameter group, whose ``lr`` alone an
    override may change). A section that names another component (its ``name`` differs from the default's)
    inherits nothing: the default's settings (an optimiser's kwargs) belong to the component it replaces.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{_join(where, unknown[0])}'"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; known keys of '{where or 'config'}': {', '.join(sorted(fields))}"
        )
    if default is not None and "name" in data and data["name"] != getattr(default, "name", data["name"]):
        default = None
    kwargs = {}
    for name, value in data.items():
        section = _section_default(fields[name], hints[name], default)
        if section is not None and isinstance(value, Mapping):
            kwargs[name] = from_dict(hints[name], value, _join(where, name), section)
        else:
            kwargs[name] = _convert(hints[name], value, _join(where, name))
    if default is not None:
        kwargs.update({name: copy.deepcopy(getattr(default, name)) for name in fields if name not in kwargs})
    missing = [
        name
        for name, field in fields.items()
        if name not in kwargs
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"missing config key '{_join(where, missing[0])}'")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _section_default(field: dataclasses.Field, hint: Any, parent: Any) -> Any:
    """The default instance of a nested dataclass section: the parent default's, else the field's own."""
    if not dataclasses.is_dataclass(hint):
        return None
    if parent is not None:
        return getattr(parent, field.name)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def to_dict(obj: Any) -> Any:
    """The plain-data form of a (nested) dataclass config, for saving."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {field.name: to_dict(getattr(obj, field.name)) for field in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {key: to_dict(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(value) for value in obj]
    return obj


def save_yaml(data: Any, path: str | Path) -> None:
    """Write plain data (or a dataclass config) as YAML, atomically."""
    with atomic_write(path) as handle:
        yaml.safe_dump(to_dict(data), handle, sort_keys=False, allow_unicode=True)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` against a type hint (dataclasses, Optional, list, dict, scalars)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: value {value!r} fits none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value_hint = args[1] if len(args) == 2 else Any
        return {k: _convert(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)  # (value == value rules out NaN, YAML's .nan: no setting means "not a number")
    if hint is float and isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 (PyYAML) reads "1e-5" (no dot) as a string
    if hint is float:
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint in (int, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
