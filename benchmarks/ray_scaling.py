"""The pipeline on the Ray executor with 1 and 2 workers against the local executor, on the same corpus; and the bytes
a run moves through its output directory, which is what crosses the network when OUT is on a shared filesystem.

Corpus: ``benchmarks/pipeline_data.py``'s (real web, wiki, book and code text replicated with seeded edits, zstd
JSONL files of ``--file-mb``), through normalize, exact_dedup, line_dedup (web), quality (web, wiki) and
minhash_dedup, 16 partitions. Configurations: ``local`` (a process pool) and ``ray`` (a Ray instance started on
this machine with as many CPUs as workers, one per task), each with 1 and 2 workers.

Measured per configuration, each in its own subprocess, all of them inside one loopback-only network namespace
(``unshare --net``; Ray must not talk over the machine's network here):

* start-up: seconds of the executor's ``__enter__`` inside ``curate.run.run`` (Ray: starting the instance; local:
  nothing, the pool starts with the first phase of more than one task),
* wall seconds of ``run()`` and documents read per second, with and without the start-up,
* the seconds of every phase (map, reduce, combine, write shards) and their task counts,
* overhead per task: after the run, a fresh executor runs a phase of ``workers`` no-op tasks (warming the worker
  processes), then a phase of ``--noop-tasks``; overhead = wall of that phase x workers / tasks, i.e. what
  scheduling one task costs a worker slot,
* the shard hashes, which must equal the local executor's.

Bytes through OUT (from a ``--keep-work`` run of ``local-2``): every file the phases write under ``OUT/.work`` and
the outputs, and what is read back, per GB of input text: segment outputs, shuffle spills, final, removed and error
files are read once; a global step's decisions by each map task of the next segment; MinHash's side files (shingle
sets, for verification) are memory-mapped: the reduce tasks read the sets of their candidate pairs, the combine the
id, length and position columns, counted once, with (partitions + 1) times their size as the upper bound.

Run (from the project root, as root, with the project's virtualenv and the ray extra):

    python benchmarks/ray_scaling.py                   # 24 MB, 200 no-op tasks (~5 min on 2 cores)
    python benchmarks/ray_scaling.py --repeat 3        # each configuration's fastest of 3 runs
    python benchmarks/ray_scaling.py --size-mb 4 --no-record
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import other_load  # noqa: E402
from pipeline_data import DOMAINS, build_corpus  # noqa: E402
from report import ROOT, SHARED, WORK, add_no_record_no_wait, command_line, git_commit, markdown  # noqa: E402
from report import print_and_record, say  # noqa: E402

HERE = WORK / "ray_scaling"
CONFIGS = ("local-1", "local-2", "ray-1", "ray-2")
PARTITIONS = 16


@dataclass(frozen=True)
class NoopTask:
    """A task that does nothing: what scheduling one task costs on an executor."""

    n: int

    @property
    def id(self) -> str:
        return f"noop/{self.n:06d}"

    def run(self, worker: Any) -> None:
        return None


def write_recipe(corpus: Path, out: Path) -> Path:
    import yaml

    spec = {"name": "ray-scaling", "seed": 1234,
            "sources": [{"path": str(corpus / d / "*.jsonl.zst"), "format": "jsonl.zst", "domain": d,
                         "id_field": "id"} for d in DOMAINS],
            "steps": ["normalize", "exact_dedup", {"line_dedup": {"domains": ["web"], "min_count": 2,
                                                                  "min_words": 50}},
                      {"quality": {"domains": ["web", "wiki"]}}, "minhash_dedup"],
            "output": {"dir": str(out), "keep_removed": "all"},
            "executor": {"partitions": PARTITIONS}}
    path = HERE / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def shard_hashes(out: Path) -> str:
    """One sha256 over the sha256 of every shard, removed and error file, in path order."""
    files = sorted(p for d in ("data", "removed", "errors") for p in (out / d).rglob("*.parquet"))
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(out).as_posix().encode() + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _executor(kind: str, plan: Any, root: Path, workers: int) -> Any:
    if kind == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(plan, root, workers, plan.recipe.model.executor)
    from curate.executors.local import LocalExecutor

    return LocalExecutor(plan, root, workers)


def child(config: str, recipe_path: Path, out: Path, noop_tasks: int, keep_work: bool) -> dict[str, Any]:
    """Inside the measured subprocess: one ``run()`` with the executor's start-up and phases timed, then the
    no-op phases on a fresh executor."""
    from curate import run as curate_run
    from curate.executors.local import LocalExecutor
    from curate.executors.ray import RayExecutor
    from curate.plan import build_plan
    from curate.recipe import load_recipe
    from mixlab import logs

    logs.setup(quiet=True)
    kind, workers = config.split("-")[0], int(config.split("-")[1])
    recipe = load_recipe(recipe_path, [f"executor.type={kind}", f"executor.workers={workers}"])
    timings: dict[str, Any] = {"phases": []}
    cls = RayExecutor if kind == "ray" else LocalExecutor
    enter, run_phase = cls.__enter__, cls.run

    def timed_enter(self: Any) -> Any:
        t0 = time.perf_counter()
        entered = enter(self)
        timings["startup"] = time.perf_counter() - t0
        return entered

    def timed_run(self: Any, description: str, tasks: Any) -> None:
        t0 = time.perf_counter()
        run_phase(self, description, tasks)
        if tasks:
            timings["phases"].append((description, len(tasks), time.perf_counter() - t0))

    cls.__enter__, cls.run = timed_enter, timed_run  # type: ignore[method-assign]
    t0 = time.perf_counter()
    manifest = curate_run.run(recipe, out, workers, fresh=True, keep_work=keep_work)
    wall = time.perf_counter() - t0
    cls.__enter__, cls.run = enter, run_phase  # type: ignore[method-assign]
    read = manifest["accounting"]["read"]
    noop = HERE / f"noop-{config}"
    shutil.rmtree(noop, ignore_errors=True)
    noop.mkdir(parents=True)
    plan = build_plan(recipe)
    with _executor(kind, plan, noop, workers) as ex:
        t1 = time.perf_counter()
        ex.run("warm-up", [NoopTask(i) for i in range(workers)])
        warm = time.perf_counter() - t1
        t1 = time.perf_counter()
        ex.run("no-op", [NoopTask(i) for i in range(noop_tasks)])
        per_task = (time.perf_counter() - t1) * workers / noop_tasks
    shutil.rmtree(noop, ignore_errors=True)
    return {"config": config, "wall": wall, "startup": timings.get("startup", 0.0), "phases": timings["phases"],
            "docs": read, "warm_up": warm, "per_task": per_task, "hash": shard_hashes(out),
            "input_bytes": sum(f.stat().st_size for fs in recipe.files for f in fs),
            "units": len(plan.units)}


def bytes_through_out(out: Path, units: int, partitions: int) -> list[tuple[str, int, int, int]]:
    """(what, bytes written, bytes read back, upper bound of bytes read back) under OUT for a run kept with
    ``--keep-work`` (see the module's docstring for what each reader reads)."""
    work = out / ".work"

    def size(p: Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0

    once = lambda what, n: (what, n, n, n)  # noqa: E731
    decisions, side = size(work / "decisions"), size(work / "side")
    return [
        once("segment outputs (documents between global steps)", sum(map(size, sorted(work.glob("seg*"))))),
        once("shuffle spills (keys of global steps)", size(work / "shuffle")),
        (f"decisions (read by each of the {units} map tasks that apply them)", decisions, decisions * units,
         decisions * units),
        (f"MinHash side files (shingle sets; read in part by {partitions} reduce tasks and the combine)", side, side,
         side * (partitions + 1)),
        *(once(f".work/{name} (read by the finalize tasks)", size(work / name)) for name in ("final", "removed",
                                                                                             "errors")),
        once("task stats and markers", size(work / "stats") + size(out / ".state")),
        ("outputs (data, removed, errors, index)", sum(size(out / d) for d in ("data", "removed", "errors", "index")),
         0, 0),
    ]


def run_config(config: str, recipe: Path, noop_tasks: int, keep_work: bool) -> dict[str, Any]:
    out = HERE / f"out-{config}{'-kept' if keep_work else ''}"
    result = HERE / f"{config}.json"
    script = 'ip link set lo up && exec "$0" "${@:1}"'
    cmd = ["unshare", "--net", "bash", "-c", script, sys.executable, str(Path(__file__).resolve()), "--one", config,
           "--recipe", str(recipe), "--out", str(out), "--noop-tasks", str(noop_tasks), "--result", str(result)]
    if keep_work:
        cmd.append("--keep-work")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    r = json.loads(result.read_text())
    r["process"] = time.perf_counter() - t0
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=24, help="corpus size in MB of text (default 24)")
    ap.add_argument("--file-mb", type=int, default=2, help="MB per input file, so one map task each (default 2)")
    ap.add_argument("--noop-tasks", type=int, default=200, help="tasks of the timed no-op phase (default 200)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over the configurations; each keeps its fastest "
                    "run (default 1)")
    ap.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--recipe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--keep-work", action="store_true", help=argparse.SUPPRESS)
    add_no_record_no_wait(ap)
    args = ap.parse_args()
    if args.one:
        r = child(args.one, args.recipe, args.out, args.noop_tasks, args.keep_work)
        args.result.write_text(json.dumps(r), encoding="utf-8")
        return
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        raise SystemExit("needs a loopback-only network namespace: run as root (unshare --net)")
    commit, command = git_commit(), command_line()
    HERE.mkdir(parents=True, exist_ok=True)
    say(f"building the {args.size_mb} MB corpus (reused when it exists)")
    info = build_corpus(WORK, SHARED, args.size_mb, file_mb=args.file_mb)
    recipe = write_recipe(info.dir, HERE / "out")
    load_before = other_load(3.0)
    results: dict[str, dict[str, Any]] = {}
    for round_ in range(args.repeat):
        for config in CONFIGS:
            say(f"round {round_ + 1}/{args.repeat}: {config} ...")
            r = run_config(config, recipe, args.noop_tasks, keep_work=round_ == 0 and config == "local-2")
            say(f"  {r['wall']:.1f} s")
            if config not in results or r["wall"] < results[config]["wall"]:
                results[config] = r
    load_after = other_load(3.0)
    base = results["local-1"]
    rows = []
    for config, r in results.items():
        work = r["wall"] - r["startup"]
        rows.append([config, f"{r['startup']:.2f}", f"{r['wall']:.1f}", f"{r['docs'] / r['wall']:,.0f}",
                     f"{r['docs'] / work:,.0f}", f"{base['wall'] / r['wall']:.2f}x", f"{r['warm_up']:.2f}",
                     f"{r['per_task'] * 1000:.1f}", "yes" if r["hash"] == base["hash"] else "**NO**"])
    table = markdown(["config", "start-up s", "run() s", "docs/s", "docs/s without start-up", "speed vs local-1",
                      "first phase of no-op tasks s", "overhead ms per task", "same shards as local-1"], rows)
    phase_rows = []
    for i, (name, n, _) in enumerate(base["phases"]):
        phase_rows.append([name, n, *(f"{results[c]['phases'][i][2]:.2f}" for c in CONFIGS)])
    phases = markdown(["phase", "tasks", *(f"{c} s" for c in CONFIGS)], phase_rows)
    moved = bytes_through_out(HERE / "out-local-2-kept", base["units"], PARTITIONS)
    text = info.mb * 1e6
    rows2 = [[what, f"{w / 1e6:,.1f}", f"{r / 1e6:,.1f}", f"{u / 1e6:,.1f}", f"{w / text:.2f}", f"{r / text:.2f}",
              f"{u / text:.2f}"] for what, w, r, u in moved]
    rows2.append(["inputs (read once, as stored)", "0.0", f"{base['input_bytes'] / 1e6:,.1f}",
                  f"{base['input_bytes'] / 1e6:,.1f}", "0.00", f"{base['input_bytes'] / text:.2f}",
                  f"{base['input_bytes'] / text:.2f}"])
    tw, tr, tu = (sum(row[i] for row in moved) for i in (1, 2, 3))
    tr, tu = tr + base["input_bytes"], tu + base["input_bytes"]
    rows2.append(["**all**", f"{tw / 1e6:,.1f}", f"{tr / 1e6:,.1f}", f"{tu / 1e6:,.1f}", f"**{tw / text:.2f}**",
                  f"**{tr / text:.2f}**", f"**{tu / text:.2f}**"])
    moved_table = markdown(["files under OUT", "MB written", "MB read", "MB read, upper bound",
                            "GB written / GB of text", "GB read / GB of text", "upper bound"], rows2)
    body = "\n".join([
        f"- corpus: {info.mb:.1f} MB of text, {info.docs:,} documents in {base['units']} zstd JSONL files "
        f"({base['input_bytes'] / 1e6:.1f} MB stored; `benchmarks/pipeline_data.py`); steps normalize, exact_dedup, "
        f"line_dedup (web), quality (web, wiki), minhash_dedup; {PARTITIONS} partitions",
        "- ray: a Ray instance started by the run on this machine (`executor.address` null) with as many CPUs as "
        "workers, one per task, inside a loopback-only network namespace (all configurations ran there)",
        f"- other load (cores busy with other processes) before / after: {load_before:.2f} / {load_after:.2f}",
        f"- overhead per task: a phase of {args.noop_tasks} no-op tasks after a warm-up phase; wall x workers / tasks",
        f"- {args.repeat} round(s) over the configurations in turn; each row is its configuration's fastest run",
        "", table, "", "Phases (seconds):", "", phases, "",
        "Bytes through OUT (the `local-2` run kept with --keep-work), per GB of input text (uncompressed): on a "
        "shared filesystem every byte written or read crosses the network, except what a node reads back of its "
        "own writes from its page cache:", "",
        moved_table])
    print_and_record("Ray executor scaling: local vs Ray, 1 and 2 workers", command, commit, body,
                     record=not (args.no_record or args.no_wait))
    for config in CONFIGS:
        for kept in ("", "-kept"):
            shutil.rmtree(HERE / f"out-{config}{kept}", ignore_errors=True)


if __name__ == "__main__":
    main()
