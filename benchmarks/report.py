"""What goes into ``benchmarks/RESULTS.md``: the paths the benchmarks share (project root, RESULTS.md, their work
folder, the shared data), the machine, git commit and command line of an entry, Markdown tables, an entry's header,
appending an entry to RESULTS.md, the ``--no-record`` and ``--no-wait`` options, printing a result (and recording
it), and printing progress (``say``).

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
WORK = ROOT / "benchmarks" / ".work"
SHARED = ROOT.parent / "shared" / "data"


def machine() -> dict[str, str]:
    """nproc, RAM, CPU model and Python version of this machine."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return {"nproc": nproc, "ram": f"{mem_kib / 2**20:.1f} GiB", "cpu": model, "python": platform.python_version()}


def machine_line() -> str:
    """``machine()`` as the text of an entry's machine line."""
    m = machine()
    return f"nproc {m['nproc']}, RAM {m['ram']}, CPU {m['cpu']}, Python {m['python']}"


def torch_machine_line(device: str, *packages: str) -> str:
    """``machine_line()`` with torch (and its threads), the versions of ``packages`` and ``device``."""
    import torch

    versions = "".join(f", {p} {importlib.import_module(p).__version__}" for p in packages)
    return (f"{machine_line()}, torch {torch.__version__} ({torch.get_num_threads()} threads){versions}, "
            f"device {device}")


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a timed child process: this one's plus ``extra``, without ``PYTHONDONTWRITEBYTECODE`` (a
    user's Python caches the bytecode it compiles, so a warm run loads modules instead of compiling them again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def git_commit() -> str:
    """Short hash of HEAD (``git rev-parse --short HEAD``)."""
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip() or "unknown"


def command_line(python: str | None = None) -> str:
    """The command that started this process, as typed from the project root; ``python`` replaces the
    interpreter's path."""
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    except ValueError:
        exe_s = "python"
    script = Path(sys.argv[0]).resolve()
    script_s = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)
    return shlex.join([python or exe_s, script_s, *sys.argv[1:]])


def markdown(head: Sequence[str], rows: Iterable[Sequence[object]], align: str = "lr") -> str:
    """A Markdown table. ``align`` has a character per column, ``l`` (left), ``r`` (right) or ``-`` (unmarked);
    its last one stands for the columns beyond it (default: first left, rest right)."""
    marks = {"l": ":--", "r": "--:", "-": "---"}
    sep = "|" + "|".join(marks[a] for a in align.ljust(len(head), align[-1])) + "|"
    return "\n".join(["| " + " | ".join(head) + " |", sep] + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def header(title: str, command: str, commit: str, machine_text: str | None = None) -> list[str]:
    """First lines of a RESULTS.md entry: title with date, command, machine (default ``machine_line()``), commit."""
    machine_text = machine_text or machine_line()
    end = git_commit()
    return [f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {title}", "",
            f"- command: `{command}`",
            f"- machine: {machine_text}",
            f"- commit: {commit}" + (f" at the start, {end} at the end (the tree changed during the run)"
                                     if end != commit else "")]


def append_results(entry: str, path: Path = RESULTS) -> None:
    """Append one entry to RESULTS.md (created with its title if missing) after a blank line; earlier entries are
    never touched."""
    if not path.exists():
        path.write_text("# Benchmark results\n\nA log: each entry is appended by a benchmark script "
                        "(`benchmarks/*.py`) with its exact command, machine, date and commit.\n\n",
                        encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    gap = "" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(gap + entry.rstrip("\n") + "\n\n")


def add_no_record_no_wait(ap: argparse.ArgumentParser) -> None:
    """The ``--no-record`` and ``--no-wait`` options of a benchmark timed with ``timed_when_quiet``."""
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    ap.add_argument("--no-wait", action="store_true",
                    help="time at once, even while other benchmarks run (smoke runs; implies --no-record)")


def print_and_record(title: str, command: str, commit: str, body: str, record: bool) -> None:
    """Print ``body``; with ``record``, append it to RESULTS.md as an entry titled ``title``."""
    print("\n" + body)
    if record:
        append_results("\n".join([*header(title, command, commit), "", body.strip()]))
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")


def say(msg: str) -> None:
    print(msg, flush=True)
