"""The recipe: YAML -> typed, validated, paths resolved, before any work starts."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mixlab.config import Strict, apply_overrides, load_yaml, suggest, validate
from mixlab.errors import ConfigError

FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet", "txt", "lines")
_SUFFIX_FORMAT = {".jsonl": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz",
                  ".jsonl.zst": "jsonl.zst", ".json.zst": "jsonl.zst", ".parquet": "parquet"}


class Source(Strict):
    path: str | list[str] = Field(description="file path(s) or glob(s), relative to the recipe file")
    format: Literal["jsonl", "jsonl.gz", "jsonl.zst", "parquet", "txt", "lines"] | None = None
    domain: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    text_field: str = "text"
    id_field: str | None = None
    max_doc_bytes: int = Field(default=16 * 2**20, gt=0)
    on_error: Literal["record", "fail"] = "record"

    @property
    def patterns(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class KeepRemoved(Strict):
    sample: int = Field(gt=0)


class Output(Strict):
    dir: str
    shard_docs: int = Field(default=50_000, gt=0)
    shard_bytes: int = Field(default=256 * 2**20, gt=0)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    keep_removed: Literal["all", "none"] | KeepRemoved = "all"

    @field_validator("keep_removed", mode="before")
    @classmethod
    def _sample_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str) and (m := re.fullmatch(r"sample\s+(\d+)", v.strip())):
            return {"sample": int(m.group(1))}
        if isinstance(v, str) and v not in ("all", "none"):
            raise ValueError("must be 'all', 'none' or 'sample N'")
        return v


class Executor(Strict):
    type: Literal["local"] = "local"
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0)
    partitions: int = Field(default=16, gt=0, le=4096, description="shuffle partitions of a global step")
    batch_size: int = Field(default=1000, gt=0, description="documents per Arrow batch")
    work_compression: Literal["none", "lz4", "zstd"] = Field(
        default="none", description="codec of the temporary Arrow IPC files in OUT/.work: none is fastest; lz4 "
        "or zstd trade time for disk")


class Mixture(Strict):
    method: Literal["natural", "uniform", "temperature", "manual"] = "natural"
    tau: float | None = Field(default=None, gt=0)
    weights: dict[str, float] | None = None

    @model_validator(mode="after")
    def _method_params(self) -> "Mixture":
        if self.method == "temperature" and self.tau is None:
            raise ValueError("method 'temperature' needs tau (e.g. tau: 2.0)")
        if self.method == "manual":
            if not self.weights:
                raise ValueError("method 'manual' needs weights: {domain: weight}")
            if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
                raise ValueError("manual weights must be >= 0 and not all zero")
        elif self.weights is not None:
            raise ValueError(f"weights are only used with method 'manual' (method is {self.method!r})")
        if self.method != "temperature" and self.tau is not None:
            raise ValueError(f"tau is only used with method 'temperature' (method is {self.method!r})")
        return self


class RecipeModel(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    sources: list[Source] = Field(min_length=1)
    steps: list[Any] = Field(default_factory=list)
    mixture: Mixture = Mixture()
    output: Output
    executor: Executor = Executor()
    seed: int = 0


class StepSpec:
    """One validated entry of ``steps``: its registered name and typed params."""

    def __init__(self, name: str, params: Any, index: int) -> None:
        self.name, self.params, self.index = name, params, index

    def __repr__(self) -> str:
        return f"StepSpec({self.name!r}, {self.params!r})"


class Recipe:
    """A validated recipe with resolved input files; what every executor receives."""

    def __init__(self, model: RecipeModel, steps: list[StepSpec], files: list[list[Path]], base: Path) -> None:
        self.model, self.steps, self.files, self.base = model, steps, files, base

    @property
    def name(self) -> str:
        return self.model.name

    def output_dir(self) -> Path:
        return resolve(self.base, self.model.output.dir)

    def hash(self) -> str:
        """Hash of everything that decides the output (not worker count, not where the output goes)."""
        data = self.model.model_dump(mode="json")
        data["executor"].pop("workers", None)
        data["executor"].pop("work_compression", None)  # readers of work files take any codec
        data["output"].pop("dir", None)
        data["steps"] = [{"name": s.name, "params": s.params.model_dump(mode="json")} for s in self.steps]
        data["files"] = [[self.source_name(p) for p in fs] for fs in self.files]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def source_name(self, path: Path) -> str:
        """How a file is named in ids and the manifest: relative to the recipe when it lies below it."""
        try:
            return path.resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_posix()

    def to_dict(self) -> dict[str, Any]:
        data = self.model.model_dump(mode="json")
        data["steps"] = [{s.name: s.params.model_dump(mode="json")} for s in self.steps]
        return data


def resolve(base: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def infer_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in sorted(_SUFFIX_FORMAT.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    return None


def _expand(base: Path, source: Source, i: int) -> list[Path]:
    files: set[Path] = set()
    for j, pattern in enumerate(source.patterns):
        where = f"sources[{i}].path" + (f"[{j}]" if isinstance(source.path, list) else "")
        full = resolve(base, pattern)
        if glob.has_magic(str(full)):
            matches = [Path(m) for m in glob.glob(str(full), recursive=True)]
            matches = [m for m in matches if not m.is_dir() or source.format not in ("txt",)]
            if not matches:
                raise ConfigError(f"{where}: {pattern!r} matches no file (looked in {full.parent})")
            files.update(matches)
        elif full.is_dir() and source.format in ("txt", "lines"):
            found = [p for p in full.rglob("*") if p.is_file()]
            if not found:
                raise ConfigError(f"{where}: directory {pattern!r} holds no file")
            files.update(found)
        elif full.exists():
            files.add(full)
        else:
            raise ConfigError(f"{where}: {pattern!r} does not exist (resolved to {full})")
    return sorted(files)


def parse_steps(raw: list[Any], source: str = "") -> list[StepSpec]:
    from curate.steps import REGISTRY

    specs = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            name, params = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            name, params = next(iter(entry.items()))
            params = {} if params is None else params
        else:
            raise ConfigError(f"steps[{i}]: expected a step name or {{name: {{params}}}}, got {entry!r}")
        if name not in REGISTRY:
            raise ConfigError(f"steps[{i}]: unknown step {name!r}{suggest(name, REGISTRY)} "
                              f"(steps: {', '.join(sorted(REGISTRY))})")
        if not isinstance(params, dict):
            raise ConfigError(f"steps[{i}].{name}: params must be a mapping, got {params!r}")
        cls = REGISTRY[name]
        specs.append(StepSpec(name, validate(cls.Params, params, prefix=("steps", i, name), source=source), i))
    seen: dict[str, int] = {}
    for s in specs:
        if s.name in seen:
            raise ConfigError(f"steps[{s.index}]: step {s.name!r} appears twice (also steps[{seen[s.name]}])")
        seen[s.name] = s.index
    return specs


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Validate a recipe: keys, types, values, step params and input files. (What depends on the steps' order,
    domains and models is checked by `curate.plan.build_plan`, also before any work starts.)"""
    path = Path(path)
    data = apply_overrides(load_yaml(path), overrides)
    model = validate(RecipeModel, data, source=str(path))
    base = path.resolve().parent
    steps = parse_steps(model.steps, str(path))
    files = []
    for i, source in enumerate(model.sources):
        found = _expand(base, source, i)
        if source.format is None:
            formats = {infer_format(f) for f in found}
            if len(formats) != 1 or None in formats:
                raise ConfigError(f"sources[{i}].format: cannot infer the format of {found[0].name!r}; "
                                  f"set one of: {', '.join(FORMATS)}")
            source.format = formats.pop()
        files.append(found)
    return Recipe(model, steps, files, base)
