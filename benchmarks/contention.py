"""Timing without interference from other processes: waiting until no other benchmark (``pipeline``, ``minhash``,
``dedup``) runs and the machine is otherwise idle, measuring the cores other processes keep busy (from
``/proc/stat``), and taking a timing again while something else disturbed it (``undisturbed``,
``timed_when_quiet``, ``timed_alone``).

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from typing import Any, Callable, TypeVar

from report import say

T = TypeVar("T")

OTHER_BENCHMARKS = "benchmarks/(pipeline|minhash|dedup)"
"""``pgrep -f`` pattern of the benchmarks that must not run while we time something (they share the cores)"""
MAX_OTHER_LOAD = 0.25
"""cores other processes may keep busy during a timing before it is taken again"""
PIPELINE = "benchmarks/pipeline.py"
IDLE_MAX_CORES = 0.15
"""``timed_alone``: a run during which other processes used more than this many cores on average is repeated"""


def others_running(pattern: str = OTHER_BENCHMARKS) -> list[str]:
    """Command lines of other benchmark processes (``pgrep -af PATTERN``), this process excluded."""
    r = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    me = str(os.getpid())
    return [ln for ln in r.stdout.splitlines() if ln.split(" ", 1)[0] != me]


def wait_until_quiet(every: float = 30.0, pattern: str = OTHER_BENCHMARKS) -> float:
    """Block until no other benchmark (``pgrep -f pattern``) runs, polled every ``every`` s; returns the seconds
    waited."""
    t0 = time.monotonic()
    told = False
    while others := others_running(pattern):
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


class LoadMeter:
    """Cores that other processes kept busy between ``start()`` and ``stop()`` (from /proc/stat)."""

    def start(self) -> None:
        self.busy0, self.cpu0, self.t0 = system_busy_seconds(), own_cpu_seconds(), time.monotonic()

    def stop(self) -> float:
        busy, cpu = system_busy_seconds() - self.busy0, own_cpu_seconds() - self.cpu0
        return max(0.0, busy - cpu) / max(time.monotonic() - self.t0, 1e-9)


def other_load(seconds: float = 5.0) -> float:
    """Cores the rest of the machine keeps busy, measured over ``seconds``."""
    meter = LoadMeter()
    meter.start()
    time.sleep(seconds)
    return meter.stop()


def undisturbed(run: Callable[[], T], wait: bool = True, label: str = "the timing", tries: int = 8,
                pattern: str = OTHER_BENCHMARKS, settle: bool = False) -> tuple[T, float]:
    """``run()`` once no other benchmark (``pattern``) runs, taken again (up to ``tries`` times, 30 s apart) while
    other processes kept more than MAX_OTHER_LOAD cores busy during it; with ``settle``, not started either while
    they keep more busy over 5 s. Returns its result and the other load (cores) seen. ``wait=False``: once, at once."""
    meter = LoadMeter()
    for attempt in range(tries if wait else 1):
        last = attempt == tries - 1
        if wait:
            wait_until_quiet(pattern=pattern)
            if settle and (load := other_load()) > MAX_OTHER_LOAD and not last:
                say(f"other processes keep {load:.2f} cores busy; trying again in 30 s")
                time.sleep(30)
                continue
        meter.start()
        result = run()
        load = meter.stop()
        if not wait or load <= MAX_OTHER_LOAD or last:
            return result, load
        say(f"  {label}: other processes kept {load:.2f} cores busy; discarded, again in 30 s")
        time.sleep(30)
    raise AssertionError("unreachable")


def best_of_alternating(funcs: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Best wall seconds of each function over ``repeats`` rounds, the functions alternating within a round."""
    best = {name: float("inf") for name in funcs}
    for _ in range(repeats):
        for name, fn in funcs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def timed_when_quiet(funcs: dict[str, Callable[[], object]], repeats: int = 3, wait: bool = True,
                     tries: int = 6) -> tuple[dict[str, float], float]:
    """``best_of_alternating`` once no other benchmark runs and the machine is otherwise idle (at most
    MAX_OTHER_LOAD cores busy, before and during the timing; see ``undisturbed``). Returns the best seconds and the
    other load (cores) seen during the kept timing. ``wait=False`` times at once."""
    return undisturbed(lambda: best_of_alternating(funcs, repeats), wait, tries=tries, settle=True)


def pipeline_running() -> bool:
    return bool(others_running(PIPELINE))


def wait_for_idle(every: float = 30.0, max_wait: float = 1800.0) -> None:
    """Wait until no ``benchmarks/pipeline.py`` runs and the other processes of the machine use less than
    ``IDLE_MAX_CORES`` cores (polling every ``every`` seconds; after ``max_wait`` seconds, go on anyway)."""
    t0 = time.perf_counter()
    announced = False
    while time.perf_counter() - t0 < max_wait:
        if not pipeline_running():
            load = other_load(3.0)
            if load < IDLE_MAX_CORES:
                return
            why = f"other processes use {load:.2f} cores"
        else:
            why = f"{PIPELINE} runs"
        if not announced:
            print(f"  waiting: {why} (polling every {every:.0f} s) ...", flush=True)
            announced = True
        time.sleep(every)
    print(f"  still busy after {max_wait:.0f} s: timing anyway", flush=True)


class ContentionWatch:
    """Measures what a ``with`` block shared the machine with: whether ``benchmarks/pipeline.py`` ran at any time
    (polled every ``every`` seconds) and how many cores other processes used on average."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.pipeline_seen = False
        self.others_cores = 0.0
        self._meter = LoadMeter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def seen(self) -> bool:
        return self.pipeline_seen or self.others_cores > IDLE_MAX_CORES

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.pipeline_seen |= pipeline_running()
            self._stop.wait(self.every)

    def __enter__(self) -> "ContentionWatch":
        self._meter.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.pipeline_seen |= pipeline_running()
        self.others_cores = self._meter.stop()


def timed_alone(fn: Callable[[], T], tries: int = 4) -> tuple[T, bool]:
    """``fn()`` run on an otherwise idle machine, repeated (up to ``tries`` times) while something else ran during
    it. Returns (result, whether the last try still shared the machine)."""
    result: Any = None
    for _ in range(tries):
        wait_for_idle()
        with ContentionWatch() as watch:
            result = fn()
        if not watch.seen:
            return result, False
        print(f"  the machine was shared meanwhile ({PIPELINE} seen: {watch.pipeline_seen}, other processes "
              f"{watch.others_cores:.2f} cores): timing again", flush=True)
    return result, True
