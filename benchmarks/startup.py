"""Start-up: a whole `curate run` process on one small document, warm and cold.

What it measures, for each recipe (one English document of ~90 words that every step keeps):

* ``normalize``: ``steps: [normalize]``;
* ``every cheap step``: ``normalize, exact_dedup, line_dedup, quality, minhash_dedup`` (the MinHash step included:
  a run this small must not load numba);

each run a fresh ``python -m curate.cli run RECIPE -q --output NEW_DIR`` process:

* warm: ``--runs`` processes one after another (bytecode and caches in place: the timed processes run without
  ``PYTHONDONTWRITEBYTECODE``, as a user's do); wall seconds (from process start to exit) and CPU seconds (user +
  system of the process), median and best;
* warm with card figures: the same with ``output.card_plots: true`` (by default, ``auto``, a run that read fewer
  than 1,000 documents writes its card without figures): what the figures cost;
* cold: the first run of a fresh copy of ``curate/`` and ``mixlab/`` (no ``__pycache__``: Python compiles them)
  with an empty ``NUMBA_CACHE_DIR`` (the ahead-of-time MinHash loops that ``make`` builds, ``curate/lsh_aot.py``,
  are copied with the code): what a user meets once after installing or changing the code; median and best of
  ``--cold-runs`` copies;
* where the time goes: one more warm run under ``-X importtime`` (seconds of imports, which heavy libraries were
  imported: numba, pandas, torch, matplotlib...) and one under cProfile (cumulative seconds of the run itself, of
  writing the data card, and of drawing its figures; profiler overhead included).

Other processes share this machine; each timing notes the cores they kept busy meanwhile (from /proc/stat), and
best-of figures are the ones least disturbed. Results are printed and appended to ``benchmarks/RESULTS.md``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/startup.py                 # 9 warm + 3 cold runs per recipe (~1 min)
    python benchmarks/startup.py --runs 3 --cold-runs 1 --no-record   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import LoadMeter  # noqa: E402
from report import ROOT, WORK as BENCH_WORK, command_line, git_commit, markdown, print_and_record, process_env  # noqa: E402

WORK = BENCH_WORK / "startup"
DOCUMENT = (
    "The library opens at nine in the morning and closes at six in the evening on every weekday. Visitors can "
    "borrow up to ten books at a time, and they may keep them for three weeks before they have to bring them back. "
    "There is a quiet reading room on the second floor, where people study for their exams, and a small cafe near "
    "the entrance that sells coffee, tea and sandwiches. Children have their own corner with picture books, games "
    "and a weekly story hour that is very popular with local families.")
RECIPES = {
    "normalize": ["normalize"],
    "every cheap step": ["normalize", "exact_dedup", "line_dedup", "quality", "minhash_dedup"],
}
HEAVY = ("numba", "pandas", "scipy", "torch", "transformers", "datasketch", "matplotlib", "tqdm")
PROFILED = {"the run (curate.run.run)": ("curate/run.py", "run"),
            "data card (write_card)": ("curate/card.py", "write_card"),
            "card figures (card_plots.draw)": ("curate/card_plots.py", "draw")}


@dataclass
class Timing:
    wall: float
    cpu: float
    other_cores: float


@dataclass
class Breakdown:
    import_s: float = 0.0
    heavy: list[str] = field(default_factory=list)
    profiled: dict[str, float] = field(default_factory=dict)
    profile_total: float = 0.0


def write_recipe(where: Path, steps: list[str], name: str = "recipe.yaml", **output: Any) -> Path:
    """A recipe ``where/name`` reading one jsonl document with ``steps``; ``output``: more ``output`` keys."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "doc.jsonl").write_text(json.dumps({"text": DOCUMENT}) + "\n", encoding="utf-8")
    recipe = where / name
    recipe.write_text(json.dumps({"name": "startup", "sources": [{"path": "doc.jsonl", "domain": "web"}],
                                  "steps": steps, "output": {"dir": "out", **output}}), encoding="utf-8")
    return recipe


SHOW_HEAVY = (f"import atexit, sys; atexit.register(lambda: print(','.join(m for m in {HEAVY!r} if m in sys.modules)))"
              "; from curate.cli import main; sys.exit(main())")
"""``python -c`` code that runs ``curate`` as its console script does and prints the HEAVY libraries it imported"""


def run_once(recipe: Path, out: Path, env: dict[str, str] | None = None, python_flags: list[str] | None = None,
             stderr: Path | None = None, stdout: Path | None = None) -> Timing:
    """One ``curate run`` process into the new directory ``out``: its wall and CPU seconds. ``python_flags`` that
    hold ``-c CODE`` replace ``-m curate.cli``."""
    shutil.rmtree(out, ignore_errors=True)
    entry = python_flags if python_flags and "-c" in python_flags else [*(python_flags or []), "-m", "curate.cli"]
    cmd = [sys.executable, *entry, "run", str(recipe), "-q", "--output", str(out)]
    meter = LoadMeter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    t0 = time.perf_counter()
    with open(stderr or os.devnull, "w") as err, open(stdout or os.devnull, "w") as std:
        r = subprocess.run(cmd, cwd=recipe.parent, env=process_env(**(env or {})), stdout=std, stderr=err)
    wall = time.perf_counter() - t0
    other = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0 or not (out / "manifest.json").exists():
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode})" + (f"; see {stderr}" if stderr else ""))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu, other)


def fresh_copy(dest: Path) -> Path:
    """``curate/`` and ``mixlab/`` copied without bytecode or numba caches (for PYTHONPATH)."""
    shutil.rmtree(dest, ignore_errors=True)
    for package in ("curate", "mixlab"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def cold(recipe: Path, work: Path) -> Timing:
    """The first run of a fresh copy of the code, numba's cache empty."""
    code, cache = fresh_copy(work / "code"), work / "numba-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    return run_once(recipe, work / "out-cold", env={"PYTHONPATH": str(code), "NUMBA_CACHE_DIR": str(cache)})


def breakdown(recipe: Path, work: Path) -> Breakdown:
    """Imports (``-X importtime``) and the profiled run's cumulative seconds of ``PROFILED``."""
    b = Breakdown()
    log, printed = work / "importtime.txt", work / "heavy.txt"
    run_once(recipe, work / "out-importtime", python_flags=["-X", "importtime", "-c", SHOW_HEAVY],
             stderr=log, stdout=printed)
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            if name.strip() and not name.startswith("  "):  # a top-level import: its cumulative time counts once
                b.import_s += int(cumulative) / 1e6
    b.heavy = [m for m in printed.read_text().strip().split(",") if m]
    prof = work / "run.prof"
    run_once(recipe, work / "out-profile", python_flags=["-m", "cProfile", "-o", str(prof)])
    stats = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    for label, (file, function) in PROFILED.items():
        b.profiled[label] = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == function)
    b.profile_total = max(v[3] for v in stats.values())
    return b


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} (best {min(xs):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="warm runs per recipe (default 9)")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold runs per recipe, each of a fresh copy (default 3)")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    command, commit = command_line("python"), git_commit()
    WORK.mkdir(parents=True, exist_ok=True)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        for name, steps in RECIPES.items():
            work = Path(tmp) / name.replace(" ", "-")
            recipe = write_recipe(work, steps)
            print(f"{name}: warm-up run, {args.runs} warm, {args.cold_runs} cold ...", flush=True)
            run_once(recipe, work / "out-warmup")
            warm = [run_once(recipe, work / f"out-{i}") for i in range(args.runs)]
            plotted = write_recipe(work, steps, "recipe-plots.yaml", card_plots=True)
            bare = [run_once(plotted, work / f"out-plots-{i}") for i in range(args.runs)]
            colds = [cold(recipe, work / f"cold-{i}") for i in range(args.cold_runs)]
            b = breakdown(recipe, work)
            rows.append([name, ", ".join(steps), _spread([t.wall for t in warm]), _spread([t.cpu for t in warm]),
                         _spread([t.wall for t in bare]), _spread([t.cpu for t in bare]),
                         _spread([t.wall for t in colds]), _spread([t.cpu for t in colds]),
                         f"{statistics.median([t.other_cores for t in warm + bare + colds]):.2f}"])
            prof = "; ".join(f"{k} {v:.2f} s" for k, v in b.profiled.items())
            notes.append(f"- {name}: imports {b.import_s:.2f} s (`-X importtime`, top-level cumulative); heavy "
                         f"libraries imported: {', '.join(b.heavy) or 'none'} (watched: {', '.join(HEAVY)}); "
                         f"under cProfile ({b.profile_total:.2f} s in all): {prof}.")
    body = "\n\n".join([
        "One English document (~90 words, kept by every step), `python -m curate.cli run RECIPE -q --output NEW_DIR`, "
        "one process per run. Seconds: median (best) over the runs; CPU = user + system of the process. Cold = "
        "the first run of a fresh copy of `curate/` and `mixlab/` (Python compiles them) with an empty "
        "`NUMBA_CACHE_DIR`. The runs write the data card without figures (`output.card_plots: auto` below 1,000 "
        "documents read); with card figures = `output.card_plots: true`.",
        markdown(["recipe", "steps", "warm wall s", "warm CPU s", "with card figures: wall s", "CPU s",
                  "cold wall s", "cold CPU s", "other cores busy (median)"], [[str(c) for c in r] for r in rows],
                 "ll-------"),
        "\n".join(notes)])
    print_and_record("curate run start-up on one document (warm and cold)", command, commit, body,
                     not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
