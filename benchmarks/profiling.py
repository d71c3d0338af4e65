"""Profiles as Markdown tables for RESULTS.md: cProfile's functions by own (or cumulative) time, and
``torch.profiler`` operators by self CPU time (on CUDA: self device time).

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path
from typing import Any, Callable

from report import markdown


def cprofile_table(fn: Callable[[], object], top: int, only: str | None = None) -> str:
    """cProfile of ``fn()``: the ``top`` functions by own time (or, with ``only``, the functions whose file path
    contains it, by cumulative time) as a Markdown table."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, name), (_, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if only is None or only in file:
            short = "/".join(Path(file).parts[-2:]) if file != "~" else "~"
            rows.append((tt if only is None else ct, [f"`{short}:{line} {name}`", f"{nc:,}", f"{tt:.3f}", f"{ct:.3f}"]))
    rows.sort(key=lambda r: -r[0])
    return markdown(["function", "calls", "own s", "cum s"], [r for _, r in rows[:top]])


def torch_profiler(device: str) -> Any:
    """A ``torch.profiler.profile`` of CPU activity, and of CUDA activity with ``device`` ``cuda``."""
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else []))


def torch_profile_table(run_steps: Callable[[], None], device: str, top: int = 15) -> str:
    """``torch.profiler`` operators of ``run_steps()`` by self CPU time, or on CUDA by self device time (Markdown)."""
    with torch_profiler(device) as prof:
        run_steps()
    return operator_table(prof.key_averages(), device, top)


def operator_table(averages: Any, device: str, top: int = 15) -> str:
    """The ``top`` operators of ``torch.profiler`` key averages by self CPU (on CUDA: device) time (Markdown)."""
    attr, label = ("self_device_time_total", "self CUDA") if device == "cuda" else ("self_cpu_time_total", "self CPU")
    events = sorted(averages, key=lambda e: -getattr(e, attr))
    total = sum(getattr(e, attr) for e in events) or 1
    rows = [[f"`{e.key[:90]}`", f"{e.count:,}", f"{getattr(e, attr) / 1e6:.3f}",
             f"{100 * getattr(e, attr) / total:.1f}"] for e in events[:top]]
    return markdown(["operator", "calls", f"{label} s", f"% of {label}"], rows)
