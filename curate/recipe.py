"""The recipe: YAML -> typed, validated, paths resolved, before any work starts."""

from __future__ import annotations

import codecs
import fnmatch
import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from mixlab.config import Strict, apply_overrides, load_yaml, suggest, validate
from mixlab.paths import resolve_path as resolve
from mixlab.errors import ConfigError
from mixlab.logs import log

FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "json", "parquet", "txt", "lines", "warc", "wet")
_SUFFIX_FORMAT = {".jsonl": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz",
                  ".jsonl.zst": "jsonl.zst", ".json.zst": "jsonl.zst", ".parquet": "parquet",
                  ".warc": "warc", ".warc.gz": "warc", ".warc.wet": "wet", ".warc.wet.gz": "wet"}


class Source(Strict):
    path: str | list[str] = Field(description="file path(s) or glob(s), relative to the recipe file")
    format: Literal["jsonl", "jsonl.gz", "jsonl.zst", "json", "parquet", "txt", "lines", "warc", "wet"] | None = Field(
        default=None, description="json: one JSON array of records per file; warc: HTML responses of WARC files, "
                                  "main text extracted; wet: Common Crawl's WET text extracts; inferred from the "
                                  "extension when omitted (not for txt or lines)")
    extractor: Literal["trafilatura", "resiliparse"] = Field(
        default="trafilatura", description="format warc: the main-text extractor (resiliparse: ~10x faster, keeps "
                                           "more boilerplate; benchmarks/warc_extract.py)")
    domain: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
                        description="every document of this source belongs to this domain")
    text_field: str = Field(default="text", description="the JSON key or Parquet column holding the text")
    id_field: str | None = Field(default=None, description="the key or column of a stable id; default: "
                                 "<file>:<line or row>, or the file for txt")
    url_field: str | None = Field(default=None, description="jsonl, json, parquet: the key or column holding the "
                                  "page's URL, copied into column url for url_filter (C4 and RefinedWeb carry url); "
                                  "a record without a string there has a null url")
    max_doc_bytes: int = Field(default=16 * 2**20, gt=0, description="larger documents are removed at step read "
                               "(reason too_large)")
    on_error: Literal["record", "fail"] = Field(
        default="record", description="record: bad records and unreadable files go to errors/ and the run goes on; "
                                      "fail: a file-level problem stops the run (exit 1)")
    encoding: str = Field(default="utf-8", description="the files' text encoding: a Python codec name (utf-8, "
                          "latin-1, cp1252, ...) or detect (per file: UTF-8 when the file is valid UTF-8, else "
                          "cp1252, else latin-1)")
    license: str = Field(default="unknown", max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9.+\-]*$",
                         description="the licence of this source's text, as an SPDX or Hugging Face id (cc-by-sa-4.0, "
                                     "odc-by, mit, ...; other, or unknown), for the data card")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        if v == "detect":
            return v
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (a Python codec name such as utf-8, latin-1, cp1252, or "
                             "detect)") from None
        try:
            "x".encode(v)
        except (LookupError, UnicodeError, TypeError):
            raise ValueError(f"{v!r} is not a text encoding") from None
        return v

    @property
    def codec(self) -> str:
        """The encoding's canonical Python name (``utf-8``, ``iso8859-1``, ``cp1252`` ...), or ``detect``."""
        return self.encoding if self.encoding == "detect" else codecs.lookup(self.encoding).name

    @model_validator(mode="after")
    def _encoding_fits_format(self) -> "Source":
        if self.codec in ("utf-8", "detect"):
            return self
        if self.format == "parquet":
            raise ValueError(f"encoding {self.encoding!r}: Parquet strings are UTF-8 by definition; leave encoding "
                             "out for a parquet source")
        if self.format in ("warc", "wet"):
            raise ValueError(f"encoding {self.encoding!r}: a {self.format} source reads each page in its own charset "
                             "(byte order mark, HTTP header, meta tag, detection); leave encoding out")
        if self.format != "json" and self.format != "txt" and '\n"{}:'.encode(self.encoding) != b'\n"{}:':
            raise ValueError(f"encoding {self.encoding!r} does not write ASCII as ASCII, so lines cannot be split "
                             f"at the line feed byte; convert the files to UTF-8 (e.g. iconv -f {self.encoding} "
                             "-t utf-8) or use format json or txt")
        return self

    @model_validator(mode="after")
    def _web_fields(self) -> "Source":
        if self.format in ("warc", "wet") and (self.text_field != "text" or self.id_field is not None):
            raise ValueError(f"text_field and id_field do not apply to format {self.format}: the text is the page's "
                             "main text and the id <file>:<record offset> (the record id is column warc_record_id)")
        if self.format not in (None, "warc") and "extractor" in self.model_fields_set:
            raise ValueError(f"extractor applies to format warc only (the main text of HTML pages), not to "
                             f"format {self.format}")
        if self.url_field is not None:
            if self.format in ("warc", "wet"):
                raise ValueError(f"url_field does not apply to format {self.format}: it writes column url "
                                 "(WARC-Target-URI) itself")
            if self.format in ("txt", "lines"):
                raise ValueError(f"url_field applies to records with fields (jsonl, json, parquet), not to "
                                 f"format {self.format}")
            if self.url_field == self.text_field:
                raise ValueError(f"url_field {self.url_field!r} is the text_field")
        return self

    @field_validator("path")
    @classmethod
    def _at_least_one_path(cls, v: str | list[str]) -> str | list[str]:
        if v == [] or "" in ([v] if isinstance(v, str) else v):
            raise ValueError("must name at least one file, directory or glob, none empty")
        return v

    @property
    def patterns(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class KeepRemoved(Strict):
    sample: int = Field(gt=0, description="keep a seeded sample of this many removed documents (the same ones "
                                          "whatever the workers)")


class Output(Strict):
    dir: str = Field(description="the corpus directory (relative to the recipe; `curate run --output` overrides it)")
    shard_docs: int = Field(default=50_000, gt=0, description="a new shard starts at this many documents ...")
    shard_bytes: int = Field(default=256 * 2**20, gt=0, description="... or at this many bytes of text")
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(default="zstd",
                                                                  description="the Parquet shards' codec")
    keep_removed: Literal["all", "none"] | KeepRemoved = Field(
        default="all", description="removed documents saved under removed/<step>/: all, none or \"sample N\"")
    card_plots: Literal["auto"] | bool = Field(
        default="auto", description="draw the data card's figures: auto (when the run read at least 1,000 "
        "documents), true or false; `curate card OUT` always draws them")

    @field_validator("keep_removed", mode="before")
    @classmethod
    def _sample_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str) and (m := re.fullmatch(r"sample\s+(\d+)", v.strip())):
            return {"sample": int(m.group(1))}
        if isinstance(v, str) and v not in ("all", "none"):
            raise ValueError("must be 'all', 'none' or 'sample N'")
        return v


RAY_ONLY = ("address", "num_cpus_per_task", "max_retries")
"""Executor keys only the ray executor reads."""
COMPRESSED, COMPRESSED_RATIO = (".gz", ".zst", ".parquet"), 4


def max_workers() -> int:
    """The most worker processes a run may start: 4 x the CPU count; more only contend for the same cores."""
    return 4 * (os.cpu_count() or 1)


def check_workers(workers: int, key: str) -> None:
    """ConfigError naming ``key`` unless ``1 <= workers <= max_workers()``."""
    if workers < 1:
        raise ConfigError(f"{key}: must be at least 1 (got {workers})")
    if workers > max_workers():
        raise ConfigError(f"{key}: at most {max_workers()} (4 x the {os.cpu_count() or 1} CPUs of this machine), "
                          f"got {workers}")


class Executor(Strict):
    type: Literal["local", "ray"] = Field(default="local", description="local: a process pool on this machine; "
                                          "ray: each task a Ray task on a cluster whose nodes share the inputs' "
                                          "and the output's filesystem (the ray extra)")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0, description="worker processes; default: "
                         "the number of CPUs (at most 4 per CPU)")
    partitions: int | None = Field(default=None, gt=0, le=4096, description="shuffle partitions of a global "
                                   "step; default: one per 64 MiB of input up to 16, then one per GiB, at most "
                                   "4096 (compressed files count 4 x their size)")
    batch_size: int = Field(default=1000, gt=0, description="documents per Arrow batch")
    work_compression: Literal["none", "lz4", "zstd"] = Field(
        default="none", description="codec of the temporary Arrow IPC files in OUT/.work: none is fastest; lz4 "
        "or zstd trade time for disk")
    address: str | None = Field(default=None, description="type ray: the cluster; null starts a Ray instance on "
                                "this machine with `workers` CPUs, auto joins the cluster of this machine (`ray "
                                "start`), HOST:PORT names its head, ray://HOST:PORT goes through Ray Client")
    num_cpus_per_task: float = Field(default=1, gt=0, description="type ray: CPUs Ray reserves for each task")
    max_retries: int = Field(default=3, ge=0, description="type ray: times a task whose worker or node died is run "
                             "again")

    @field_validator("workers")
    @classmethod
    def _at_most_four_per_cpu(cls, v: int) -> int:
        if v > max_workers():
            raise ValueError(f"at most {max_workers()} (4 x the {os.cpu_count() or 1} CPUs of this machine)")
        return v


class Mixture(Strict):
    method: Literal["natural", "uniform", "temperature", "manual", "doremi"] = Field(
        default="natural", description="the domain weights: natural (in proportion to tokens), uniform, temperature "
                                       "(needs tau), manual (needs weights) or doremi (needs doremi)")
    tau: float | None = Field(default=None, gt=0, description="method temperature: weight ∝ tokens^(1/tau)")
    weights: dict[str, float] | None = Field(default=None, description="method manual: {domain: weight}, normalized "
                                                                       "to sum to 1")
    doremi: str | None = Field(default=None, description="method doremi: a `train doremi` config file (relative to "
                                                          "the recipe); its corpus and out are set by the run")

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
        if self.method == "doremi" and not self.doremi:
            raise ValueError("method 'doremi' needs doremi: a `train doremi` config file (e.g. doremi.yaml)")
        if self.method != "doremi" and self.doremi is not None:
            raise ValueError(f"doremi is only used with method 'doremi' (method is {self.method!r})")
        return self

    def doremi_config(self, base: Path, corpus: Path) -> Any:
        """The `train doremi` config of method doremi (a ``train.config.DoReMiConfig``), read from ``self.doremi``
        (relative to ``base``, the recipe's directory) with ``corpus`` as its corpus and ``corpus/doremi`` as its
        out. Imports ``train`` only here. Raises ConfigError naming ``mixture.doremi`` when the file is missing or
        invalid, or the train extra (torch, transformers) is not installed."""
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in ("torch", "transformers")):
            raise ConfigError("mixture.method doremi needs the train extra: pip install -e .[train]")
        from train.config import DoReMiConfig

        assert self.doremi is not None
        path = resolve(base, self.doremi)
        if not path.is_file():
            raise ConfigError(f"mixture.doremi: {self.doremi!r} does not exist (resolved to {path})")
        data = {**load_yaml(path), "corpus": str(corpus), "out": str(corpus / "doremi")}
        return validate(DoReMiConfig, data, source=f"mixture.doremi: {path}").resolve(path.resolve().parent)


class RecipeModel(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", description="the corpus's name, in its manifest "
                      "and card")
    sources: list[Source] = Field(min_length=1, description="the input files, each set with its domain")
    steps: list[Any] = Field(default_factory=list, description="curation steps, run in order; each is {name: "
                             "{params}} or just a name (see `curate config STEP`)")
    mixture: Mixture = Mixture()
    output: Output = Field(description="where and how the corpus is written")
    executor: Executor = Executor()
    seed: int = Field(default=0, ge=0, description="decides sampling (keep_removed: sample N); the same recipe and seed "
                                             "give the same shards")


class StepSpec:
    """One validated entry of ``steps``: its registered name, its class (a ``curate.steps.Step``), its typed params
    and its position in the recipe."""

    def __init__(self, name: str, params: Any, index: int, cls: Any) -> None:
        self.name, self.params, self.index, self.cls = name, params, index, cls

    def __repr__(self) -> str:
        return f"StepSpec({self.name!r}, {self.params!r})"


class Recipe:
    """A validated recipe with resolved input files; what every executor receives."""

    partitions_given = True
    """Whether ``executor.partitions`` came from the recipe (else from :func:`default_partitions`)."""

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
        for key in RAY_ONLY:  # where tasks run does not change what they write
            data["executor"].pop(key, None)
        data["executor"]["type"] = "local"  # as hashed before the ray executor: a local run resumes on Ray
        data["executor"].pop("partitions", None)  # the output does not depend on it; a resume keeps its own count
        for source in data["sources"]:
            if source.get("url_field") is None:
                source.pop("url_field", None)  # hashed as before the option existed
        data["output"].pop("dir", None)
        data["output"].pop("card_plots", None)  # the card is a view of the corpus, not in its checksums
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


def infer_format(path: Path) -> str | None:
    """The format of ``path`` from its extension; a ``.json`` file is ``json`` when it starts with ``[`` (a JSON
    array, after any byte order mark and whitespace), else ``jsonl``."""
    name = path.name.lower()
    for suffix, fmt in sorted(_SUFFIX_FORMAT.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return "json" if suffix == ".json" and _starts_array(path) else fmt
    return None


def _starts_array(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"[")


def _expand(base: Path, source: Source, i: int, owners: dict[Any, int] | None = None) -> list[Path]:
    """The files of ``sources[i]``, sorted, each once: overlapping globs, symbolic links (loops included), hard links
    and a directory reached twice name a file once (the same device and inode, or real path). ``*`` and ``**`` skip
    hidden names, as in :func:`glob.glob`, and a glob lists files, not directories; a directory given for a ``txt``
    or ``lines`` source stands for its visible files below it.

    ``owners`` (file identity -> index of the source that reads it) is shared across the sources of a recipe and
    updated: a file an earlier source already reads stays with it, and a warning names both sources.

    Raises ConfigError naming the key when a pattern matches no file, a path does not exist, a directory is given
    for a format other than ``txt`` or ``lines``, or every file of the source is read by earlier sources.
    """
    found: dict[Any, Path] = {}
    for j, pattern in enumerate(source.patterns):
        where = f"sources[{i}].path" + (f"[{j}]" if isinstance(source.path, list) else "")
        full = resolve(base, pattern)
        if glob.has_magic(str(full)):
            matches = [m for m in _glob(full) if not m.is_dir()]
            if not matches:
                raise ConfigError(f"{where}: {pattern!r} matches no file (looked in {full.parent})")
        elif full.is_dir() and source.format in ("txt", "lines"):
            matches = [m for m in _glob_in(full, ("**", "*")) if m.is_file()]
            if not matches:
                raise ConfigError(f"{where}: directory {pattern!r} holds no file")
        elif full.is_dir():
            hint = f"{pattern.rstrip('/')}/*.{source.format or 'jsonl'}"
            fmt = f"; this one is {source.format}" if source.format else ""
            raise ConfigError(f"{where}: {pattern!r} is a directory; name its files with a glob such as {hint!r} "
                              f"(only a txt or lines source takes a directory{fmt})")
        elif full.exists():
            matches = [full]
        else:
            raise ConfigError(f"{where}: {pattern!r} does not exist (resolved to {full})")
        for m in sorted(matches):
            first = found.setdefault(_identity(m), m)
            if first != m and os.path.realpath(first) != os.path.realpath(m):
                log.warning(f"{where}: {m} is a hard link of {first} (the same file); it is read once, as {first}")
    if owners is None:
        return sorted(found.values())
    taken: dict[int, list[Path]] = {}
    for key, m in found.items():
        if owners.setdefault(key, i) != i:
            taken.setdefault(owners[key], []).append(m)
    for k, paths in sorted(taken.items()):
        names = ", ".join(str(p) for p in sorted(paths)[:3]) + (", ..." if len(paths) > 3 else "")
        if len(paths) == len(found):
            raise ConfigError(f"sources[{i}].path: every file it names is already read by sources[{k}] ({names})")
        log.warning(f"sources[{i}].path: {len(paths)} file(s) also named by sources[{k}] ({names}); each is read "
                    f"once, by sources[{k}]")
    return sorted(m for key, m in found.items() if owners[key] == i)


def _identity(path: Path) -> tuple[int, int] | str:
    """What names one file however it is reached: its device and inode (hard and symbolic links alike), or its
    real path when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return st.st_dev, st.st_ino


def _glob(pattern: Path) -> list[Path]:
    """What ``glob.glob(pattern, recursive=True)`` lists, without following a symbolic link back into a directory
    already walked (glob.glob lists a file once per way round a loop, up to the kernel's 40 links)."""
    parts = pattern.parts
    k = next(n for n, part in enumerate(parts) if glob.has_magic(part))
    return list(_glob_in(Path(*parts[:k]), parts[k:]))


def _glob_in(folder: Path, parts: tuple[str, ...]) -> Iterator[Path]:
    head, rest = parts[0], parts[1:]
    if head == "**":
        for sub in _walk_dirs(folder):
            if rest:
                yield from _glob_in(sub, rest)
            else:
                yield sub
                yield from (sub / n for n in _visible(sub, "*") if not (sub / n).is_dir())
    elif glob.has_magic(head):
        for name in _visible(folder, head):
            if not rest:
                yield folder / name
            elif (folder / name).is_dir():
                yield from _glob_in(folder / name, rest)
    elif rest:
        if (folder / head).is_dir():
            yield from _glob_in(folder / head, rest)
    elif os.path.lexists(folder / head):
        yield folder / head


def _visible(folder: Path, pattern: str) -> list[str]:
    """Names in ``folder`` matching ``pattern``, sorted; hidden names only for a pattern that starts with a dot."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern) and (pattern[0] == "." or n[0] != "."))


def _walk_dirs(top: Path) -> Iterator[Path]:
    """``top`` and every visible directory below it, symbolic links followed, each real directory once."""
    seen: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        yield folder
        stack.extend(folder / n for n in reversed(_visible(folder, "*")) if (folder / n).is_dir())


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
        specs.append(StepSpec(name, validate(cls.Params, params, prefix=("steps", i, name), source=source), i, cls))
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
    if model.executor.type == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("executor.type ray needs the ray extra: pip install mixlab[ray]")
    base = path.resolve().parent
    if model.mixture.method == "doremi":
        model.mixture.doremi_config(base, resolve(base, model.output.dir))
    steps = parse_steps(model.steps, str(path))
    files = []
    owners: dict[Any, int] = {}
    for i, source in enumerate(model.sources):
        found = _expand(base, source, i, owners)
        if source.format is None:
            formats = {infer_format(f) for f in found}
            if len(formats) != 1 or None in formats:
                raise ConfigError(f"sources[{i}].format: cannot infer the format of {found[0].name!r}; "
                                  f"set one of: {', '.join(FORMATS)}")
            try:
                source.format = formats.pop()
            except ValueError as e:  # pydantic's ValidationError: the inferred format does not fit another key
                raise ConfigError(f"sources[{i}]: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        files.append(found)
    given = model.executor.partitions is not None
    if not given:
        model.executor.partitions = default_partitions([f for fs in files for f in fs])
    recipe = Recipe(model, steps, files, base)
    recipe.partitions_given = given
    return recipe


def default_partitions(files: list[Path]) -> int:
    """Shuffle partitions for these input files, from their size (a gzip, zstd or Parquet file counted 4 times, a
    typical compression ratio of text): one per 64 MiB up to 16 (1 GiB), then one per GiB, at most 4096. A small
    input thus gets one partition (each shuffle phase a single task, no worker pool to start), 1-16 GiB as many as
    a machine or two has cores, and a reduce task of a large input holds about 0.1 GiB of MinHash keys (the largest
    shuffle, ~0.09 x the input; see the README's plan of a run on a cluster)."""
    size = sum(f.stat().st_size * (COMPRESSED_RATIO if f.name.endswith(COMPRESSED) else 1) for f in files)
    return max(1, min(16, -(-size // 2**26)), min(4096, -(-size // 2**30)))


def check_output(recipe: Recipe, root: Path) -> None:
    """Refuse, before any work, an output directory ``root`` that overlaps the inputs, naming the source key and
    the output: a source glob or ``txt``/``lines`` directory that could read what the run writes into ``root``
    (its log, shards, the directory itself), also through symbolic links, or an input file inside a path the run
    writes into and ``--fresh`` deletes.

    Raises ConfigError.
    """
    from curate.layout import Layout
    from curate.readers import READ_STEP

    out = Path(os.path.realpath(root))
    written = Layout(out).written_examples(sorted({s.domain for s in recipe.model.sources}),
                                           [READ_STEP, *(s.name for s in recipe.steps)])
    for i, source in enumerate(recipe.model.sources):
        for j, pattern in enumerate(source.patterns):
            where = f"sources[{i}].path" + (f"[{j}]" if isinstance(source.path, list) else "")
            full = resolve(recipe.base, pattern)
            if glob.has_magic(str(full)):
                k = next(n for n, part in enumerate(full.parts) if glob.has_magic(part))
                folder, parts = Path(*full.parts[:k]), full.parts[k:]
            elif full.is_dir() and source.format in ("txt", "lines"):
                folder, parts = full, ("**", "*")
            else:
                continue
            hit = _reaches(folder, parts, out, written, set())
            if hit is not None:
                what = "the directory itself" if hit == out else f"such as {hit}"
                raise ConfigError(f"{where}: {pattern!r} would read what this run writes into the output directory "
                                  f"{out} ({what}); choose an output outside the inputs or a narrower pattern")
        for f in recipe.files[i]:
            real = Path(os.path.realpath(f))
            if real == out or out not in real.parents:
                continue
            owned = real.relative_to(out).parts[0]
            if Layout.is_owned(owned):
                raise ConfigError(f"sources[{i}].path: the input {f} lies in {out / owned}, which this run writes "
                                  f"(and --fresh deletes); move it out of the output directory {out} or choose "
                                  "another output")


def _reaches(folder: Path, parts: tuple[str, ...], out: Path, written: list[Path],
             seen: set[tuple[str, tuple[str, ...]]]) -> Path | None:
    """The first of ``written`` (paths under ``out``) that the glob ``parts`` applied in ``folder`` would list, as
    :func:`_glob_in` walks it (symbolic links followed), or None."""
    real = os.path.realpath(folder)
    if (real, parts) in seen:
        return None
    seen.add((real, parts))
    if real == str(out) or Path(real) in out.parents:
        hit = next((w for w in written if _could_match(parts, w.relative_to(real).parts)), None)
        if hit is not None:
            return hit
    if not parts:
        return None
    head, rest = parts[0], parts[1:]
    if head == "**":
        if (hit := _reaches(folder, rest, out, written, seen)) is not None:
            return hit
        below = [(folder / n, parts) for n in _visible(folder, "*")]
    elif glob.has_magic(head):
        below = [(folder / n, rest) for n in _visible(folder, head)]
    else:
        below = [(folder / head, rest)]
    for sub, sub_parts in below:
        if sub.is_dir() and (hit := _reaches(sub, sub_parts, out, written, seen)) is not None:
            return hit
    return None


def _could_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether ``glob.glob(pattern, recursive=True)`` would list ``path`` if it existed: ``*`` and ``**`` skip
    hidden names unless the pattern part starts with a dot. A ``*`` part of ``path`` is any visible name."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if _could_match(rest, path):
            return True
        return bool(path) and not path[0].startswith(".") and _could_match(pattern, path[1:])
    if not path:
        return False
    name = path[0]
    if name == "*":
        fits = True
    elif glob.has_magic(head):
        fits = fnmatch.fnmatchcase(name, head) and (not name.startswith(".") or head.startswith("."))
    else:
        fits = name == head
    return fits and _could_match(rest, path[1:])
