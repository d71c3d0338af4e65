"""``minhash_dedup`` at scale: wall time, peak memory and removals at 250k and 1M documents, 2 workers.

What it measures, per corpus size: ``curate.run.run()`` of a recipe with only ``minhash_dedup`` (defaults: OPH
signatures, exact verification, threshold 0.8, keep first; ``executor.workers: 2``, 16 partitions, zstd Parquet out,
removed documents kept) in a fresh subprocess of this script (``--one``), and

* wall seconds of ``run()`` (interpreter start-up and imports excluded) and documents/s, CPU seconds of the process
  and its pool workers, and per executor phase (map: read + keys, reduce, combine, apply + write kept documents,
  write shards) its seconds and peak memory,
* peak memory of the whole process tree, sampled from /proc every 0.2 s: the sum of RSS over all its processes
  (an upper bound: pages shared by the forked workers count once per process) and the sum of PSS (shared pages split
  between the processes sharing them), the sum of anonymous memory (RSS less the file-backed pages: what is left when
  the page cache of the memory-mapped side files is not counted), and the largest single process's peak RSS
  (``ru_maxrss`` of the process and of its waited-for children, the pool workers),
* removals against the truth: expected = sum over true components of (size - 1), and precision/recall/F1 scored as
  in ``benchmarks/dedup_data.py``.

The corpus is built by construction, in chunks of 25,000 documents (one jsonl file each; a size N uses the first
N / 25,000 chunks, so the 250k corpus is a prefix of the 1M one). Base documents are made unique first: each is a
fresh document of ~1-2 KB assembled from randomly drawn real sentences (code: real lines) of ``../shared/data``
(the sources of ``dedup_data.py``: C4, dragnet, WikiText-2, Gutenberg/tinyshakespeare, Alpaca, lee_background; code
from TheAlgorithms), de-duplicated sentences of 6-60 words, 3-5 sentences to a paragraph. Two bases share 80 % of
their 5-grams only if they share ~80 % of their ~12 sentences out of a pool of ~10^5, which does not happen, so
duplicates occur only inside a family. As in ``dedup_data.py``, each base gets 1-5 seeded variants with probability
0.4 (word substitutions 1-20 %, boilerplate, truncation 90/70 %, paragraph/line shuffles), and the truth inside each
family is computed exactly (every pair, exact Jaccard of the step's 5-gram shingle strings >= 0.8, connected
components). Documents are shuffled inside their chunk, so a family's members are in one file, not adjacent.

Run (from the project root, with the project's virtualenv):

    python benchmarks/minhash_scale.py                          # 250k and 1M documents (~35 min incl. building)
    python benchmarks/minhash_scale.py --small                  # smoke run: 25k and 50k documents, not recorded
    python benchmarks/minhash_scale.py --sizes 250000           # one size
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dedup_data as dd  # noqa: E402
from contention import timed_alone, wait_for_idle  # noqa: E402
from report import (ROOT, SHARED, WORK as BENCH_WORK, command_line, git_commit, markdown,  # noqa: E402
                    print_and_record)
from source_texts import vocabulary  # noqa: E402

WORK = BENCH_WORK / "scale"
CHUNK_DOCS = 25_000
SAMPLE_EVERY = 0.2
MIB = 2**20
GIB = 2**30
RSS_TARGET = 4 * GIB
BUILDER_VERSION = 1
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_KEY = re.compile(r"[^a-z0-9]+")


# ---------------------------------------------------------------------------------------------------- pools

@dataclass
class Pools:
    sentences: list[str]
    code_lines: list[str]
    vocab: list[str]


def sentence_pool(docs: Sequence[dd.BaseDoc], min_words: int = 6, max_words: int = 60) -> list[str]:
    """Distinct sentences (by lowercase alphanumerics) of 6-60 words, in document order."""
    seen: dict[str, str] = {}
    for d in docs:
        for s in _SENTENCE.split(d.text):
            s = " ".join(s.split())
            if min_words <= s.count(" ") + 1 <= max_words:
                seen.setdefault(_KEY.sub(" ", s.lower()).strip(), s)
    return list(seen.values())


def code_line_pool(docs: Sequence[dd.BaseDoc]) -> list[str]:
    """Distinct code lines (indentation kept) of at least 3 tokens."""
    seen: dict[str, None] = {}
    for d in docs:
        for line in d.text.split("\n"):
            if len(line.split()) >= 3:
                seen.setdefault(line.rstrip(), None)
    return list(seen)


def load_pools(seed: int) -> Pools:
    named, fillers = dd.load_bases(SHARED, seed)
    prose = [d for d in named + fillers if d.source != "code"]
    return Pools(sentence_pool(prose), code_line_pool([d for d in named if d.source == "code"]),
                 vocabulary(d.text for d in named))


# ---------------------------------------------------------------------------------------------------- documents

def prose_base(rng: random.Random, pool: Sequence[str], low: int = 1_000, high: int = 2_000) -> str:
    """Random real sentences until ``low``-``high`` characters, 3-5 sentences to a paragraph."""
    target, size, paras, para = rng.randint(low, high), 0, [], []
    while size < target:
        s = rng.choice(pool)
        para.append(s)
        size += len(s) + 1
        if len(para) >= rng.randint(3, 5):
            paras.append(" ".join(para))
            para = []
    if para:
        paras.append(" ".join(para))
    return "\n\n".join(paras)


def code_base(rng: random.Random, pool: Sequence[str], low: int = 1_000, high: int = 2_000) -> str:
    target, size, lines = rng.randint(low, high), 0, []
    while size < target:
        line = rng.choice(pool)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


@dataclass
class ChunkInfo:
    index: int
    docs: int
    families: int
    variants: dict[str, int]
    expected_removals: int
    components_gt1: int
    mb: float


_POOLS: Pools | None = None


def _set_pools(p: Pools) -> None:
    global _POOLS
    _POOLS = p


def family_truth(texts: Sequence[str], sizes: Sequence[int]) -> list[int]:
    """Local component label per document for consecutive families of the given sizes (exact, every pair)."""
    labels = []
    sets = dd.shingle_sets(texts)
    start = 0
    for n in sizes:
        members = list(range(start, start + n))
        ds = dd.DisjointSet(n)
        edges, _ = dd.family_edges([sets[i] for i in members])
        for a, b in edges:
            ds.union(a, b)
        labels += [start + ds.find(i) for i in range(n)]
        start += n
    return labels


def make_chunk(args: tuple[int, int, Path]) -> ChunkInfo:
    """Chunk ``k``: families until ``CHUNK_DOCS`` documents, exact truth inside each family, shuffled, written as
    ``data/part-k.jsonl`` (``id, text``) and ``labels/part-k.jsonl`` (``id, kind, component``)."""
    k, seed, out = args
    assert _POOLS is not None
    pools = _POOLS
    rng = random.Random(f"{seed}/chunk/{k}")
    docs: list[tuple[str, str, int]] = []  # (text, kind, family)
    sizes: list[int] = []
    family = 0
    while len(docs) < CHUNK_DOCS:
        is_code = rng.random() < 0.1
        base = code_base(rng, pools.code_lines) if is_code else prose_base(rng, pools.sentences)
        members = dd.family_docs(family, dd.BaseDoc("code" if is_code else "prose", base), rng, pools.vocab)
        docs += [(d.text, d.kind, family) for d in members]
        sizes.append(len(members))
        family += 1
    labels: list[int] = []
    pos = 0
    for group in dd.batched(sizes, 1_000):
        n = sum(group)
        labels += [pos + x for x in family_truth([t for t, _, _ in docs[pos:pos + n]], group)]
        pos += n
    order = list(range(len(docs)))
    rng.shuffle(order)
    ids = {i: f"c{k:03d}-{j:06d}" for j, i in enumerate(order)}
    data, lab = out / "data" / f"part-{k:03d}.jsonl", out / "labels" / f"part-{k:03d}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    lab.parent.mkdir(parents=True, exist_ok=True)
    with open(data, "w", encoding="utf-8") as fd, open(lab, "w", encoding="utf-8") as fl:
        for i in order:
            fd.write(json.dumps({"id": ids[i], "text": docs[i][0]}, ensure_ascii=False) + "\n")
            fl.write(json.dumps({"id": ids[i], "kind": docs[i][1], "component": ids[labels[i]]}) + "\n")
    comp = Counter(labels)
    return ChunkInfo(k, len(docs), family, dict(Counter(kind for _, kind, _ in docs if kind != "base")),
                     sum(s - 1 for s in comp.values()), sum(1 for s in comp.values() if s > 1),
                     data.stat().st_size / 1e6)


def build_chunks(n_chunks: int, seed: int, workers: int = 2) -> tuple[Path, list[ChunkInfo]]:
    """Chunks 0..n_chunks-1 (reusing those built before with the same builder and seed)."""
    out = WORK / f"chunks-s{seed}"
    meta = out / "chunks.json"
    known: dict[int, ChunkInfo] = {}
    if meta.exists():
        m = json.loads(meta.read_text())
        if m.get("builder") == BUILDER_VERSION and m.get("chunk_docs") == CHUNK_DOCS:
            known = {c["index"]: ChunkInfo(**c) for c in m["chunks"]}
    todo = [k for k in range(n_chunks) if k not in known]
    if todo:
        t0 = time.perf_counter()
        print(f"building {len(todo)} chunks of {CHUNK_DOCS:,} documents ({workers} processes) ...", flush=True)
        pools = load_pools(seed)
        print(f"  pools: {len(pools.sentences):,} distinct sentences, {len(pools.code_lines):,} code lines", flush=True)
        _set_pools(pools)
        with mp.get_context("fork").Pool(workers) as pool:
            for info in pool.imap_unordered(make_chunk, [(k, seed, out) for k in todo]):
                known[info.index] = info
                meta.write_text(json.dumps({"builder": BUILDER_VERSION, "chunk_docs": CHUNK_DOCS, "seed": seed,
                                            "chunks": [asdict(known[i]) for i in sorted(known)]}, indent=1))
                print(f"  chunk {info.index}: {info.docs:,} docs, {info.mb:.0f} MB "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return out, [known[k] for k in range(n_chunks)]


# ---------------------------------------------------------------------------------------------------- memory

def _rss_pss_anon(pid: int) -> tuple[int, int, int]:
    """RSS, PSS and anonymous memory (not file-backed: not the page cache of memory-mapped files) in bytes."""
    out = {"Rss:": 0, "Pss:": 0, "Anonymous:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = line.split(maxsplit=1)[0]
                if key in out:
                    out[key] = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return out["Rss:"], out["Pss:"], out["Anonymous:"]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, anonymous memory sum) over ``pid`` and its descendants."""
    rss = pss = anon = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        r, q, a = _rss_pss_anon(p)
        rss, pss, anon = rss + r, pss + q, anon + a
        todo += _children(p)
    return rss, pss, anon


class Sampler(threading.Thread):
    """Samples the memory of a process tree every ``every`` seconds until stopped; samples are
    (epoch seconds, RSS sum, PSS sum, anonymous memory sum)."""

    def __init__(self, pid: int, every: float = SAMPLE_EVERY) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), *tree_memory(self.pid)))
            self.stop.wait(self.every)

    def peak(self, col: int, start: float = 0.0, end: float = float("inf")) -> tuple[float, int]:
        """(epoch, value) of the largest sample of column ``col`` between ``start`` and ``end``."""
        inside = [x for x in self.samples if start <= x[0] <= end] or self.samples or [(0.0, 0, 0, 0)]
        best = max(inside, key=lambda x: x[col])
        return best[0], best[col]


# ---------------------------------------------------------------------------------------------------- one run

@dataclass
class ScaleRun:
    size: int
    docs: int
    mb: float
    files: int
    workers: int
    seconds: float
    cpu_seconds: float
    peak_rss_tree: int
    peak_rss_at: float
    peak_pss_tree: int
    peak_anon_tree: int
    max_process_rss: int
    removed: int
    expected: int
    tp: int
    fp: int
    shared_machine: bool = False
    """another benchmark ran during the (last) try"""
    stats: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(seconds, tree RSS) every ~5 % of the run"""
    phases: list[dict[str, Any]] = field(default_factory=list)
    """per executor phase: name, seconds, peak tree RSS and PSS (bytes)"""
    process_wall: float = 0.0
    """wall seconds of the whole subprocess (start-up and imports included)"""


def child_run(recipe: Path, out: Path, workers: int, result: Path) -> None:
    """Inside the measured subprocess: ``run()`` the recipe, noting when each executor phase (one
    ``LocalExecutor.run``: map, reduce, combine, apply, write shards) starts and ends; then the largest peak RSS of
    this process and of its waited-for children (the pool workers) and their CPU seconds."""
    from curate.executors import local
    from curate.recipe import load_recipe
    from curate.run import run
    from mixlab import logs

    logs.setup(quiet=True)
    phases: list[tuple[str, float, float]] = []
    original = local.LocalExecutor.run

    def timed(executor: Any, desc: str, todo: list[Any]) -> None:
        t0 = time.time()
        original(executor, desc, todo)
        if todo:
            phases.append((desc, t0, time.time()))

    local.LocalExecutor.run = timed  # type: ignore[method-assign]
    loaded = load_recipe(recipe, [])
    t0 = time.time()
    run(loaded, out, workers, fresh=True)
    end = time.time()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result.write_text(json.dumps({"start": t0, "end": end, "phases": phases,
                                  "maxrss": max(me.ru_maxrss, kids.ru_maxrss) * 1024,
                                  "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}))


def write_scale_recipe(path: Path, files: list[Path], out: Path, workers: int) -> Path:
    import yaml

    spec = {"name": "minhash-scale", "seed": 1234,
            "sources": [{"path": [str(f) for f in files], "format": "jsonl", "domain": "web", "id_field": "id"}],
            "steps": [{"minhash_dedup": {"threshold": dd.THRESHOLD}}], "output": {"dir": str(out)},
            "executor": {"workers": workers}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def removed_ids(out: Path) -> set[str]:
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for f in sorted((out / "removed" / "minhash_dedup").glob("*.parquet")):
        ids.update(pq.read_table(f, columns=["id"])["id"].to_pylist())
    return ids


def truth_components(chunk_dir: Path, n_chunks: int) -> dict[str, str]:
    comp: dict[str, str] = {}
    for k in range(n_chunks):
        with open(chunk_dir / "labels" / f"part-{k:03d}.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                comp[r["id"]] = r["component"]
    return comp


def run_size(size: int, chunk_dir: Path, chunks: list[ChunkInfo], workers: int) -> ScaleRun:
    """One ``curate.run.run()`` over the first chunks in a subprocess (``--one``), its memory sampled from here."""
    files = [chunk_dir / "data" / f"part-{c.index:03d}.jsonl" for c in chunks]
    base = WORK / f"run-{size}"
    out = base / "out"
    shutil.rmtree(base, ignore_errors=True)
    recipe = write_scale_recipe(base / "recipe.yaml", files, out, workers)
    child = base / "child.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", "--recipe", str(recipe), "--out", str(out),
           "--workers", str(workers), "--result", str(child)]
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    sampler = Sampler(proc.pid)
    sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    if rc != 0:
        raise SystemExit(f"curate run failed ({rc}); see {out / 'logs' / 'run.log'}")
    u = json.loads(child.read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    stats = json.loads((out / "stats" / "minhash_dedup.json").read_text())
    s = dd.score(removed_ids(out), truth_components(chunk_dir, len(chunks)))
    at, rss = sampler.peak(1)
    step = max(1, len(sampler.samples) // 20)
    phases = [{"phase": name, "seconds": b - a, "peak_rss_tree": sampler.peak(1, a, b)[1],
               "peak_pss_tree": sampler.peak(2, a, b)[1], "peak_anon_tree": sampler.peak(3, a, b)[1]}
              for name, a, b in u["phases"]]
    shutil.rmtree(base, ignore_errors=True)
    return ScaleRun(size, manifest["accounting"]["read"], sum(c.mb for c in chunks), len(files), workers,
                    u["end"] - u["start"], u["cpu"], rss, at - u["start"], sampler.peak(2)[1], sampler.peak(3)[1], u["maxrss"],
                    next(f["removed"] for f in manifest["funnel"] if f["step"] == "minhash_dedup"),
                    s.expected, s.tp, s.fp,
                    stats={"reduce": stats.get("reduce", {}), "combine": stats.get("combine", {})},
                    timeline=[(t - u["start"], r) for t, r, _, _ in sampler.samples[::step]], phases=phases,
                    process_wall=wall)


# ---------------------------------------------------------------------------------------------------- reporting

def corpus_table(chunks: list[ChunkInfo], sizes: list[int]) -> str:
    rows = []
    for size in sizes:
        cs = chunks[: n_chunks_for(size)]
        var = Counter()
        for c in cs:
            var.update(c.variants)
        rows.append([f"{size:,}", f"{sum(c.docs for c in cs):,}", f"{sum(c.mb for c in cs):,.0f}", len(cs),
                     f"{sum(c.families for c in cs):,}", f"{sum(var.values()):,}",
                     f"{sum(c.components_gt1 for c in cs):,}", f"{sum(c.expected_removals for c in cs):,}"])
    return markdown(["size", "documents", "MB", "files", "families (unique bases)", "variants",
                     "true clusters (size > 1)", "expected removals"], rows, "-r")


def results_table(runs: list[ScaleRun]) -> str:
    rows = []
    for r in runs:
        s = dd.Score(r.removed, r.expected, r.tp, r.fp)
        comb = r.stats.get("combine", {})
        rows.append([f"{r.size:,}" + (" (shared machine)" if r.shared_machine else ""), f"{r.docs:,}",
                     f"{r.mb:,.0f}", r.workers, f"{r.seconds:,.0f}",
                     f"{r.docs / r.seconds:,.0f}", f"{r.cpu_seconds:,.0f}",
                     f"**{r.peak_rss_tree / MIB:,.0f}**", f"{r.peak_rss_at:,.0f}", f"{r.peak_pss_tree / MIB:,.0f}",
                     f"{r.peak_anon_tree / MIB:,.0f}",
                     f"{r.max_process_rss / MIB:,.0f}", f"{r.removed:,}", f"{r.expected:,}", f"{s.fp:,}",
                     f"{s.fn:,}", f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}",
                     f"{comb.get('candidate_pairs', 0):,}"])
    return markdown(["size", "docs", "MB", "workers", "wall s", "docs/s", "CPU s", "peak RSS MiB, tree sum",
                     "at s", "peak PSS MiB, tree sum", "peak anonymous MiB, tree sum", "largest process peak RSS MiB", "removed",
                     "expected (truth)", "FP", "FN", "precision", "recall", "F1", "candidate pairs"], rows, "-r")


def timeline_table(runs: list[ScaleRun]) -> str:
    parts = []
    for r in runs:
        parts.append(f"{r.size:,}: " + ", ".join(f"{t:.0f}s {rss / MIB:,.0f}" for t, rss in r.timeline))
    return "Tree RSS (MiB) over each run, every ~5 %:\n\n" + "\n\n".join(parts)


def phase_table(runs: list[ScaleRun]) -> str:
    """Seconds and peak tree RSS / PSS of every executor phase, per size."""
    names = list(dict.fromkeys(p["phase"] for r in runs for p in r.phases))
    rows = []
    for r in runs:
        by = {p["phase"]: p for p in r.phases}
        rows.append([f"{r.size:,}"] + [f"{by[n]['seconds']:,.1f} s / {by[n]['peak_rss_tree'] / MIB:,.0f} / "
                                       f"{by[n]['peak_pss_tree'] / MIB:,.0f} / {by[n]['peak_anon_tree'] / MIB:,.0f}"
                                       if n in by else "-" for n in names])
    label = {"read": "map: read + keys", "minhash_dedup": "map: apply + write kept"}
    return markdown(["size", *[f"{label.get(n, n)} (s / peak RSS / PSS / anon MiB)" for n in names]], rows, "-r")


def verdict(runs: list[ScaleRun]) -> str:
    lines = []
    for r in runs:
        lines.append(f"- {r.size:,} documents: peak RSS (tree sum) {r.peak_rss_tree / GIB:.2f} GiB — issue target "
                     f"< 4 GiB {'met' if r.peak_rss_tree < RSS_TARGET else 'NOT met'}.")
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        docs_x = b.docs / a.docs
        for label, x, y in (("tree RSS", a.peak_rss_tree, b.peak_rss_tree),
                            ("tree PSS", a.peak_pss_tree, b.peak_pss_tree),
                            ("tree anonymous memory", a.peak_anon_tree, b.peak_anon_tree),
                            ("largest process RSS", a.max_process_rss, b.max_process_rss)):
            g = y / x
            lines.append(f"- {a.size:,} -> {b.size:,} documents ({docs_x:.1f}x): {label} {x / MIB:,.0f} -> "
                         f"{y / MIB:,.0f} MiB ({g:.2f}x; {'linear or worse' if g >= 0.8 * docs_x else 'sub-linear'}"
                         f", {(y - x) / (b.docs - a.docs) * 1e6 / MIB:,.0f} MiB per extra million documents).")
    return "\n".join(lines)


def n_chunks_for(size: int) -> int:
    return max(1, round(size / CHUNK_DOCS))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="250000,1000000", help="corpus sizes in documents, multiples of 25000")
    ap.add_argument("--small", action="store_true", help="smoke run: --sizes 25000,50000 --no-record")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.small:
        a.sizes, a.no_record = "25000,50000", True
    return a


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.one:
        child_run(args.recipe, args.out, args.workers, args.result)
        return 0
    sizes = sorted(int(x) for x in args.sizes.split(","))
    command, commit = command_line("python"), git_commit()
    wait_for_idle()
    chunk_dir, chunks = build_chunks(n_chunks_for(sizes[-1]), args.seed)
    runs = []
    for size in sizes:
        print(f"curate run over {size:,} documents, {args.workers} workers ...", flush=True)
        r, shared = timed_alone(lambda: run_size(size, chunk_dir, chunks[: n_chunks_for(size)], args.workers),
                                tries=2)
        r.shared_machine = shared
        runs.append(r)
        print(f"  {r.seconds:,.0f} s, {r.docs / r.seconds:,.0f} docs/s, peak tree RSS {r.peak_rss_tree / MIB:,.0f} MiB, "
              f"removed {r.removed:,} (truth {r.expected:,})", flush=True)
    body = "\n\n".join([
        f"Corpus by construction (`{chunk_dir.relative_to(ROOT)}`, seed {args.seed}; chunks of {CHUNK_DOCS:,} "
        "documents of ~1-2 KB, unique bases of real sentences, families of variants, exact truth inside families):",
        corpus_table(chunks, sizes),
        f"`curate run` with only `minhash_dedup` (defaults, threshold {dd.THRESHOLD}), {args.workers} workers; memory "
        f"sampled every {SAMPLE_EVERY} s over the process tree; wall = `run()` inside the subprocess:",
        results_table(runs), verdict(runs), "Per executor phase (tree sums):", phase_table(runs),
        timeline_table(runs)])
    print_and_record("minhash_dedup at scale: time, peak memory, removals", command, commit, body,
                     not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
