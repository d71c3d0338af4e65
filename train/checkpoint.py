"""Checkpoints that resume exactly and are checked before they are used.

``checkpoints/step-NNNNNNN/`` holds ``model.pt`` and ``optimizer.pt`` (or DeepSpeed's ``deepspeed/`` folder),
``rng.pt`` (the Python, numpy, torch and CUDA RNG states, as tensors) and ``state.json``, written last: the step,
the task's state, and the size and xxh3-128 checksum of every other file. A checkpoint directory appears only by an
atomic rename once complete.

Loading never runs code: every file is read with ``torch.load(weights_only=True)`` (tensors and plain containers
only). Before anything is loaded, every file is checked against its recorded size and checksum, so a truncated,
damaged or missing file is named instead of being read, and ``--resume`` (latest) falls back to the newest intact
checkpoint. Checksums find damage, not forgery: safety from a crafted file comes from never unpickling objects.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from mixlab.errors import ConfigError, RunError, storage_problem
from mixlab.checksum import file_problem, file_record
from mixlab.logs import log

CHECKSUM = "xxh3_128"

DEEPSPEED_GLOBALS = frozenset({
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
})
"""the classes (beyond what ``weights_only`` allows) that DeepSpeed's own checkpoint files import when unpickled"""


class Damaged(Exception):
    """A checkpoint whose files do not match its ``state.json``; the message names the file and what is wrong."""


def _file_records(root: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(root).as_posix(): file_record(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p != root / "state.json"}


# -- RNG states --------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, torch.Tensor]:
    """Python's, numpy's, torch's and every CUDA device's RNG state, each as tensors (int64, float64, uint8)."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {"python.version": torch.tensor(version), "python.mt": torch.tensor(mt, dtype=torch.int64),
             "python.gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
             "numpy.keys": torch.from_numpy(keys.astype(np.int64)), "numpy.pos": torch.tensor([pos, has_gauss]),
             "numpy.gauss": torch.tensor(cached, dtype=torch.float64), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` returned. Raises KeyError/ValueError/TypeError on another layout."""
    gauss = state["python.gauss"].tolist()
    random.setstate((int(state["python.version"]), tuple(state["python.mt"].tolist()), gauss[0] if gauss else None))
    pos, has_gauss = state["numpy.pos"].tolist()
    np.random.set_state(("MT19937", state["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy.gauss"])))
    torch.set_rng_state(state["torch"])
    cuda = [state[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in state))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


# -- writing -----------------------------------------------------------------------------------------------------
def _free_space(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            free = shutil.disk_usage(folder).free
            return f"{free / 2**30:,.1f} GiB" if free >= 2**30 else f"{free / 2**20:,.1f} MiB" if free >= 2**20 \
                else f"{free // 1024:,} KiB"
    return "unknown"


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn a failure to write ``what`` at ``path`` into a RunError naming it (exit 1, one line): a full, read-only
    or forbidden file system (OSError), ``torch.save``'s RuntimeError (its writer reports a short write so, e.g.
    "unexpected pos") and safetensors' write error. The message gives the space left on the file system."""
    from safetensors import SafetensorError

    try:
        yield
    except OSError as e:
        problem = storage_problem(e)
        if problem is None:
            raise
        full = f" ({_free_space(path)} free there)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise RunError(f"{path}: cannot write {what}: {problem.rsplit(': ', 1)[-1]}{full}") from e
    except (RuntimeError, SafetensorError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise RunError(f"{path}: cannot write {what}: the write failed ({reason}; {_free_space(path)} free there, "
                       "a full disk?)") from e


def save(directory: Path, step: int, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None,
         state: dict[str, Any], keep: int, extra: dict[str, Path] | None = None, protect: int | None = None) -> Path:
    """Write ``directory/step-NNNNNNN`` atomically (temp dir + rename) and prune to the last ``keep``, never
    pruning the checkpoint of step ``protect`` (early stopping's best).

    ``model``/``optimizer`` are None when an engine (DeepSpeed) saved them itself into a folder given in ``extra``
    (name -> folder), which is moved into the checkpoint. ``state`` (JSON values) goes into ``state.json`` with the
    step and each file's size and checksum. A failed write (a full disk) removes the partial checkpoint and raises
    RunError naming it (see :func:`writing`)."""
    target = directory / f"step-{step:07d}"
    tmp = directory / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with writing(target, "the checkpoint"):
        try:
            tmp.mkdir(parents=True)
            if model is not None and optimizer is not None:
                torch.save(model.state_dict(), tmp / "model.pt")
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            for name, folder in (extra or {}).items():
                os.replace(folder, tmp / name)
            torch.save(rng_state(), tmp / "rng.pt")
            record = {"step": step, **state, "files": _file_records(tmp)}
            (tmp / "state.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    for old in sorted(directory.glob("step-*"))[:-keep]:
        if protect is None or old.name != f"step-{protect:07d}":
            shutil.rmtree(old, ignore_errors=True)
    return target


# -- finding and checking ----------------------------------------------------------------------------------------
def verify(path: Path) -> dict[str, Any]:
    """The checkpoint's ``state.json``, once every file it lists has its recorded size and checksum.

    Raises :class:`Damaged` naming the file: ``state.json`` missing or not JSON, a file missing, truncated or
    changed, or a checkpoint written before mixlab recorded checksums (which cannot be checked)."""
    record = path / "state.json"
    try:
        state = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Damaged(f"{record} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Damaged(f"{record} is damaged (not JSON: {e})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise Damaged(f"{record} is damaged (no step)")
    files = state.get("files")
    if not isinstance(files, dict) or "rng.pt" not in files:
        raise Damaged(f"{record} records no checksums (a checkpoint of an older mixlab), so its files cannot be "
                      "checked before loading")
    for name, expected in files.items():
        f = path / name
        if not isinstance(expected, dict) or not isinstance(expected.get("bytes"), int):
            raise Damaged(f"{record} is damaged (no size recorded for {name})")
        if not isinstance(expected.get(CHECKSUM), str):
            raise Damaged(f"{record} is damaged (no checksum recorded for {name})")
        problem = "missing" if not f.is_file() else file_problem(f, expected)
        if problem is not None:
            raise Damaged(f"{f} is {problem}")
    return state


def find(out: Path, resume: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume and its verified state. ``resume`` is "latest" or a checkpoint directory.

    "latest" takes the newest intact checkpoint in ``out/checkpoints``, logging each damaged one it passes over; an
    explicit directory must be intact. Raises ConfigError (one line naming the file) when there is none."""
    if resume == "latest":
        directory = out / "checkpoints"
        candidates = sorted((p for p in directory.glob("step-*") if p.is_dir()), reverse=True)
        if not candidates:
            raise ConfigError(f"--resume: no checkpoint in {directory}")
        problems = []
        for path in candidates:
            try:
                state = verify(path)
            except Damaged as e:
                problems.append(str(e))
                log.warning(f"--resume: {e}" + ("; falling back to the previous checkpoint" if path != candidates[-1]
                                                 else ""))
                continue
            if problems:
                log.warning(f"--resume: resuming from {path.name} (step {state['step']}), the newest intact checkpoint")
            return path, state
        older = f" ({len(problems) - 1} older checkpoint{'s' * (len(problems) > 2)} damaged too)" \
            if len(problems) > 1 else ""
        raise ConfigError(f"--resume: no intact checkpoint in {directory}: {problems[0]}{older}")
    path = Path(resume)
    if not path.is_dir():
        raise ConfigError(f"--resume: {path} is not a checkpoint directory")
    try:
        return path, verify(path)
    except Damaged as e:
        raise ConfigError(f"--resume: {e}") from None


# -- loading -----------------------------------------------------------------------------------------------------
def _load(path: Path) -> Any:
    """``torch.load`` of tensors and plain containers only; ConfigError naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"--resume: {path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"it imports {found.group(1)}" if found else "it holds objects other than tensors"
        raise ConfigError(f"--resume: {path} was refused: {what}, and loading it could run code") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise ConfigError(f"--resume: {path} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                          ) from None


def _check_shapes(path: Path, saved: Any, expected: dict[str, torch.Tensor]) -> None:
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume: {path} holds no model weights")
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or unexpected:
        example = f"this model has {missing[0]}" if missing else f"the checkpoint has {unexpected[0]}"
        raise ConfigError(f"--resume: {path} holds another model ({len(missing)} weights missing there, "
                          f"{len(unexpected)} unknown here; e.g. {example})")
    for name, tensor in expected.items():
        there = tuple(getattr(saved[name], "shape", ()))
        if there != tuple(tensor.shape):
            raise ConfigError(f"--resume: {path} holds another model shape: {name} is {list(there)} there and "
                              f"{list(tensor.shape)} here")


def load(path: Path, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None) -> None:
    """Restore the RNG states and, when given, the model and optimizer from a :func:`verify`-ed checkpoint.

    The saved weights' names and shapes are compared with ``model``'s before any is loaded. Raises ConfigError
    (one line naming the file) for a file that holds more than tensors or does not fit this model."""
    if model is not None and optimizer is not None:
        weights = _load(path / "model.pt")
        _check_shapes(path / "model.pt", weights, model.state_dict())
        model.load_state_dict(weights)
        try:
            optimizer.load_state_dict(_load(path / "optimizer.pt"))
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ConfigError(f"--resume: {path / 'optimizer.pt'} does not fit this model's optimizer ({e})") from None
    try:
        set_rng_state(_load(path / "rng.pt"))
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise ConfigError(f"--resume: {path / 'rng.pt'} does not hold the RNG states mixlab writes ({e!r})") from None


def check_deepspeed_files(path: Path) -> Path:
    """The checkpoint's ``deepspeed/`` folder, once it is safe to hand to DeepSpeed's ``load_checkpoint``.

    DeepSpeed unpickles its own files with ``weights_only=False``, which would run any code a file names. So only
    files that :func:`verify` has matched to their checksums reach it, and each ``.pt`` file's pickle is first
    scanned (without running it) for the globals it would import: anything beyond what ``weights_only`` allows and
    :data:`DEEPSPEED_GLOBALS` is refused with ConfigError naming the file and the global."""
    folder = path / "deepspeed"
    if not folder.is_dir():
        raise ConfigError(f"--resume: {path} holds no deepspeed/ folder: it was not written with "
                          "distributed.backend: deepspeed")
    for f in sorted(folder.rglob("*.pt")):
        try:
            imports = torch.serialization.get_unsafe_globals_in_checkpoint(f)
        except Exception as e:  # any failure to parse means it is not a file DeepSpeed wrote
            raise ConfigError(f"--resume: {f} cannot be read ({e})") from None
        unsafe = sorted(set(imports) - DEEPSPEED_GLOBALS)
        if unsafe:
            raise ConfigError(f"--resume: {f} was refused: it imports {unsafe[0]}, which DeepSpeed's checkpoints "
                              "never hold, and loading it could run code")
    return folder
