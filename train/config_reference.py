"""The config reference: every key of a pydantic config model as a Markdown table (key, type, default,
description), built from the models themselves, and the README sections that hold those tables.

`train config pretrain` and `curate config recipe` print a table; ``train config --update
README.md`` rewrites the README's tables in place (between ``<!-- config:NAME -->`` and ``<!-- /config:NAME -->``)
and ``--check`` exits 1 when they disagree with the models.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mixlab.errors import ConfigError


@dataclass(frozen=True)
class Row:
    """One key of a config: its dotted path (``optim.lr``, ``data.files[].path``), its type and constraints in
    words, its default as YAML would write it in a Markdown code span (``required`` when it has none, ``computed``
    when it depends on the machine), and its description."""

    key: str
    type: str
    default: str
    description: str


def _train_models() -> dict[str, type[BaseModel]]:
    from train.config import AblateConfig, DoReMiConfig, DPOConfig, PretrainConfig, SFTConfig

    return {"pretrain": PretrainConfig, "sft": SFTConfig, "dpo": DPOConfig, "doremi": DoReMiConfig,
            "ablate": AblateConfig}


def train_commands() -> list[str]:
    """The `train` commands that read a config file, in README order."""
    return list(_train_models())


def recipe_sections() -> list[str]:
    """The names of the recipe's tables: ``recipe`` (the recipe's own keys) and ``step:NAME`` for each registered
    curation step's params, in registry order."""
    from curate.steps import REGISTRY

    return ["recipe", *(f"step:{name}" for name in REGISTRY)]


def model_for(name: str) -> type[BaseModel]:
    """The config model a table is built from: a `train` command (``pretrain``, ``sft``, ``dpo``, ``doremi``,
    ``ablate``), ``recipe``, or ``step:NAME`` (a curation step's params). Raises ConfigError for any other name,
    listing the valid ones."""
    models = _train_models()
    if name in models:
        return models[name]
    if name == "recipe":
        from curate.recipe import RecipeModel

        return RecipeModel
    if name.startswith("step:"):
        from curate.steps import REGISTRY

        step = REGISTRY.get(name.removeprefix("step:"))
        if step is not None:
            return step.Params
    raise ConfigError(f"no config named {name!r}; one of: {', '.join(list(models) + recipe_sections())}")


def rows(model: type[BaseModel], default: BaseModel | None = None, prefix: str = "") -> list[Row]:
    """Every key of ``model``, nested sections as dotted keys, in declaration order.

    ``default`` is the instance a section defaults to (a command may change a shared section's defaults, e.g.
    `train sft`'s ``optim.lr``); its values are the defaults shown. A section that has a default instance gets no
    row of its own, only its keys; a required, optional (``null``) or list-of-mappings section gets a row too, and
    a list's item keys are written ``files[].path``. Keys are the names a YAML file uses (a field's alias)."""
    out: list[Row] = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        value = _field_default(field)
        if default is not None and (name in default.model_fields_set or not _computed(field)):
            value = getattr(default, name)
        sections = _member_models(field.annotation)
        in_list = _list_item_model(field.annotation)
        if len(sections) == 1 and isinstance(value, sections[0]):
            out.extend(rows(sections[0], value, key + "."))
            continue
        out.append(Row(key, _type_text(field.annotation, field), _default_text(field, value),
                       _description(field, sections or ([in_list] if in_list else []))))
        if in_list is not None:
            out.extend(rows(in_list, None, key + "[]."))
        for section in sections:
            out.extend(rows(section, None, key + "."))
    return out


def markdown_table(model: type[BaseModel]) -> str:
    """``model``'s :func:`rows` as a GitHub Markdown table (``|`` in cells escaped), ending in a newline."""
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for r in rows(model):
        cells = [f"`{r.key}`", r.type, r.default, r.description]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def table(name: str) -> str:
    """The Markdown table of the config :func:`model_for` ``name`` names."""
    return markdown_table(model_for(name))


_MARKER = re.compile(r"(?P<open><!-- config:(?P<name>[\w:.-]+) -->\n)(?P<body>.*?)(?P<close><!-- /config:(?P=name) -->)",
                     re.S)


def render_readme(text: str, tables: Callable[[str], str] = table) -> str:
    """``text`` (a README) with the body between every ``<!-- config:NAME -->`` / ``<!-- /config:NAME -->`` pair
    replaced by ``tables(NAME)``. Raises ConfigError for a name :func:`model_for` does not know."""
    return _MARKER.sub(lambda m: m["open"] + tables(m["name"]) + m["close"], text)


def readme_sections(text: str) -> list[str]:
    """The config names that have a marked section in ``text``, in order."""
    return [m.group("name") for m in _MARKER.finditer(text)]


def stale_sections(readme: Path) -> list[str]:
    """The names of ``readme``'s config sections whose table differs from the models (empty: all up to date)."""
    text = readme.read_text(encoding="utf-8")
    current = {m.group("name"): m.group("body") for m in _MARKER.finditer(text)}
    return [name for name, body in current.items() if body != table(name)]


def _computed(field: FieldInfo) -> bool:
    """Whether the default comes from a function of the machine (e.g. the CPU count), not a constant."""
    return field.default_factory is not None and field.default_factory not in (list, dict)


def _field_default(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    if field.default_factory is not None and not _computed(field):
        return field.default_factory()  # type: ignore[call-arg]
    return PydanticUndefined


def _default_text(field: FieldInfo, value: Any) -> str:
    if value is PydanticUndefined:
        return "computed" if field.default_factory is not None else "required"
    return f"`{_yaml_value(value)}`"


def _yaml_value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _description(field: FieldInfo, models: list[type[BaseModel]]) -> str:
    if field.description:
        return " ".join(field.description.split())
    docs = [(m.__doc__ or "").strip().split("\n\n")[0] for m in models]
    return " ".join(" ".join(d.split()) for d in docs if d)


def _member_models(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field's value may directly be (``X``, ``X | None``, ``Literal[...] | X | Y``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if _is_union(annotation):
        return [m for a in typing.get_args(annotation) for m in _member_models(a)]
    return []


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    for a in typing.get_args(annotation) if _is_union(annotation) else [annotation]:
        if typing.get_origin(a) is list:
            (item,) = typing.get_args(a)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null", Any: "any"}


def _type_words(annotation: Any) -> str:
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(json.dumps(a) if a is None or isinstance(a, bool) else str(a) for a in args)
    if _is_union(annotation):
        return " or ".join(dict.fromkeys(_type_words(a) for a in args))
    if origin is list:
        return f"[{_type_words(args[0])}, ...]" if args else "list"
    if origin is dict:
        return f"{{{_type_words(args[0])}: {_type_words(args[1])}}}" if args else "mapping"
    if origin is tuple:
        return "[" + ", ".join(_type_words(a) for a in args) + "]"
    return getattr(annotation, "__name__", str(annotation))


def _type_text(annotation: Any, field: FieldInfo) -> str:
    limits = []
    for m in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                limits.append(f"{sign} {getattr(m, attr)}")
        if isinstance(m, annotated_types.MinLen):
            limits.append("not empty" if m.min_length == 1 else f"at least {m.min_length} entries")
        if isinstance(m, annotated_types.MaxLen):
            limits.append(f"at most {m.max_length} entries")
        if getattr(m, "pattern", None):
            limits.append(f"matching `{m.pattern}`")
    return ", ".join([_type_words(annotation), *limits])


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")
