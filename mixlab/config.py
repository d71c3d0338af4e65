"""One config loader for recipes and train configs.

YAML -> plain data -> ``key.path=value`` overrides -> a typed pydantic model. Every problem is reported as a
:class:`ConfigError` naming the key path (``steps[2].threshold``) and, for unknown keys, the nearest valid key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mixlab.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds; ConfigError naming the file when it is missing, a directory, unreadable or not
    a mapping."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path}: is a directory, not a YAML file")
    if not p.exists():
        raise ConfigError(f"{path}: no such file")
    if not p.is_file():
        raise ConfigError(f"{path}: not a regular file, not a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in path.replace("]", "").split("."):
        name, *idx = token.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx)
    return parts


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b[0].c=value`` overrides; the value is parsed as YAML (``3``, ``true``, ``[a, b]``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        try:
            parts = _parse_path(key.strip())
        except ValueError:
            raise ConfigError(f"override {item!r}: bad key path {key!r}") from None
        if not parts:
            raise ConfigError(f"override {item!r}: empty key path")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); quote it to pass "
                              "a string") from None
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"override {item!r}: {format_path(parts[: i + 1])} does not exist")
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise ConfigError(f"override {item!r}: {format_path(parts[:i])} is not a mapping")
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"override {item!r}: {format_path(parts)} does not exist")
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override {item!r}: {format_path(parts[:-1])} is not a mapping")
    return data


def format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def suggest(name: str, choices: Iterable[str]) -> str:
    """`, did you mean 'x'?` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f", did you mean {match[0]!r}?" if match else ""


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk ``loc`` through nested models to find the keys valid at the place of an unknown key."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_of(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def _model_of(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def describe_validation_error(err: ValidationError, model: type[BaseModel], prefix: tuple = ()) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(prefix) + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = format_path(loc)
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = suggest(key, _allowed_keys(model, tuple(e["loc"])[:-1]))
            lines.append(f"{path}: unknown key{hint}")
        elif e["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            lines.append(f"{path}: {msg}{shown}")
    return "\n".join(lines)


def validate(model: type[M], data: Any, *, prefix: tuple = (), source: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        head = f"{source}: " if source else ""
        raise ConfigError(head + "invalid config\n" + describe_validation_error(err, model, prefix)) from None


def load_config(model: type[M], path: str | Path, overrides: Iterable[str] = ()) -> M:
    """Load ``path``, apply overrides and validate into ``model``."""
    data = apply_overrides(load_yaml(path), overrides)
    return validate(model, data, source=str(path))
