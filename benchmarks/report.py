"""Helpers the model-step benchmarks (``langid.py``, ``perplexity.py``, ``quality_classifier.py``) share: machine
description, git commit, Markdown tables, appending an entry to ``benchmarks/RESULTS.md``, and waiting until no other
benchmark is using the cores before a timed measurement.

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
WORK = ROOT / "benchmarks" / ".work"
SHARED = ROOT.parent / "shared" / "data"
OTHER_BENCHMARKS = "benchmarks/(pipeline|minhash|dedup)"
"""``pgrep -f`` pattern of the benchmarks that must not run while we time something (they share the cores)"""


def machine() -> dict[str, str]:
    """nproc, RAM, CPU model and Python version of this machine."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return {"nproc": nproc, "ram": f"{mem_kib / 2**20:.1f} GiB", "cpu": model, "python": platform.python_version()}


def git_commit() -> str:
    """Short hash of HEAD (``git rev-parse --short HEAD``)."""
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip() or "unknown"


def command_line() -> str:
    """The command that started this process, as typed from the project root."""
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    except ValueError:
        exe_s = "python"
    script = Path(sys.argv[0]).resolve()
    script_s = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)
    return shlex.join([exe_s, script_s, *sys.argv[1:]])


def markdown(head: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one character per column, ``l`` or ``r`` (default: first left, rest right)."""
    align = align or "l" + "r" * (len(head) - 1)
    sep = "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"
    return "\n".join(["| " + " | ".join(head) + " |", sep] + ["| " + " | ".join(r) + " |" for r in rows])


def header(title: str, command: str, commit: str) -> list[str]:
    """First lines of a RESULTS.md entry: title with date, command, machine, commit."""
    m = machine()
    end = git_commit()
    return [f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {title}", "",
            f"- command: `{command}`",
            f"- machine: nproc {m['nproc']}, RAM {m['ram']}, CPU {m['cpu']}, Python {m['python']}",
            f"- commit: {commit}" + (f" at the start, {end} at the end (the tree changed during the run)"
                                     if end != commit else "")]


def append_results(entry: str, path: Path = RESULTS) -> None:
    """Append one entry to RESULTS.md (created with its title if missing); earlier entries are never touched."""
    if not path.exists():
        path.write_text("# Benchmark results\n\nA log: each entry is appended by a benchmark script "
                        "(`benchmarks/*.py`) with its exact command, machine, date and commit.\n\n",
                        encoding="utf-8")
    with open(path, "a", encoding="utf-8") as f:
        f.write(entry.rstrip("\n") + "\n\n")


def others_running(pattern: str = OTHER_BENCHMARKS) -> list[str]:
    """Command lines of other benchmark processes (``pgrep -af PATTERN``), this process excluded."""
    r = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    me = str(os.getpid())
    return [ln for ln in r.stdout.splitlines() if ln.split(" ", 1)[0] != me]


def wait_until_quiet(every: float = 30.0, say: Callable[[str], None] = print) -> float:
    """Block until no other benchmark runs (polled every ``every`` s); returns the seconds waited."""
    t0 = time.monotonic()
    told = False
    while others := others_running():
        if not told:
            say(f"waiting for other benchmarks to finish before timing ({len(others)} processes, e.g. "
                f"{others[0][:100]!r}); polling every {every:.0f} s")
            told = True
        time.sleep(every)
    return time.monotonic() - t0


def system_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (``/proc/stat``, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def other_load(seconds: float = 5.0) -> float:
    """Cores the rest of the machine keeps busy, measured over ``seconds``."""
    busy0, cpu0, t0 = system_busy_seconds(), own_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return max(0.0, system_busy_seconds() - busy0 - (own_cpu_seconds() - cpu0)) / (time.monotonic() - t0)


def best_of_alternating(funcs: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Best wall seconds of each function over ``repeats`` rounds, the functions alternating within a round."""
    best = {name: float("inf") for name in funcs}
    for _ in range(repeats):
        for name, fn in funcs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


MAX_OTHER_LOAD = 0.25
"""cores other processes may keep busy during a timing before it is taken again"""


def timed_when_quiet(funcs: dict[str, Callable[[], object]], repeats: int = 3, wait: bool = True, tries: int = 6,
                     say: Callable[[str], None] = print) -> tuple[dict[str, float], float]:
    """``best_of_alternating`` once no other benchmark runs and the machine is otherwise idle (at most
    MAX_OTHER_LOAD cores busy, before and during the timing); retried up to ``tries`` times, 30 s apart, while
    other load disturbs it. Returns the best seconds and the other load (cores) seen during the kept timing.
    ``wait=False`` times at once."""
    for attempt in range(tries if wait else 1):
        if wait:
            wait_until_quiet(say=say)
            load = other_load()
            if load > MAX_OTHER_LOAD and attempt < tries - 1:
                say(f"other processes keep {load:.2f} cores busy; trying again in 30 s")
                time.sleep(30)
                continue
        busy0, cpu0, t0 = system_busy_seconds(), own_cpu_seconds(), time.monotonic()
        best = best_of_alternating(funcs, repeats)
        load = max(0.0, system_busy_seconds() - busy0 - (own_cpu_seconds() - cpu0)) / (time.monotonic() - t0)
        if not wait or load <= MAX_OTHER_LOAD or attempt == tries - 1:
            return best, load
        say(f"other processes kept {load:.2f} cores busy during the timing; trying again in 30 s")
        time.sleep(30)
    raise AssertionError("unreachable")
