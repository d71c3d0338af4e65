"""Checkpoints that resume exactly: model, optimizer, RNG states and the sampler position (one integer)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.errors import ConfigError


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: Path, step: int, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None,
         state: dict[str, Any], keep: int, extra: dict[str, Path] | None = None) -> Path:
    """Write ``checkpoints/step-NNNNNNN`` atomically (temp dir + rename) and prune to the last ``keep``.

    ``model``/``optimizer`` are None when an engine (DeepSpeed) saved them itself into a folder given in ``extra``
    (name -> folder), which is moved into the checkpoint."""
    target = directory / f"step-{step:07d}"
    tmp = directory / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if model is not None and optimizer is not None:
        torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    for name, folder in (extra or {}).items():
        os.replace(folder, tmp / name)
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    for old in sorted(directory.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest(directory: Path) -> Path | None:
    found = sorted(p for p in directory.glob("step-*") if (p / "state.json").exists())
    return found[-1] if found else None


def find(out: Path, resume: str) -> Path:
    """``resume`` is "latest" or a checkpoint directory."""
    if resume == "latest":
        path = latest(out / "checkpoints")
        if path is None:
            raise ConfigError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        return path
    path = Path(resume)
    if not (path / "state.json").exists():
        raise ConfigError(f"--resume: {path} is not a checkpoint directory (no state.json)")
    return path


def load(path: Path, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Restore RNG states and, when given, the model and optimizer; returns the saved training state."""
    if model is not None and optimizer is not None:
        model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
