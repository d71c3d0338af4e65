"""The local executor: a process pool over tasks on one machine; shuffles go through files on disk."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

from curate.plan import Plan
from curate.tasks import Task, Worker
from mixlab.logs import progress

FAULT_KILL_AFTER_TASKS = "MIXLAB_FAULT_KILL_AFTER_TASKS"
"""environment variable: kill the run (SIGKILL) once this many tasks have finished (for kill-and-resume tests)"""

_worker: Worker | None = None


def _init(plan: Plan, root: Path) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Worker(plan, root)


def _run(task: Task) -> str:
    assert _worker is not None
    task.run(_worker)
    return task.id


FINAL_THREADS = 4
"""the most finalize tasks this process runs at once in threads (their Parquet encoding runs outside the GIL)"""


class LocalExecutor:
    """Runs each phase's tasks on up to ``workers`` processes. A phase of one task, or any phase when
    ``workers == 1``, runs in this process; the pool (forked) starts with the first phase of more than one task.
    In this process, a phase of finalize tasks (``Task.final``: they read work files and write shards, no step
    runs) uses a thread per core, up to ``FINAL_THREADS``."""

    def __init__(self, plan: Plan, root: Path, workers: int) -> None:
        self.plan, self.root, self.workers = plan, root, workers
        self._pool: Any = None
        self._here: Worker | None = None
        self._completed = 0
        self._kill_after = int(os.environ.get(FAULT_KILL_AFTER_TASKS, "0") or 0)

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            if exc[0] is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
            self._pool = None

    @property
    def pool_started(self) -> bool:
        """Whether a process pool has been started."""
        return self._pool is not None

    def _in_process(self, task: Task) -> str:
        if self._here is None:
            self._here = Worker(self.plan, self.root)
        task.run(self._here)
        return task.id

    def run(self, description: str, tasks: Sequence[Task]) -> None:
        """Run ``tasks`` (one phase) to completion; raises the first task's exception."""
        if not tasks:
            return
        if self.workers > 1 and len(tasks) > 1:
            if self._pool is None:
                self._pool = mp.get_context("fork").Pool(self.workers, initializer=_init,
                                                         initargs=(self.plan, self.root))
            results = self._pool.imap_unordered(_run, tasks)
        elif len(tasks) > 1 and all(t.final for t in tasks) and (os.cpu_count() or 1) > 1:
            if self._here is None:
                self._here = Worker(self.plan, self.root)
            with ThreadPoolExecutor(min(len(tasks), os.cpu_count() or 1, FINAL_THREADS),
                                    thread_name_prefix="curate-finalize") as threads:
                futures = [threads.submit(self._in_process, t) for t in tasks]
                try:
                    self._count(description, (f.result() for f in as_completed(futures)), len(tasks))
                finally:
                    for f in futures:
                        f.cancel()
            return
        else:
            results = map(self._in_process, tasks)
        self._count(description, results, len(tasks))

    def _count(self, description: str, results: Iterable[str], total: int) -> None:
        """Wait for ``results`` (task ids as tasks finish) with a progress bar."""
        for _ in progress(results, total=total, desc=description, unit="task"):
            self._completed += 1
            if self._kill_after and self._completed >= self._kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
