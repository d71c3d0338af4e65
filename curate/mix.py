"""`curate mix`: a corpus's weighted mixture written out as one shuffled Parquet dataset, for trainers other than
mixlab's (Megatron, LLaMA-Factory, torchtune, anything that reads `datasets.load_dataset("parquet")`).

Domain ``d`` of weight ``w_d`` (normalized) contributes ``w_d x N`` tokens: its documents are taken in a seeded
permutation, epoch after epoch (a new permutation per epoch), until their tokens reach the share, so a domain
overshoots its share by less than its last document. A domain is repeated up to ``max_repetition`` epochs (as
``train pretrain``'s ``data.max_repetition``); a share beyond that is refused before anything is written, with a
table of tokens needed and available. The chosen documents are then shuffled globally by a seeded permutation and
written as ``OUT/data/part-NNNNN.parquet`` (same corpus, weights, tokens and seed => byte-identical files), with
``OUT/manifest.json`` and ``OUT/card.md``.

Memory holds a few numbers per document, one corpus shard and one spill partition: the documents used are
scattered by their output position into at most :data:`SPILL_PARTITIONS` Arrow IPC files under ``OUT/.work``
(deleted at the end), then each partition is sorted and cut into output shards.
"""

from __future__ import annotations

import json
import math
import platform
import re
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.arrow_io import AtomicIPCWriter, AtomicWriter, read_ipc, sha256_file
from curate.integrity import read_manifest
from curate.layout import OutputLock, write_json_atomic, write_text_atomic
from curate.tokens import METHOD as TOKEN_ESTIMATE
from curate.tokens import document_estimates
from mixlab import __version__
from mixlab.errors import ConfigError, RunError, storage_problem
from mixlab.logs import log
from train.config import mixture_file_weights
from train.corpus import Corpus, Shard

KIND = "curate mix"
"""``manifest.json["kind"]`` of a mix output: how a later `curate mix` recognizes a directory it may replace"""

SPILL_PARTITIONS = 64
_POSITION = "__position"
_FIRST_COLUMNS = ("id", "text", "domain", "epoch")
_SHARD = re.compile(r"part-\d{5,}\.parquet")
_TEMPORARY = re.compile(r"\.(.+)\.tmp\d+")


@dataclass(frozen=True)
class Counting:
    """How tokens are counted: the corpus's bytes-per-token estimate, or a tokenizer's exact ids."""

    method: str
    tokenizer: Path | None = None

    def describe(self) -> dict[str, Any]:
        if self.method == "estimate":
            return {"method": "estimate", "note": f"{TOKEN_ESTIMATE}, as the corpus's manifest and mixture.json count"}
        from train.tokenizer import tokenizer_hash

        assert self.tokenizer is not None
        return {"method": "tokenizer", "tokenizer": str(self.tokenizer), "tokenizer_hash":
                tokenizer_hash(self.tokenizer), "note": "ids of the text, without BOS/EOS or other special tokens"}


@dataclass
class DomainDraw:
    """The documents one domain contributes: global document indices (into the domain's shards, in order) and the
    epoch of each use."""

    weight: float
    tokens_needed: float
    tokens_available: float
    docs_available: int
    docs: np.ndarray
    epochs: np.ndarray
    tokens_written: float

    @property
    def repetition(self) -> float:
        return self.tokens_written / self.tokens_available if self.tokens_available else 0.0


def parse_count(text: str, name: str) -> int:
    """A positive whole count from the command line (``1000000``, ``1_000_000`` or ``1e6``); ConfigError naming
    ``name`` otherwise."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or value <= 0:
        raise ConfigError(f"{name}: {text!r} must be a positive whole number")
    return int(value)


def load_weights(path: Path, domains: list[str]) -> dict[str, float]:
    """Normalized weights (sum 1) for ``domains`` from a JSON file: any ``mixture.json`` (its ``weights`` object) or
    a plain ``{domain: weight}`` object. Domains the file leaves out get 0. Raises ConfigError naming the file for
    a missing or unreadable file, a domain not in ``domains``, a negative or non-finite weight, or no positive
    weight."""
    weights = mixture_file_weights(path, "--weights")
    unknown = sorted(set(weights) - set(domains))
    if unknown:
        raise ConfigError(f"--weights: {path}: domain {unknown[0]!r} is not in the corpus "
                          f"(its domains: {', '.join(domains)})")
    total = float(sum(weights.values()))
    return {d: float(weights.get(d, 0.0)) / total for d in sorted(domains)}


def document_tokens(corpus: Corpus, shards: list[Shard], counting: Counting, tokenizer: Any = None) -> np.ndarray:
    """Tokens of every document of ``shards`` in order (float64: an estimate is fractional), after checking each
    shard's sha256 against the manifest (RunError naming a damaged shard)."""
    out: list[np.ndarray] = []
    for shard in shards:
        for batch in corpus.batches(shard, columns=("text",)):
            if counting.method == "estimate":
                out.append(document_estimates(batch.column(0)))
            else:
                ids = tokenizer(batch.column(0).to_pylist(), add_special_tokens=False)["input_ids"]
                out.append(np.fromiter((len(x) for x in ids), dtype=np.float64, count=len(ids)))
    return np.concatenate(out) if out else np.zeros(0, np.float64)


def draw(domain: str, tokens: np.ndarray, weight: float, total_tokens: int, seed: int) -> DomainDraw:
    """Documents of one domain for ``weight x total_tokens`` tokens: seeded permutations of its documents
    (``tokens``: tokens per document), epoch after epoch, cut at the first document that reaches the share, so the
    domain overshoots it by less than one document. Does not check repetition (see :func:`check_repetition`)."""
    need = weight * total_tokens
    available = float(tokens.sum())
    docs: list[np.ndarray] = []
    epochs: list[np.ndarray] = []
    taken = 0.0
    epoch = 0
    while need > 0 and available > 0 and taken < need:
        perm = np.random.default_rng([seed, zlib.crc32(domain.encode()), epoch]).permutation(len(tokens))
        cum = np.cumsum(tokens[perm])
        if taken + cum[-1] < need:
            use = perm
        else:
            use = perm[:int(np.searchsorted(cum, need - taken, side="left")) + 1]
        docs.append(use)
        epochs.append(np.full(len(use), epoch, np.int32))
        taken += float(tokens[use].sum())
        epoch += 1
    return DomainDraw(weight, need, available, len(tokens),
                      np.concatenate(docs) if docs else np.zeros(0, np.int64),
                      np.concatenate(epochs) if epochs else np.zeros(0, np.int32), taken)


def repetition_table(draws: dict[str, DomainDraw], highlight: frozenset[str] | set[str] = frozenset()) -> str:
    """Tokens needed vs available per domain, in the layout of `train.sampler.MixtureSampler.table`."""
    rows = [f"{'domain':<16}{'weight':>8}{'tokens needed':>16}{'available':>14}{'epochs':>8}"]
    for d, x in sorted(draws.items()):
        epochs = x.tokens_needed / x.tokens_available if x.tokens_available else float("inf")
        mark = "  <- too small" if d in highlight else ""
        rows.append(f"{d:<16}{x.weight:>8.3f}{round(x.tokens_needed):>16,}{round(x.tokens_available):>14,}"
                    f"{epochs:>8.2f}{mark}")
    return "\n".join(rows)


def check_repetition(draws: dict[str, DomainDraw], max_repetition: float) -> None:
    """ConfigError with the needed/available table when a domain's share needs more than ``max_repetition``
    epochs of its tokens (or the domain has none)."""
    short = {d for d, x in draws.items() if x.tokens_needed > max_repetition * x.tokens_available}
    if short:
        raise ConfigError(f"the mixture cannot be drawn under --max-repetition {max_repetition:g} "
                          f"(lower --tokens or the weights of the marked domains, or raise --max-repetition):\n"
                          + repetition_table(draws, short))


def check_output(out: Path, corpus_root: Path) -> bool:
    """Whether ``out`` holds an earlier `curate mix` output (to be replaced); False when it is absent or empty.
    Raises ConfigError for a path that is a file, overlaps the corpus, holds files but no mix output, or holds a
    file mix does not write inside ``data/`` (it would be loaded with the dataset)."""
    a, b = out.resolve(), corpus_root.resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise ConfigError(f"--out: {out} overlaps the corpus {corpus_root}; choose a directory outside it")
    if not out.exists():
        return False
    if not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    entries = sorted(p.name for p in out.iterdir() if p.name != OutputLock(out).path.name)
    if not entries:
        return False
    if not is_mix_output(out):
        raise ConfigError(f"--out: {out} is not empty ({entries[0]}) and holds no `curate mix` output "
                          "(manifest.json of kind 'curate mix'); refusing to write into it")
    data = out / "data"
    if data.is_symlink() or (data.exists() and not data.is_dir()):
        raise ConfigError(f"--out: {data} is not a folder mix wrote; move it away")
    for p in sorted(data.iterdir()) if data.is_dir() else []:
        if not _is_written_shard(p):
            raise ConfigError(f"--out: {p} was not written by `curate mix` and would be loaded with the dataset; "
                              "move it away")
    return True


def is_mix_output(out: Path) -> bool:
    """Whether ``out`` holds a `curate mix` output (complete or not), recognized by its manifest's ``kind``."""
    try:
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(m, dict) and m.get("kind") == KIND


def read_mix_manifest(out: Path) -> dict[str, Any]:
    """The manifest of a complete mix output in ``out``. Raises RunError when the mix was never finished (its
    manifest still says incomplete) or the manifest lacks the keys a complete one has."""
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if m.get("status") != "complete":
        raise RunError(f"{out}: an unfinished `curate mix` output ({m.get('status')}); run `curate mix` again")
    missing = [k for k in ("source", "seed", "created_at", "domains", "files", "counting") if k not in m]
    if missing:
        raise RunError(f"{out / 'manifest.json'}: damaged (missing key {missing[0]!r})")
    return m


def verify(out: Path, m: dict[str, Any]) -> list[str]:
    """The files of mix manifest ``m`` that are missing in ``out`` or whose sha256 differs from the manifest's."""
    problems = []
    for f in m["files"]:
        path = out / f["path"]
        if not path.is_file():
            problems.append(f"{f['path']}: missing")
        elif sha256_file(path) != f["sha256"]:
            problems.append(f"{f['path']}: sha256 differs from the manifest")
    return problems


def _is_written_shard(p: Path) -> bool:
    t = _TEMPORARY.fullmatch(p.name)
    return p.is_file() and not p.is_symlink() and _SHARD.fullmatch(t.group(1) if t else p.name) is not None


def mix(corpus_dir: Path, weights_path: Path, tokens: int, out: Path, seed: int = 0, max_repetition: float = 4.0,
        tokenizer: Path | None = None, shard_docs: int = 50_000) -> dict[str, Any]:
    """Write the mixture of ``corpus_dir`` that ``weights_path`` gives, ``tokens`` tokens in all, into ``out``;
    return its manifest.

    Tokens are counted by the corpus's bytes-per-token estimate, or exactly by the tokenizer directory
    ``tokenizer`` (loaded with `train.tokenizer.load_tokenizer`, which needs the train extra). Each domain gets
    ``weight x tokens`` and overshoots by less than one document. ``out`` must be absent, empty or an earlier mix
    output, which is replaced (files mix did not write there are kept). Raises ConfigError (nothing written) for a
    missing corpus, bad weights or arguments, an unusable ``out`` or a share over ``max_repetition`` epochs;
    RunError for a damaged corpus manifest or a corpus shard that differs from its manifest's sha256.
    """
    if tokens <= 0:
        raise ConfigError(f"--tokens: {tokens} must be positive")
    if not math.isfinite(max_repetition) or max_repetition <= 0:
        raise ConfigError(f"--max-repetition: {max_repetition} must be a positive number")
    if shard_docs < 1:
        raise ConfigError(f"--shard-docs: {shard_docs} must be at least 1")
    if seed < 0:
        raise ConfigError(f"--seed: {seed} must be >= 0")
    corpus = Corpus(corpus_dir)
    if corpus.manifest.get("kind") == KIND:
        raise ConfigError(f"{corpus_dir}: a `curate mix` output, not a corpus built by `curate run`")
    read_manifest(corpus.root / "manifest.json")
    weights = load_weights(weights_path, sorted(corpus.manifest["domains"]))
    check_output(out, corpus.root)
    counting = Counting("estimate")
    tok = None
    if tokenizer is not None:
        from train.tokenizer import load_tokenizer

        try:
            tok = load_tokenizer(tokenizer, key="--tokenizer")
        except ImportError as e:
            raise ConfigError(f"--tokenizer needs transformers, from the train extra (pip install 'mixlab[train]'): "
                              f"{e}") from None
        counting = Counting("tokenizer", tokenizer=Path(tokenizer).resolve())
    active = [d for d in sorted(weights) if weights[d] > 0]
    shards = {d: corpus.shards(d) for d in active}
    draws: dict[str, DomainDraw] = {}
    for d in active:
        log.info(f"counting tokens of {d} ({counting.method})")
        draws[d] = draw(d, document_tokens(corpus, shards[d], counting, tok), weights[d], tokens, seed)
    check_repetition(draws, max_repetition)
    try:
        with OutputLock(out):
            replacing = check_output(out, corpus.root)
            return _write(corpus, weights_path, weights, tokens, out, seed, max_repetition, counting, shard_docs,
                          shards, draws, replacing)
    except OSError as e:
        if (problem := storage_problem(e)) is None:
            raise
        raise ConfigError(f"--out: cannot write {out}: {problem}") from None


def _write(corpus: Corpus, weights_path: Path, weights: dict[str, float], tokens: int, out: Path, seed: int,
           max_repetition: float, counting: Counting, shard_docs: int, shards: dict[str, list[Shard]],
           draws: dict[str, DomainDraw], replacing: bool) -> dict[str, Any]:
    if replacing:
        log.info(f"{out}: replacing the earlier `curate mix` output")
    write_json_atomic(out / "manifest.json", {"kind": KIND, "status": "incomplete: being written by curate mix"})
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    flat = [s for d in sorted(shards) for s in shards[d]]
    source, row, epoch = _uses(shards, draws)
    position = np.random.default_rng([seed, 0x4D1C]).permutation(len(source))
    n_out = max(1, math.ceil(len(source) / shard_docs))
    per_part = math.ceil(n_out / min(n_out, SPILL_PARTITIONS))
    schema = _schema(flat)
    parts = _scatter(corpus, flat, source, row, epoch, position, position // shard_docs // per_part, schema, work)
    files = []
    for p in range(math.ceil(n_out / per_part)):
        part = read_ipc(parts[p]).sort_by(_POSITION)
        pos = part.column(_POSITION).to_numpy()
        for k in range(p * per_part, min(n_out, (p + 1) * per_part)):
            lo, hi = np.searchsorted(pos, k * shard_docs), np.searchsorted(pos, (k + 1) * shard_docs)
            w = AtomicWriter(out / "data" / f"part-{k:05d}.parquet", schema)
            w.write(part.slice(lo, hi - lo).drop_columns([_POSITION]))
            w.close()
            files.append({"path": f"data/{w.path.name}", "docs": int(hi - lo), "bytes": w.path.stat().st_size,
                          "sha256": sha256_file(w.path)})
    written = {f["path"] for f in files}
    for stale in sorted((out / "data").iterdir()):
        if _is_written_shard(stale) and f"data/{stale.name}" not in written:
            stale.unlink()
    shutil.rmtree(work, ignore_errors=True)

    manifest = _manifest(corpus, weights_path, weights, tokens, seed, max_repetition, counting, shard_docs,
                         draws, schema, files)
    write_text_atomic(out / "card.md", render_card(manifest))
    write_json_atomic(out / "manifest.json", manifest)
    kept = sorted(p.name for p in out.iterdir() if p.name not in ("data", "card.md", "manifest.json", ".lock"))
    if kept:
        log.info(f"{out}: kept {len(kept)} path(s) that curate mix did not write: {', '.join(kept[:5])}")
    return manifest


def _uses(shards: dict[str, list[Shard]], draws: dict[str, DomainDraw]) -> tuple[np.ndarray, ...]:
    """Every use of a document as (index into the shards of all domains in order, row in its shard, epoch)."""
    source, row, epoch = [], [], []
    base = 0
    for d in sorted(shards):
        starts = np.cumsum([0] + [s.docs for s in shards[d]])
        which = np.searchsorted(starts, draws[d].docs, side="right") - 1
        source.append(which + base)
        row.append(draws[d].docs - starts[which])
        epoch.append(draws[d].epochs)
        base += len(shards[d])
    return np.concatenate(source), np.concatenate(row), np.concatenate(epoch)


def _scatter(corpus: Corpus, flat: list[Shard], source: np.ndarray, row: np.ndarray, epoch: np.ndarray,
             position: np.ndarray, part_of: np.ndarray, schema: pa.Schema, work: Path) -> dict[int, Path]:
    """Read each corpus shard once and append its used rows (with ``epoch`` and their output position) to the
    Arrow IPC file of their spill partition; return partition -> file."""
    spill_schema = schema.append(pa.field(_POSITION, pa.int64()))
    writers: dict[int, AtomicIPCWriter] = {}
    for i, shard in enumerate(flat):
        mine = np.flatnonzero(source == i)
        if not len(mine):
            continue
        present = set(pq.read_schema(shard.path).names) - {"epoch"}
        table = pa.Table.from_batches(list(corpus.batches(shard, columns=tuple(c for c in schema.names
                                                                               if c in present))))
        picked = table.take(pa.array(row[mine])).append_column("epoch", pa.array(epoch[mine]))
        for f in schema:
            if f.name not in picked.column_names:
                picked = picked.append_column(f, pa.nulls(picked.num_rows, f.type))
        picked = picked.append_column(_POSITION, pa.array(position[mine], pa.int64()))
        order = np.argsort(part_of[mine], kind="stable")
        picked, parts = picked.take(pa.array(order)), part_of[mine][order]
        for p in map(int, np.unique(parts)):
            lo, hi = np.searchsorted(parts, p, "left"), np.searchsorted(parts, p, "right")
            if p not in writers:
                writers[p] = AtomicIPCWriter(work / f"p{p:04d}.arrow", spill_schema)
            writers[p].write(picked.slice(lo, hi - lo))
        log.info(f"read {shard.path.relative_to(corpus.root)}: {len(mine):,} uses")
    for w in writers.values():
        w.close()
    return {p: w.path for p, w in writers.items()}


def _schema(shards: list[Shard]) -> pa.Schema:
    """``id, text, domain, epoch``, then every other column that all ``shards`` have with one type."""
    schemas = [pq.read_schema(s.path) for s in shards]
    common = [f for f in schemas[0] if all(s.get_field_index(f.name) >= 0 and s.field(f.name).type == f.type
                                          for s in schemas[1:])]
    by_name = {f.name: f for f in common}
    first = [by_name[c] if c in by_name else pa.field(c, pa.int32() if c == "epoch" else pa.string())
             for c in _FIRST_COLUMNS]
    return pa.schema([*first, *(f for f in common if f.name not in _FIRST_COLUMNS)])


def _manifest(corpus: Corpus, weights_path: Path, weights: dict[str, float], tokens: int, seed: int,
              max_repetition: float, counting: Counting, shard_docs: int, draws: dict[str, DomainDraw],
              schema: pa.Schema, files: list[dict[str, Any]]) -> dict[str, Any]:
    domains = {}
    for d, w in weights.items():
        x = draws.get(d)
        domains[d] = {"weight": w, "tokens_requested": round(w * tokens),
                      "tokens_written": round(x.tokens_written) if x else 0,
                      "docs_written": len(x.docs) if x else 0,
                      "unique_docs": len(np.unique(x.docs)) if x else 0,
                      "epochs_started": int(x.epochs.max()) + 1 if x and len(x.epochs) else 0,
                      "repetition": round(x.repetition, 4) if x else 0.0,
                      "tokens_available": round(x.tokens_available) if x else None,
                      "docs_available": x.docs_available if x else None}
    import numpy
    import pyarrow

    return {
        "kind": KIND, "status": "complete",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tool_versions": {"mixlab": __version__, "python": platform.python_version(),
                          "pyarrow": pyarrow.__version__, "numpy": numpy.__version__},
        "source": {"corpus": str(corpus.root.resolve()), "name": corpus.name,
                   "corpus_sha256": corpus.manifest.get("corpus_sha256")},
        "weights_file": str(Path(weights_path).resolve()), "weights": weights,
        "seed": seed, "max_repetition": max_repetition, "tokens_requested": tokens,
        "tokens_written": sum(v["tokens_written"] for v in domains.values()),
        "docs_written": sum(f["docs"] for f in files),
        "counting": counting.describe(), "shard_docs": shard_docs,
        "columns": schema.names, "domains": domains, "files": files,
    }


def render_card(m: dict[str, Any]) -> str:
    """The data card of a mix output, from its manifest alone."""
    c = m["counting"]
    how = (f"estimated ({c['note']})"
           if c["method"] == "estimate" else f"counted exactly with the tokenizer `{c['tokenizer']}` (no special "
                                             "tokens)")
    out = [f"# Mixture: {m['source']['name']}, {m['tokens_requested']:,} tokens", "",
           f"Written by `curate mix` (mixlab {m['tool_versions']['mixlab']}) on {m['created_at']} from the corpus "
           f"`{m['source']['corpus']}` (corpus hash `{str(m['source']['corpus_sha256'])[:16]}`) with the weights of "
           f"`{m['weights_file']}`, seed {m['seed']}, at most {m['max_repetition']:g} epochs per domain.", "",
           f"Tokens are {how}. Each domain contributes weight x {m['tokens_requested']:,} tokens of whole "
           "documents, in a seeded permutation per epoch, and overshoots by less than one document; the documents "
           "are shuffled globally.", "",
           "| domain | weight | tokens asked | tokens written | documents | unique documents | repetition |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for d, v in m["domains"].items():
        out.append(f"| {d} | {v['weight']:.4f} | {v['tokens_requested']:,} | {v['tokens_written']:,} | "
                   f"{v['docs_written']:,} | {v['unique_docs']:,} | {v['repetition']:.2f} |")
    out += ["", f"{m['docs_written']:,} documents, {m['tokens_written']:,} tokens in {len(m['files'])} files "
            "`data/part-*.parquet` (zstd), columns: " + ", ".join(f"`{c}`" for c in m["columns"]) + ". `epoch` is 0 "
            "for a document's first use in the mixture, 1 for its second, and so on.", "",
            "```python", "import datasets",
            'ds = datasets.load_dataset("parquet", data_files="data/*.parquet", split="train")', "```", ""]
    return "\n".join(out)
