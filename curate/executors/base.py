"""What every executor provides: run the tasks of one phase, in any order and as parallel as it can, and return
when all of them have finished. Executors schedule and wait; what a task does is its own (`curate.tasks`).

An executor is built from the plan, the output root and its own settings, and used as a context manager around
all the phases of a run::

    with LocalExecutor(plan, root, workers) as ex:
        for phase in phases:
            ex.run(phase.description, [t for t in phase.tasks if not layout.done(t.id)])

Where a task runs, it runs as ``task.run(Worker(plan, root))``, one :class:`curate.tasks.Worker` per process
(it caches loaded models and decisions across the tasks of that process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    from curate.tasks import Task


class Executor(Protocol):
    def __enter__(self) -> "Executor":
        """Acquire what the executor needs (a process pool may start later, with the first phase that needs it)."""
        ...

    def __exit__(self, *exc: Any) -> None:
        """Release it: wait for workers after success, stop them after an error."""
        ...

    def run(self, description: str, tasks: Sequence[Task]) -> None:
        """Run every task of one phase (``description`` labels its progress) and return when all are done.

        Raises the first task's exception when a task fails for good (the run then stops; finished tasks keep
        their markers, so the next run resumes after them)."""
        ...


__all__ = ["Executor"]
