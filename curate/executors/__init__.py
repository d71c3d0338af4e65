"""Executors run the tasks of a plan's phases; they never contain step logic (see `curate/tasks.py`)."""

from curate.executors.base import Executor
from curate.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
