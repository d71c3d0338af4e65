"""Where everything lives in an output directory, and the completion markers that make a run resumable.

Every file is written to a temporary name and renamed; a task's marker in ``.state/`` is written after all of its
files, so a task either counts as done with all of its output in place, or is run again from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


WORK_FORMAT = 2
"""version of what ``.work`` holds (2: Arrow IPC files); a run left unfinished by another version is not resumed"""


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root

    manifest = property(lambda self: self.root / "manifest.json")
    mixture = property(lambda self: self.root / "mixture.json")
    card = property(lambda self: self.root / "card.md")
    data = property(lambda self: self.root / "data")
    errors = property(lambda self: self.root / "errors")
    stats = property(lambda self: self.root / "stats")
    state = property(lambda self: self.root / ".state")
    work = property(lambda self: self.root / ".work")
    log = property(lambda self: self.root / "logs" / "run.log")

    def removed(self, step: str) -> Path:
        return self.root / "removed" / step

    # intermediate files: Arrow IPC
    def segment_out(self, seg: int, unit: int) -> Path:
        return self.work / f"seg{seg}" / f"u{unit:06d}.arrow"

    def final_out(self, domain: str, unit: int) -> Path:
        return self.work / "final" / domain / f"u{unit:06d}.arrow"

    def removed_out(self, step: str, unit: int) -> Path:
        return self.work / "removed" / step / f"u{unit:06d}.arrow"

    def errors_out(self, unit: int) -> Path:
        return self.work / "errors" / f"u{unit:06d}.arrow"

    def spill(self, step: str, part: int, unit: int) -> Path:
        return self.work / "shuffle" / step / f"p{part:04d}" / f"u{unit:06d}.arrow"

    def decisions(self, step: str, part: int) -> Path:
        return self.work / "decisions" / step / f"p{part:04d}.arrow"

    def combined(self, step: str) -> Path:
        return self.work / "decisions" / step / "combined.arrow"

    def side(self, step: str, unit: int) -> Path:
        return self.work / "side" / step / f"u{unit:06d}.arrow"

    def task_stats(self, task: str) -> Path:
        return self.work / "stats" / f"{task}.json"

    def marker(self, task: str) -> Path:
        return self.state / f"{task}.done"

    def done(self, task: str) -> bool:
        return self.marker(task).exists()

    def mark_done(self, task: str) -> None:
        write_text_atomic(self.marker(task), "")
        if os.environ.get("MIXLAB_TASK_LOG"):
            with open(self.state / "executed.log", "a", encoding="utf-8") as f:
                f.write(task + "\n")

    def clear(self) -> None:
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
