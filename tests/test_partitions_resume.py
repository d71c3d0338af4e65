"""Shuffle partitions: the output and the recipe hash do not depend on them, and an unfinished run resumes with
the count it started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from curate.recipe import load_recipe
from tests.conftest import QUICKSTART, ROOT, quickstart_overrides


def _curate(out: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate.cli", "--quiet", "run", str(QUICKSTART), *overrides,
                           "--output", str(out), "--workers", "2"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _corpus_sha(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text())["corpus_sha256"]


def test_the_recipe_hash_does_not_depend_on_the_partition_count() -> None:
    assert (load_recipe(QUICKSTART, ["executor.partitions=1"]).hash()
            == load_recipe(QUICKSTART, ["executor.partitions=7"]).hash()
            == load_recipe(QUICKSTART).hash())


def test_an_unfinished_run_resumes_with_the_partitions_it_started_with(quickstart_lm: Path, quickstart_out: Path,
                                                                       tmp_path: Path) -> None:
    lm = quickstart_overrides(quickstart_lm)
    out = tmp_path / "out"
    killed = _curate(out, *lm, "executor.partitions=5", env={"MIXLAB_FAULT_KILL_AFTER_TASKS": "12"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_recipe(QUICKSTART).model.executor.partitions != 5  # the default differs from what it started with

    resumed = _curate(out, *lm)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "manifest.json").read_text())["recipe"]["executor"]["partitions"] == 5
    assert _corpus_sha(out) == _corpus_sha(quickstart_out)


def test_resuming_with_another_explicit_partition_count_is_refused(quickstart_lm: Path, tmp_path: Path) -> None:
    lm = quickstart_overrides(quickstart_lm)
    out = tmp_path / "out"
    killed = _curate(out, *lm, "executor.partitions=5", env={"MIXLAB_FAULT_KILL_AFTER_TASKS": "12"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    again = _curate(out, *lm, "executor.partitions=3")
    assert again.returncode == 2
    assert "executor.partitions=5" in again.stderr and "--fresh" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("partitions", [1, 3])
def test_the_shards_do_not_depend_on_the_partition_count(quickstart_lm: Path, quickstart_out: Path,
                                                         tmp_path: Path, partitions: int) -> None:
    out = tmp_path / "out"
    done = _curate(out, *quickstart_overrides(quickstart_lm), f"executor.partitions={partitions}")
    assert done.returncode == 0, done.stderr
    assert _corpus_sha(out) == _corpus_sha(quickstart_out)
