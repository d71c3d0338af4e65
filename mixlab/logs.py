"""One logging and progress setup for every command: console messages, a run log, progress bars with rates."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger("mixlab")
_quiet = False


def setup(quiet: bool = False, verbose: bool = False) -> None:
    global _quiet
    _quiet = quiet
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    log.propagate = False


def add_file(path: Path) -> logging.Handler:
    """Also log everything (tracebacks included) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler


def bars_enabled() -> bool:
    """Progress bars are drawn on a terminal and not under ``--quiet``."""
    return not _quiet and sys.stderr.isatty()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """A progress bar with rate and ETA, silent under ``--quiet`` or when stderr is not a terminal."""
    yield from tqdm(items, total=total, desc=desc, unit=unit, disable=not bars_enabled(), dynamic_ncols=True,
                    leave=False)
