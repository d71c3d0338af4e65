"""One logging and progress setup for every command: console messages, a run log, progress bars with rates.

tqdm is imported when a bar or a line above one is drawn, not with this module: every command imports it, and
tqdm's own imports take about 60 ms of a start-up that should stay under a second."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")
log = logging.getLogger("mixlab")
_quiet = False


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Console messages at INFO (WARNING under ``quiet``, DEBUG under ``verbose``) on stderr; the same for the
    model libraries already imported (see :func:`configure_libraries`)."""
    global _quiet
    _quiet = quiet
    configure_libraries(import_them=False)
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    log.propagate = False


def configure_libraries(import_them: bool = True) -> None:
    """Make transformers, peft, huggingface_hub and datasets follow mixlab's console: their progress bars (e.g.
    "Loading weights") only when :func:`bars_enabled`, and under ``--quiet`` only their errors. Commands that load
    models call this first (importing transformers takes seconds, so only they do); ``import_them=False`` touches only
    the libraries already imported."""
    import importlib.util

    bars, level = bars_enabled(), logging.ERROR if _quiet else logging.WARNING
    if import_them and importlib.util.find_spec("transformers") is not None:
        import transformers.utils.logging  # noqa: F401
    if "transformers.utils.logging" in sys.modules:
        from transformers.utils import logging as hf_logging

        if _quiet or not os.environ.get("TRANSFORMERS_VERBOSITY"):
            hf_logging.set_verbosity(level)
        if not bars:
            hf_logging.disable_progress_bar()
        elif not os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
            hf_logging.enable_progress_bar()
    if "datasets.utils.logging" in sys.modules:
        import datasets

        datasets.utils.logging.set_verbosity(level)
        if not bars:
            datasets.disable_progress_bars()
        elif not os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS"):
            datasets.enable_progress_bars()
    for name in ("peft", "huggingface_hub"):
        logging.getLogger(name).setLevel(level)


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


class _BarSafeStream:
    """A console stream that writes through ``tqdm.write``: lines go above the progress bars instead of into them."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def bar_safe_console() -> Iterator[None]:
    """While a progress bar is drawn: mixlab's console messages are printed above it (levels and format kept)."""
    consoles = [h for h in log.handlers if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)]
    streams = [h.setStream(_BarSafeStream(h.stream)) for h in consoles]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for handler, stream in zip(consoles, streams):
            handler.setStream(stream)  # type: ignore[arg-type]


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """A progress bar with rate and ETA, silent under ``--quiet`` or when stderr is not a terminal."""
    if not bars_enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)
