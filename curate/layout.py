"""Where everything lives in an output directory, and the completion markers that make a run resumable.

Every file is written to a temporary name and renamed; a task's marker in ``.state/`` is written after all of its
files, so a task either counts as done with all of its output in place, or is run again from scratch. The marker
records the size and checksum of each of those files, so that damage found before they are reused makes the task
run again (see `curate.reuse`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from curate.card_plots import FIGURES
from curate.integrity import file_records, seal, unseal
from mixlab.errors import MixlabError, storage_problem
from mixlab.logs import log


_TEMPORARY = re.compile(r"\.(.+)\.tmp\d+")

WORK_FORMAT = 2
"""version of what ``.work`` holds (2: Arrow IPC files); a run left unfinished by another version is not resumed"""


class Layout:
    """The paths of an output directory. ``OWNED`` is the one list of the names a run writes in the root: no input
    may lie inside them, and ``--fresh`` deletes in them only the files whose names a run writes
    (:func:`is_written`)."""

    LOCK = ".lock"
    OWNED = ("manifest.json", "mixture.json", "card.md", "card", "data", "removed", "errors", "stats", "index",
             "logs", ".state", ".work", "tokens", LOCK)

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
    lock = property(lambda self: self.root / Layout.LOCK)

    @classmethod
    def is_owned(cls, name: str) -> bool:
        """Whether ``name`` in the root is something a run writes: an ``OWNED`` name or the temporary file of one
        (``.manifest.json.tmp1234``)."""
        m = _TEMPORARY.fullmatch(name)
        return name in cls.OWNED or (m is not None and m.group(1) in cls.OWNED)

    def written_examples(self, domains: list[str], steps: list[str]) -> list[Path]:
        """One path per kind of file or folder a run of ``steps`` over ``domains`` writes, the root itself last.
        A ``*`` part stands for any name (a domain a step routes to, a tokenizer hash, a task id); below the hidden
        folders every name is one."""
        shard = "part-00000.parquet"
        rel = ["logs/run.log", *self.OWNED, f"errors/{shard}", f"data/*/{shard}", "card/funnel.png"]
        rel += [p for d in domains for p in (f"data/{d}", f"tokens/*/{d}")]
        rel += [f"tokens/*/*/part-00000{ext}" for ext in (".tokens", ".docs.npy", ".ids.npy", ".json")]
        rel += [p for s in steps for p in (f"removed/{s}", f"removed/{s}/{shard}", f"stats/{s}.json")]
        rel += [hidden + "/*" * depth for hidden in (".state", ".work") for depth in range(1, 6)]
        return [self.root / r for r in [*rel, "."]]

    def removed(self, step: str) -> Path:
        return self.root / "removed" / step

    index = property(lambda self: self.root / "index")

    def rel(self, path: Path, folder: bool = False) -> str:
        """``path`` relative to the root, in POSIX form; a ``folder`` ends in ``/`` (a prefix of the files in it)."""
        return path.relative_to(self.root).as_posix() + ("/" if folder else "")

    # intermediate files: Arrow IPC, one per unit (``u000012.arrow``) in each of these folders
    def segment_dir(self, seg: int) -> Path:
        return self.work / f"seg{seg}"

    final_root = property(lambda self: self.work / "final")

    def final_dir(self, domain: str) -> Path:
        return self.final_root / domain

    def removed_dir(self, step: str) -> Path:
        return self.work / "removed" / step

    errors_dir = property(lambda self: self.work / "errors")

    def shuffle_dir(self, step: str) -> Path:
        return self.work / "shuffle" / step

    def spill_dir(self, step: str, part: int) -> Path:
        return self.shuffle_dir(step) / f"p{part:04d}"

    def side_dir(self, step: str) -> Path:
        return self.work / "side" / step

    @staticmethod
    def unit_files(folder: Path) -> list[Path]:
        """The per-unit files in ``folder``, in unit order (none when it does not exist)."""
        return sorted(folder.glob("u*.arrow"))

    def segment_out(self, seg: int, unit: int) -> Path:
        return self.segment_dir(seg) / f"u{unit:06d}.arrow"

    def final_out(self, domain: str, unit: int) -> Path:
        return self.final_dir(domain) / f"u{unit:06d}.arrow"

    def removed_out(self, step: str, unit: int) -> Path:
        return self.removed_dir(step) / f"u{unit:06d}.arrow"

    def errors_out(self, unit: int) -> Path:
        return self.errors_dir / f"u{unit:06d}.arrow"

    def spill(self, step: str, part: int, unit: int) -> Path:
        return self.spill_dir(step, part) / f"u{unit:06d}.arrow"

    def decisions(self, step: str, part: int) -> Path:
        return self.work / "decisions" / step / f"p{part:04d}.arrow"

    def combined(self, step: str) -> Path:
        return self.work / "decisions" / step / "combined.arrow"

    def side(self, step: str, unit: int) -> Path:
        return self.side_dir(step) / f"u{unit:06d}.arrow"

    def task_stats(self, task: str) -> Path:
        return self.work / "stats" / f"{task}.json"

    def marker(self, task: str) -> Path:
        return self.state / f"{task}.done"

    def done(self, task: str) -> bool:
        """Whether ``task`` has a completion marker (whose files `curate.reuse` checks before a resume)."""
        return self.marker(task).exists()

    def read_marker(self, task: str) -> dict[str, Any] | None:
        """The record of ``task``'s marker (``files``: path relative to the root -> bytes and xxh3_128), or None
        when it has none or it is damaged."""
        try:
            return unseal(self.marker(task).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def mark_done(self, task: str, files: list[Path]) -> None:
        """Mark ``task`` done, recording the size and checksum of every file it wrote (``files``, all under the
        root) and the seconds spent hashing them."""
        records, seconds = file_records(self.root, files)
        write_text_atomic(self.marker(task), seal({"task": task, "files": records, "hash_seconds": seconds}))
        if os.environ.get("MIXLAB_TASK_LOG"):
            with open(self.state / "executed.log", "a", encoding="utf-8") as f:
                f.write(task + "\n")

    def clear(self) -> None:
        """Delete what runs wrote here and nothing else: the files :func:`is_written` names, all of ``.state/`` and
        ``.work/``, then the folders of mixlab's layout that this left empty. Every other file stays, even inside
        ``data/`` or ``logs/``, and one line logs (a few of) them; the lock stays with its holder. Symbolic links
        are removed or kept as links, never followed."""
        kept = list(self._sweep(self.root, (), delete=True))
        if kept:
            more = f" and {len(kept) - 5} more" if len(kept) > 5 else ""
            log.info(f"{self.root}: --fresh kept {len(kept)} path(s) that mixlab did not write: "
                     f"{', '.join(kept[:5])}{more}")

    def foreign(self) -> str | None:
        """The first path below the root (relative; a folder ends in ``/``) that mixlab did not write, or None when
        everything there has a name a run writes (see :func:`is_written`)."""
        return next(self._sweep(self.root, (), delete=False), None)

    def _sweep(self, folder: Path, rel: tuple[str, ...], delete: bool) -> Iterator[str]:
        """Yield the paths below ``folder`` that mixlab did not write, in name order, without entering folders
        outside ``OWNED``; with ``delete``, delete the others, then ``folder`` if it is a folder of the layout
        left empty."""
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            sub = (*rel, entry.name)
            is_dir = entry.is_dir(follow_symlinks=False)
            if not rel and entry.name == self.LOCK:
                continue
            if not rel and entry.name in _PRIVATE and is_dir:
                if delete:
                    shutil.rmtree(entry.path)
            elif is_dir and (rel or entry.name in self.OWNED):
                yield from self._sweep(Path(entry.path), sub, delete)
            elif is_written(sub):
                if delete:
                    os.unlink(entry.path)
            else:
                yield "/".join(sub) + ("/" if is_dir else "")
        if delete and _FOLDER.fullmatch("/".join(rel)) and not any(folder.iterdir()):
            folder.rmdir()


_PRIVATE = (".state", ".work")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_FOLDER = re.compile(rf"data(/{_NAME})?|removed(/{_NAME})?|errors|stats|logs|index(/minhash)?|card"
                     rf"|tokens(/[0-9a-f]+(/{_NAME})?)?")
_WRITTEN = re.compile(
    rf"(data/{_NAME}|removed/{_NAME}|errors)/part-\d{{5,}}\.parquet"
    r"|manifest\.json|mixture\.json|card\.md"
    rf"|card/({'|'.join(FIGURES)})\.png"
    rf"|stats/(?P<step>{_NAME})\.json"
    r"|logs/run\.log"
    r"|index/minhash/(docs\.arrow|bands\.arrow|params\.json)"
    rf"|tokens/[0-9a-f]+/{_NAME}/\.?part-\d{{5,}}\.(tokens|docs\.npy|ids\.npy|json)")


def is_written(rel: tuple[str, ...]) -> bool:
    """Whether the file at ``rel`` (path parts below an output root) has a name mixlab writes: a shard
    ``data/<domain>/part-NNNNN.parquet``, ``removed/<step>/part-*.parquet`` or ``errors/part-*.parquet``,
    ``stats/<step>.json`` of a registered step, ``logs/run.log``, a MinHash index file in ``index/minhash/``, a
    token-cache file ``tokens/<hash>/<domain>/part-NNNNN.*``, ``manifest.json``, ``mixture.json``, ``card.md``,
    a figure ``card/<name>.png`` of the card, the temporary name of any of them (``.card.md.tmp1234``), or
    anything in ``.state/`` or ``.work/``."""
    if len(rel) > 1 and rel[0] in _PRIVATE:
        return True
    temporary = _TEMPORARY.fullmatch(rel[-1])
    m = _WRITTEN.fullmatch("/".join((*rel[:-1], temporary.group(1) if temporary else rel[-1])))
    if m is None:
        return False
    if m.group("step") is not None:
        from curate.readers import READ_STEP
        from curate.steps import REGISTRY

        return m.group("step") in {READ_STEP, *REGISTRY}
    return True


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


class OutputLock:
    """One run per output directory: ``OUT/.lock`` holds ``{"pid", "host", "started"}`` of the run that holds an
    exclusive ``fcntl.flock`` on it for the run's life.

    Entering refuses with :class:`MixlabError` (exit 2) naming the pid of a live holder. The kernel drops a lock
    when the last process sharing it ends, so a lock file left by ``kill -9`` is free: it is taken over and the
    takeover logged. Forked workers share the parent's lock and never release it; those of a killed run hold it
    until they end after their task, so a lock whose recorded pid is dead is waited for up to ``ORPHAN_WAIT_S``.
    Only the process that took the lock releases it, on exit, removing the file and the directories it created
    that stayed empty.
    """

    ORPHAN_WAIT_S = 60.0

    def __init__(self, root: Path) -> None:
        self.root, self.path = root, Layout(root).lock
        self._fd: int | None = None
        self._owner = 0
        self._created: list[Path] = []

    def __enter__(self) -> "OutputLock":
        if self.root.exists() and not self.root.is_dir():
            raise MixlabError(f"output.dir: {self.root} exists and is not a directory")
        try:
            self._created = [p for p in (self.root, *self.root.parents) if not p.exists()]
            self.root.mkdir(parents=True, exist_ok=True)
            fd, previous = self._acquire()
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError as e:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            detail = storage_problem(e) or (f"{e.filename}: {e.strerror}" if e.filename else str(e))
            raise MixlabError(f"cannot use the output directory: {detail}") from None
        if previous.get("pid"):
            log.warning(f"{self.path}: taking over the lock left by pid {previous['pid']} on "
                        f"{previous.get('host', '?')} (started {previous.get('started', '?')}), which is no longer "
                        "running")
        self._owner = os.getpid()
        return self

    def _acquire(self) -> tuple[int, dict[str, Any]]:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._fd = fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._wait_for_orphans(fd, _read_holder(fd))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                holder = _read_holder(fd)  # a filesystem without locks: trust a live pid on this host
                if holder.get("host") == socket.gethostname() and _alive(holder.get("pid")) \
                        and holder.get("pid") != os.getpid():
                    self._refuse(holder)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:  # not a file its holder removed while we were opening it
                return fd, _read_holder(fd)
            os.close(fd)
            self._fd = None

    def _wait_for_orphans(self, fd: int, holder: dict[str, Any]) -> None:
        """A lock held though its run is dead on this host is held by that run's workers, which end after their
        task (they cannot report it): wait up to ``ORPHAN_WAIT_S`` for them, else refuse."""
        if holder.get("host") != socket.gethostname() or _alive(holder.get("pid")):
            self._refuse(holder)
        log.warning(f"{self.root}: the run of pid {holder.get('pid')} was killed; waiting for its worker processes "
                    "to end")
        deadline = time.monotonic() + self.ORPHAN_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
        self._refuse(holder, " (killed, but its worker processes still run)")

    def _refuse(self, holder: dict[str, Any], state: str = "") -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        who = f"pid {holder.get('pid', '?')}{state} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
        raise MixlabError(f"output directory {self.root} is in use by another run ({who}); wait for it to end "
                          f"or stop it, or choose another output")

    def __exit__(self, *exc: Any) -> None:
        if self._fd is None or os.getpid() != self._owner:
            return
        try:
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                self.path.unlink()
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        for created in self._created:
            try:
                created.rmdir()
            except OSError:
                break


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
