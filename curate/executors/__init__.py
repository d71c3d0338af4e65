"""Executors run a plan's tasks; they never contain step logic (see `curate/tasks.py`)."""

from curate.executors.local import LocalExecutor, Task

__all__ = ["LocalExecutor", "Task"]
