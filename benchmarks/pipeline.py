"""Throughput and peak memory of the quickstart pipeline on a larger corpus.

What it measures, per corpus size (MB of input text) and worker count, for ``curate.run.run(...)`` with the
quickstart's steps (normalize, exact_dedup, line_dedup on web, quality on web+wiki) on the corpus that
``benchmarks/pipeline_data.py`` builds from ``../shared/data`` (real text, replicated with seeded edits):

* wall seconds of ``run()`` (recipe loading and interpreter start-up excluded, worker pool start-up included),
* documents/s, input MB/s (MB = 10^6 bytes of UTF-8 text) and MB/s per core (MB/s / workers),
* CPU seconds (user + system of the process and its pool workers),
* peak memory: the largest single process (max of ``ru_maxrss`` of the process and of its reaped children, the pool
  workers), and the peaks of RSS and of PSS summed over the whole process tree, sampled from /proc every 50 ms (the
  RSS sum counts pages shared by the forked workers once per process; PSS splits them),
* per executor phase (map, reduce and finalize waves): wall and CPU seconds and peak tree PSS,
* "other load": cores the rest of the machine kept busy during the run (from /proc/stat); well above 0, the timing
  was disturbed by other processes,
* documents removed by each step and kept,
* the cost of integrity checks: seconds spent hashing the files every task wrote (xxh3-128, recorded in each task's
  completion marker, summed over tasks) and fingerprinting the input files (``.state/inputs.json``), as a share of
  the run's wall time. With several workers the sum runs in parallel, so that share is an upper bound.

Every configuration runs in a fresh subprocess (``--one``) after ``sync`` so that peaks and writeback do not carry
over. Peak memory must not grow with corpus size, which is why two sizes are run; input files have the same size
(``--file-mb``) at every corpus size, so batches are alike and only the corpus size differs. Results are printed and
appended to ``benchmarks/RESULTS.md``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/pipeline.py                                  # 50 and 200 MB x 1 and 2 workers (~4 min)
    python benchmarks/pipeline.py --repeat 2 --profile             # what RESULTS.md holds (~10 min)
    python benchmarks/pipeline.py --sizes 5 --no-record            # smoke run
    python benchmarks/pipeline.py --sizes 5 --workers 1 --profile  # + cProfile breakdown of a workers=1 run
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import own_cpu_seconds, system_busy_seconds  # noqa: E402
from pipeline_data import CorpusInfo, build_corpus, mix_table  # noqa: E402
from report import (RESULTS, ROOT, SHARED, WORK, append_results, command_line, git_commit, header,  # noqa: E402
                    markdown)

MIB = 2**20
RSS_GROWTH_TOLERANCE = 0.15
"""peak RSS of the larger corpus more than this fraction above the smaller one's counts as growth"""


# ------------------------------------------------------------------------------------------ memory and CPU sampling

def _rss_pss(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process in bytes (PSS splits pages shared by the forked workers between them)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return rss, pss


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:  # a child belongs to the thread that forked it
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            pass
    return kids


def _cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of one live process, all its threads (Arrow's compute threads too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Sample:
    t: float
    rss: int
    pss: int
    cpu: float


def sample_tree(pid: int) -> Sample:
    """RSS and PSS (bytes) and CPU seconds summed over ``pid`` and all its live descendants."""
    rss = pss = 0
    cpu = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        r, q = _rss_pss(p)
        rss, pss, cpu = rss + r, pss + q, cpu + _cpu_seconds_of(p)
        todo.extend(_children(p))
    return Sample(time.perf_counter(), rss, pss, cpu)


class TreeSampler:
    """Samples memory and CPU time of this process tree every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        self.samples.append(sample_tree(os.getpid()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> Sample:
        inside = [x for x in self.samples if start <= x.t <= end] or self.samples
        return max(inside, key=lambda x: x.pss)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree used between two instants (to the resolution of the sampling interval)."""
        def at(t: float) -> float:
            before = [x.cpu for x in self.samples if x.t <= t]
            return before[-1] if before else self.samples[0].cpu
        return at(end) - at(start)


def max_process_rss() -> int:
    """Largest peak RSS of this process or any reaped child (bytes; Linux reports ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) * 1024


# ---------------------------------------------------------------------------------------------------- one run

@dataclass
class RunResult:
    size_mb: int
    workers: int
    docs: int
    mb: float
    seconds: float
    cpu_seconds: float
    other_cores: float
    """cores the rest of the machine kept busy on average during the run: other processes disturb the timing"""
    peak_rss_process: int
    peak_rss_tree: int
    peak_pss_tree: int
    removed: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    errored: int = 0
    phases: list[dict[str, Any]] = field(default_factory=list)
    """per executor phase: name, seconds, CPU seconds, peak tree PSS and RSS (bytes)"""
    checksum_seconds: float = 0.0
    """hashing the files tasks wrote (summed over tasks) and fingerprinting the inputs"""

    @property
    def checksum_share(self) -> float:
        return self.checksum_seconds / self.seconds

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.mb / self.seconds

    @property
    def mb_per_s_core(self) -> float:
        return self.mb_per_s / self.workers


class PhaseRecorder:
    """Records when each executor phase (``LocalExecutor.run``: one per map/reduce/finalize wave) starts and ends,
    by wrapping the method in this benchmark process only."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float, float]] = []

    def install(self) -> None:
        from curate.executors import local

        original = local.LocalExecutor.run
        phases = self.phases

        def timed(executor: Any, desc: str, todo: list[Any]) -> None:
            t0 = time.perf_counter()
            original(executor, desc, todo)
            phases.append((desc, t0, time.perf_counter()))

        local.LocalExecutor.run = timed  # type: ignore[method-assign]


def checksum_seconds(out: Path) -> float:
    """Seconds a finished run at ``out`` spent on checksums: the ``hash_seconds`` of every task's completion marker
    and the ``seconds`` of the input fingerprints."""
    total = sum(json.loads(m.read_text())["hash_seconds"] for m in (out / ".state").rglob("*.done"))
    return total + json.loads((out / ".state" / "inputs.json").read_text())["seconds"]


def run_one(recipe_path: Path, out: Path, workers: int, size_mb: int, mb: float,
            profile: Path | None = None) -> RunResult:
    """Run the pipeline once in this process (and its pool) and measure it. Called in a fresh subprocess."""
    from curate.recipe import load_recipe
    from curate.run import run
    from mixlab import logs

    logs.setup(quiet=True)
    recipe = load_recipe(recipe_path, [f"executor.workers={workers}"])
    shutil.rmtree(out, ignore_errors=True)
    recorder = PhaseRecorder()
    recorder.install()
    profiler = None
    if profile is not None:
        import cProfile
        profiler = cProfile.Profile()
    cpu0, busy0 = own_cpu_seconds(), system_busy_seconds()
    with TreeSampler() as sampler:
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        manifest = run(recipe, out, workers, fresh=True)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - t0
    cpu = own_cpu_seconds() - cpu0
    other_cores = max(0.0, system_busy_seconds() - busy0 - cpu) / seconds
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    acc = manifest["accounting"]
    phases = [{"phase": name, "seconds": b - a, "cpu_seconds": sampler.cpu_between(a, b),
               "peak_pss_tree": sampler.peak(a, b).pss,
               "peak_rss_tree": sampler.peak(a, b).rss} for name, a, b in recorder.phases]
    return RunResult(size_mb=size_mb, workers=workers, docs=acc["read"], mb=mb, seconds=seconds, cpu_seconds=cpu,
                     other_cores=other_cores,
                     peak_rss_process=max_process_rss(), peak_rss_tree=max(x.rss for x in sampler.samples),
                     peak_pss_tree=max(x.pss for x in sampler.samples),
                     removed={f["step"]: f["removed"] for f in manifest["funnel"]}, kept=acc["kept"],
                     errored=acc["errored"], phases=phases, checksum_seconds=checksum_seconds(out))


def spawn_one(info: CorpusInfo, workers: int, profile: Path | None = None) -> RunResult:
    """Run one configuration in a fresh Python process and read back its result."""
    out = WORK / f"out-{info.size_mb}mb-w{workers}"
    result = WORK / f"result-{info.size_mb}mb-w{workers}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", "--recipe", str(info.recipe), "--out", str(out),
           "--workers", str(workers), "--size-mb", str(info.size_mb), "--mb", f"{info.mb:.6f}",
           "--result", str(result)]
    if profile is not None:
        cmd += ["--profile-out", str(profile)]
    os.sync()  # flush the previous run's (or the corpus builder's) dirty pages: their writeback must not stall this run
    subprocess.run(cmd, check=True, cwd=ROOT)
    shutil.rmtree(out, ignore_errors=True)
    return RunResult(**json.loads(result.read_text()))


# ---------------------------------------------------------------------------------------------------- reporting

def best_of(runs: list[RunResult]) -> RunResult:
    """The fastest of repeated runs, with the largest memory peaks seen in any of them."""
    best = min(runs, key=lambda r: r.seconds)
    best.peak_rss_process = max(r.peak_rss_process for r in runs)
    best.peak_rss_tree = max(r.peak_rss_tree for r in runs)
    best.peak_pss_tree = max(r.peak_pss_tree for r in runs)
    return best


def results_table(results: list[RunResult]) -> str:
    steps = list(results[0].removed) if results else []
    head = ["size", "workers", "docs", "MB", "seconds", "docs/s", "MB/s", "MB/s per core", "CPU s", "other load",
            "peak RSS MiB, largest process", "peak RSS MiB, tree sum", "peak PSS MiB, tree sum",
            *[f"removed: {s}" for s in steps], "kept", "checksums s", "checksums, share of wall"]
    rows = [[f"{r.size_mb} MB", str(r.workers), f"{r.docs:,}", f"{r.mb:.1f}", f"{r.seconds:.1f}",
             f"{r.docs_per_s:,.0f}", f"{r.mb_per_s:.2f}", f"{r.mb_per_s_core:.2f}", f"{r.cpu_seconds:.0f}",
             f"{r.other_cores:.2f}",
             f"{r.peak_rss_process / MIB:,.0f}", f"{r.peak_rss_tree / MIB:,.0f}", f"{r.peak_pss_tree / MIB:,.0f}",
             *[f"{r.removed[s]:,}" for s in steps], f"{r.kept:,}", f"{r.checksum_seconds:.2f}",
             f"{r.checksum_share:.1%}"] for r in results]
    return markdown(head, rows, "r")


def phase_table(results: list[RunResult]) -> str:
    """Wall and CPU seconds and peak tree PSS of every executor phase, per run."""
    names = list(dict.fromkeys(p["phase"] for r in results for p in r.phases))
    rows = []
    for r in results:
        by = {p["phase"]: p for p in r.phases}
        rows.append([f"{r.size_mb} MB", str(r.workers)] +
                    [f"{by[n]['seconds']:.1f} / {by[n]['cpu_seconds']:.1f} / {by[n]['peak_pss_tree'] / MIB:,.0f}"
                     if n in by else "-" for n in names])
    return markdown(["size", "workers", *[f"{n}: s / CPU s / peak PSS MiB" for n in names]], rows, "r")


def rss_verdict(results: list[RunResult]) -> str:
    """One sentence per worker count: did peak memory grow from the smallest to the largest corpus?"""
    sentences = []
    for w in sorted({r.workers for r in results}):
        runs = sorted((r for r in results if r.workers == w), key=lambda r: r.size_mb)
        if len(runs) < 2:
            continue
        small, large = runs[0], runs[-1]
        pairs = (("largest process RSS", small.peak_rss_process, large.peak_rss_process),
                 ("tree PSS", small.peak_pss_tree, large.peak_pss_tree))
        grew = any(b > a * (1 + RSS_GROWTH_TOLERANCE) for _, a, b in pairs)
        detail = "; ".join(f"{label} {a / MIB:,.0f} -> {b / MIB:,.0f} MiB ({(b - a) / a:+.0%})"
                           for label, a, b in pairs)
        sentences.append(f"workers={w}, {small.size_mb} MB -> {large.size_mb} MB ({large.mb / small.mb:.1f}x the "
                         f"text): peak memory {'GREW' if grew else 'did not grow'} with corpus size (tolerance "
                         f"{RSS_GROWTH_TOLERANCE:.0%}): {detail}.")
    return "\n".join(sentences) if sentences else "Only one corpus size was run: no statement on memory growth."


CHECKSUM_BUDGET = 0.05
"""the most of a run's wall time that integrity checksums may cost"""


def checksum_verdict(results: list[RunResult]) -> str:
    """One sentence: the largest share of wall time spent on checksums, against the budget."""
    worst = max(results, key=lambda r: r.checksum_share)
    ok = worst.checksum_share <= CHECKSUM_BUDGET
    return (f"Checksums (xxh3-128 of every file tasks wrote, and input fingerprints) cost at most "
            f"{worst.checksum_share:.1%} of a run's wall time ({worst.checksum_seconds:.2f} s of {worst.seconds:.1f} s, "
            f"{worst.size_mb} MB, workers={worst.workers}; summed over tasks, so an upper bound with several workers): "
            f"{'within' if ok else 'OVER'} the {CHECKSUM_BUDGET:.0%} budget.")


PHASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("map tasks (read, steps, write; tasks.run_map)", [("curate/tasks.py", "run_map")]),
    ("reduce tasks (tasks.run_reduce)", [("curate/tasks.py", "run_reduce")]),
    ("finalize: shards of kept docs (tasks.run_finalize_domain)", [("curate/tasks.py", "run_finalize_domain")]),
    ("finalize: removed docs and errors (tasks.run_finalize_side)", [("curate/tasks.py", "run_finalize_side")]),
    ("manifest, stats, card (run._write_outputs)", [("curate/run.py", "_write_outputs")]),
]
"""Top level of ``run()``; the rest is set-up, first imports, worker pool and cleanup of work files."""

MAP_PARTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("read + parse input (readers.read_unit)", [("curate/readers.py", "read_unit")]),
    ("normalize", [("steps/normalize.py", "annotate"), ("steps/normalize.py", "decide")]),
    ("exact_dedup keys", [("steps/exact_dedup.py", "keys")]),
    ("exact_dedup apply", [("steps/exact_dedup.py", "apply")]),
    ("line_dedup keys", [("steps/line_dedup.py", "keys")]),
    ("line_dedup apply", [("steps/line_dedup.py", "apply")]),
    ("quality (annotate + decide)", [("steps/quality.py", "annotate"), ("steps/quality.py", "decide")]),
    ("step plumbing (domain split/merge, histograms)",
     [("curate/tasks.py", "_split_by_domain"), ("curate/tasks.py", "_merge_back"), ("curate/tasks.py", "add_hist")]),
    ("removed-docs sink (id hashes + parquet)", [("curate/tasks.py", "add"), ("curate/tasks.py", "close")]),
]
"""Inside map tasks; the rest is writing kept documents and shuffle spills, stats and markers."""


def _cumtime(stats: pstats.Stats, where: str, func: str) -> float:
    return sum(v[3] for (fname, _, name), v in stats.stats.items()  # type: ignore[attr-defined]
               if name == func and fname.endswith(where))


def _group_rows(stats: pstats.Stats, groups: list[tuple[str, list[tuple[str, str]]]], total: float,
                run_total: float, rest: str) -> list[str]:
    rows, covered = [], 0.0
    for label, funcs in groups:
        t = sum(_cumtime(stats, where, func) for where, func in funcs)
        covered += t
        rows.append(f"| {label} | {t:.2f} | {t / run_total:.0%} |")
    rows.append(f"| {rest} | {total - covered:.2f} | {(total - covered) / run_total:.0%} |")
    return rows


def profile_breakdown(path: Path, top: int = 15) -> str:
    """Share of the profiled run's time per phase and, inside map tasks, per step; then the hottest functions."""
    stats = pstats.Stats(str(path))
    total = _cumtime(stats, "curate/run.py", "run")
    maps = _cumtime(stats, "curate/tasks.py", "run_map")
    rows = ["| part | seconds | share of run() |", "|---|--:|--:|"]
    rows += _group_rows(stats, PHASES, total, total, "other: set-up, first imports, pool, cleanup")
    rows.append(f"| **run() total** | {total:.2f} | 100% |")
    rows += ["", "Inside map tasks:", "", "| part | seconds | share of run() |", "|---|--:|--:|"]
    rows += _group_rows(stats, MAP_PARTS, maps, total,
                        "other: re-read previous segment, write kept docs and shuffle spills (parquet), task stats, markers")
    own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    rows += ["", f"Top {top} functions by own time:", "", "| function | calls | own s | cum s |", "|---|--:|--:|--:|"]
    for (fname, line, name), (_, ncalls, tt, ct, _) in own:
        short = "/".join(Path(fname).parts[-2:]) if fname.startswith("/") else fname
        rows.append(f"| `{short}:{line} {name}` | {ncalls:,} | {tt:.2f} | {ct:.2f} |")
    return "\n".join(rows)


def results_entry(command: str, commit: str, corpora: list[CorpusInfo], results: list[RunResult], repeat: int,
                  profile: str | None) -> str:
    parts = [*header("pipeline throughput and peak memory", command, commit),
             f"- each configuration in a fresh process, best wall time of {repeat}, memory peaks the largest seen", ""]
    for info in corpora:
        parts += [f"Corpus {info.size_mb} MB (`{info.dir.relative_to(ROOT)}`, seed {info.seed}):", "",
                  mix_table(info), ""]
    parts += [results_table(results), "", rss_verdict(results), "", checksum_verdict(results), "",
              "Per executor phase:", "", phase_table(results), ""]
    if profile:
        parts += [f"cProfile of a workers=1 run of {corpora[0].size_mb} MB (profiler overhead included):", "",
                  profile, ""]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------- main

def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_int_list, default=[50, 200], help="corpus sizes in MB of text (default 50,200)")
    ap.add_argument("--workers", type=_int_list, default=[1, 2], help="worker counts (default 1,2)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--file-mb", type=int, default=8,
                    help="MB of text per input file, the same at every size so that batches are alike (default 8)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration; the fastest is reported")
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile a workers=1 run of the smallest size and print the breakdown")
    ap.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.relative_to(ROOT)}")
    one = ap.add_argument_group("internal: one measured run (what the driver starts in a subprocess)")
    one.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    one.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    one.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    one.add_argument("--size-mb", type=int, help=argparse.SUPPRESS)
    one.add_argument("--mb", type=float, help=argparse.SUPPRESS)
    one.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    one.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main_one(a: argparse.Namespace) -> None:
    r = run_one(a.recipe, a.out, a.workers[0], a.size_mb, a.mb, a.profile_out)
    a.result.write_text(json.dumps(asdict(r)))


def measure(info: CorpusInfo, workers: int, repeat: int) -> RunResult:
    runs = []
    for i in range(repeat):
        r = spawn_one(info, workers)
        print(f"  size {info.size_mb} MB, workers {workers}, run {i + 1}/{repeat}: {r.seconds:.1f} s "
              f"({r.cpu_seconds:.0f} CPU s, other load {r.other_cores:.2f}), {r.mb_per_s:.2f} MB/s, peak RSS {r.peak_rss_process / MIB:.0f} MiB "
              f"(tree PSS {r.peak_pss_tree / MIB:.0f} MiB), checksums {r.checksum_seconds:.2f} s "
              f"({r.checksum_share:.1%} of wall)", flush=True)
        runs.append(r)
    return best_of(runs)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.one:
        return main_one(a)
    command = command_line("python")
    commit = git_commit()
    WORK.mkdir(parents=True, exist_ok=True)
    corpora, results = [], []
    for size in a.sizes:
        t0 = time.perf_counter()
        info = build_corpus(WORK, a.shared, size, a.seed, file_mb=a.file_mb)
        print(f"\ncorpus {size} MB ready in {time.perf_counter() - t0:.0f} s: {info.dir}\n{mix_table(info)}\n",
              flush=True)
        corpora.append(info)
        results += [measure(info, w, a.repeat) for w in a.workers]
    profile = None
    if a.profile:
        prof = WORK / f"profile-{corpora[0].size_mb}mb-w1.prof"
        spawn_one(corpora[0], 1, profile=prof)
        profile = profile_breakdown(prof)
    print(f"\n{results_table(results)}\n\n{rss_verdict(results)}\n\n{checksum_verdict(results)}\n\n"
          f"{phase_table(results)}\n")
    if profile:
        print(f"cProfile of a workers=1 run of {corpora[0].size_mb} MB:\n\n{profile}\n")
    if not a.no_record:
        append_results(results_entry(command, commit, corpora, results, a.repeat, profile))
        print(f"appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
