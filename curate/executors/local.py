"""The local executor: a process pool over tasks on one machine; shuffles go through files on disk."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import tasks
from curate.plan import Plan
from mixlab.logs import progress

_worker: tasks.Worker | None = None


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # map | reduce | combine | finalize_domain | finalize_side
    args: tuple[Any, ...]


def _init(plan: Plan, root: Path) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = tasks.Worker(plan, root)


def _run(task: Task) -> str:
    assert _worker is not None
    w = _worker
    if task.kind == "map":
        seg_index, unit = task.args
        tasks.run_map(w, w.plan.segments[seg_index], unit)
    elif task.kind == "reduce":
        seg_index, part = task.args
        spec = w.plan.segments[seg_index].keys
        assert spec is not None
        tasks.run_reduce(w, spec, part)
    elif task.kind == "combine":
        spec = w.plan.segments[task.args[0]].keys
        assert spec is not None
        tasks.run_combine(w, spec)
    elif task.kind == "finalize_domain":
        tasks.run_finalize_domain(w, *task.args)
    elif task.kind == "finalize_side":
        tasks.run_finalize_side(w, *task.args)
    else:
        raise ValueError(task.kind)
    return task.id


class LocalExecutor:
    """Runs each phase's tasks on ``workers`` processes (in this process when ``workers == 1``)."""

    def __init__(self, plan: Plan, root: Path, workers: int) -> None:
        self.plan, self.root, self.workers = plan, root, workers
        self._pool: Any = None
        self._completed = 0
        self._kill_after = int(os.environ.get("MIXLAB_FAULT_KILL_AFTER_TASKS", "0") or 0)

    def __enter__(self) -> "LocalExecutor":
        if self.workers > 1:
            ctx = mp.get_context("fork")
            self._pool = ctx.Pool(self.workers, initializer=_init, initargs=(self.plan, self.root))
        else:
            _init(self.plan, self.root)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            if exc[0] is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()

    def run(self, todo: list[Task], desc: str) -> None:
        if not todo:
            return
        results = self._pool.imap_unordered(_run, todo) if self._pool is not None else map(_run, todo)
        for _ in progress(results, total=len(todo), desc=desc, unit="task"):
            self._completed += 1
            if self._kill_after and self._completed >= self._kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection for the kill-and-resume tests
