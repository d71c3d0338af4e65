"""A run killed at any point and started again finishes with exactly the shards of an uninterrupted run,
without redoing the work that was finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, ROOT, quickstart_overrides


@pytest.fixture(autouse=True)
def _lm(quickstart_lm: Path) -> None:
    global LM_OVERRIDES
    LM_OVERRIDES = [*quickstart_overrides(quickstart_lm), "executor.partitions=16"]  # tasks for every kill point


LM_OVERRIDES: list[str] = []


def _curate(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate.cli", "--quiet", "run", str(QUICKSTART), *LM_OVERRIDES,
                           "--output", str(out), "--workers", "2", *extra], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MIXLAB_TASK_LOG": "1", **(env or {})}, timeout=300)


def _shards(out: Path) -> dict[str, str]:
    m = json.loads((out / "manifest.json").read_text())
    shards = {s["path"]: s["sha256"] for d in m["domains"].values() for s in d["shards"]}
    shards.update({s["path"]: s["sha256"] for side in m["removed"].values() for s in side})
    return shards


def _executed(out: Path) -> list[str]:
    log = out / ".state" / "executed.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("kill_after", [2, 17, 30, 52])
def test_killed_run_resumes_to_identical_shards(quickstart_out: Path, tmp_path: Path, kill_after: int) -> None:
    out = tmp_path / "out"
    killed = _curate(out, env={"MIXLAB_FAULT_KILL_AFTER_TASKS": str(kill_after)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "manifest.json").exists()
    done_before = set(_executed(out))
    assert len(done_before) >= kill_after - 2  # the pool may finish a task or two after the kill point

    resumed = _curate(out)
    assert resumed.returncode == 0, resumed.stderr
    redone = [t for t in _executed(out)[len(done_before):] if t in done_before]
    assert redone == [], "finished tasks were run again"
    assert _shards(out) == _shards(quickstart_out)


def test_externally_killed_run_resumes_to_identical_shards(quickstart_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "--quiet", "run", str(QUICKSTART), *LM_OVERRIDES,
                             "--output", str(out), "--workers", "2"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / ".state").rglob("*.done"))) < 20:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    assert _curate(out).returncode == 0
    assert _shards(out) == _shards(quickstart_out)


def test_resume_refuses_an_output_of_a_different_recipe(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _curate(out, env={"MIXLAB_FAULT_KILL_AFTER_TASKS": "3"}).returncode == -signal.SIGKILL
    changed = _curate(out, "seed=99")
    assert changed.returncode == 2
    assert "different recipe" in changed.stderr and "--fresh" in changed.stderr
    assert _curate(out, "seed=99", "--fresh").returncode == 0


def test_resume_refuses_an_unfinished_run_of_an_earlier_work_format(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _curate(out, env={"MIXLAB_FAULT_KILL_AFTER_TASKS": "3"}).returncode == -signal.SIGKILL
    state = out / ".state" / "recipe.json"
    earlier = json.loads(state.read_text())
    del earlier["work_format"]  # as written before the work files became Arrow IPC
    state.write_text(json.dumps(earlier))

    refused = _curate(out)

    assert refused.returncode == 2
    assert "format 1 vs 2" in refused.stderr and "--fresh" in refused.stderr
    assert _curate(out, "--fresh").returncode == 0


def test_output_directory_that_is_not_a_corpus_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    r = _curate(out, "--fresh")
    assert r.returncode == 2 and "refusing" in r.stderr
    assert (out / "precious.txt").read_text() == "keep me"
