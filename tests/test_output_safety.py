"""The output directory is safe to point at: `--fresh` deletes only what runs wrote, an output that overlaps the
inputs is refused before any work, one run at a time holds an output, and damaged state is named, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from curate.layout import Layout, OutputLock
from tests.conftest import SMALL_DOC, run_curate, small_recipe, write_inputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tmp_path: Path, capsys: Any) -> Path:
    """A complete corpus in tmp_path/out built from tmp_path/in/a.jsonl by tmp_path/r.yaml."""
    write_inputs(tmp_path / "in")
    assert run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}))[0] == 0
    return tmp_path / "out"


# ------------------------------------------------------------------------------------------ --fresh


def test_fresh_keeps_user_files_in_the_output(built: Path, tmp_path: Path, capsys: Any) -> None:
    (built / "NOTES.txt").write_text("my notes")
    (built / "analysis").mkdir()
    (built / "analysis" / "plot.png").write_bytes(b"png")

    assert run_curate(capsys, "run", tmp_path / "r.yaml", "--fresh")[0] == 0

    assert (built / "NOTES.txt").read_text() == "my notes"
    assert (built / "analysis" / "plot.png").read_bytes() == b"png"
    assert (built / "manifest.json").exists()


def test_fresh_deletes_every_path_runs_write(built: Path, tmp_path: Path, capsys: Any) -> None:
    stale = [built / "data" / "old-domain" / "part-00000.parquet",
             built / "tokens" / "abc" / "web" / "part-00000.tokens",
             built / ".work" / "seg0" / "u000000.arrow", built / "index" / "minhash" / "params.json",
             built / ".manifest.json.tmp42"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stale")

    assert run_curate(capsys, "run", tmp_path / "r.yaml", "--fresh")[0] == 0

    assert [p for p in stale if p.exists()] == []


def test_fresh_keeps_an_input_stored_in_the_output(built: Path, tmp_path: Path, capsys: Any) -> None:
    src = write_inputs(built / "extra", "src.jsonl")
    recipe = small_recipe(tmp_path, {"path": "out/extra/src.jsonl"}, name="r2.yaml")

    assert run_curate(capsys, "run", recipe, "--fresh")[0] == 0

    assert src.exists()
    assert json.loads((built / "manifest.json").read_text())["accounting"]["kept"] == 5


def test_input_inside_a_path_the_run_writes_is_refused(built: Path, tmp_path: Path, capsys: Any) -> None:
    shard = built / "data" / "web" / "part-00000.parquet"
    before = shard.read_bytes()
    recipe = small_recipe(tmp_path, {"path": "out/data/web/part-00000.parquet"}, name="r2.yaml")

    code, err = run_curate(capsys, "run", recipe, "--fresh")

    assert code == 2
    assert "sources[0].path" in err and str(built / "data") in err
    assert shard.read_bytes() == before


def test_clear_never_deletes_the_lock_its_holder_holds(tmp_path: Path) -> None:
    with OutputLock(tmp_path / "out"):
        (tmp_path / "out" / "data").mkdir()
        Layout(tmp_path / "out").clear()
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Layout.LOCK]


# ------------------------------------------------------------------------------------------ output inside input


@pytest.mark.parametrize("pattern, existing", [("in/**/*", "a.txt"), ("in/*", "a.txt"),
                                               ("in/**/*.parquet", "a.parquet"), ("in/**/run.log", "logs/run.log"),
                                               ("in/*/*/*/*.parquet", "x/y/z/a.parquet")])
def test_output_a_source_glob_could_read_is_refused(tmp_path: Path, capsys: Any, pattern: str,
                                                    existing: str) -> None:
    write_inputs((tmp_path / "in" / existing).parent, Path(existing).name)
    recipe = small_recipe(tmp_path, {"path": pattern, "format": "lines"}, out="in/out")

    code, err = run_curate(capsys, "run", recipe)

    assert code == 2
    assert err.startswith("curate: error: sources[0].path") and str(tmp_path / "in" / "out") in err
    assert not (tmp_path / "in" / "out").exists()


def test_output_inside_a_directory_source_is_refused(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "one.txt").write_text(SMALL_DOC)
    recipe = small_recipe(tmp_path, {"path": "texts", "format": "txt"}, out="texts/corpus")

    code, err = run_curate(capsys, "run", recipe)

    assert code == 2 and "sources[0].path" in err and str(tmp_path / "texts" / "corpus") in err


def test_output_reached_through_a_symlink_into_the_input_is_refused(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "link").symlink_to(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in/**/*", "format": "lines"}, out="link/out")

    assert run_curate(capsys, "run", recipe)[0] == 2


@pytest.mark.parametrize("pattern", ["in/**/*", "in/*/*/*.log"])
def test_output_a_symlink_in_the_input_leads_to_is_refused(tmp_path: Path, capsys: Any, pattern: str) -> None:
    write_inputs(tmp_path / "in" / "x" / "y", "a.log")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "in" / "link").symlink_to(tmp_path / "elsewhere" / "out", target_is_directory=True)
    recipe = small_recipe(tmp_path, {"path": pattern, "format": "lines"}, out="elsewhere/out")
    (tmp_path / "elsewhere" / "out").mkdir()

    code, err = run_curate(capsys, "run", recipe)

    assert code == 2 and "sources[0].path" in err and str(tmp_path / "elsewhere" / "out") in err


def test_validate_refuses_an_output_inside_the_input_too(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in/**/*", "format": "lines"}, out="in/out")

    code, err = run_curate(capsys, "validate", recipe)

    assert code == 2 and "sources[0].path" in err


def test_output_below_an_input_glob_that_cannot_match_its_files_is_allowed(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in/**/*.jsonl"}, out="in/out")

    assert run_curate(capsys, "run", recipe)[0] == 0
    assert run_curate(capsys, "run", recipe)[0] == 0  # the rerun finds the same inputs and a complete corpus


# ------------------------------------------------------------------------------------------ one run per output

HOLD = """
import sys, time
from pathlib import Path
from curate.layout import OutputLock
with OutputLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""

PROBE = """
import sys
from pathlib import Path
from curate.layout import OutputLock
with OutputLock(Path(sys.argv[1])):
    pass
"""


def hold_lock(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_second_run_into_a_locked_output_is_refused_naming_the_holder(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    holder = hold_lock(tmp_path / "out")
    try:
        code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}), "--fresh")
    finally:
        holder.kill()
        holder.wait()

    assert code == 2
    assert f"pid {holder.pid}" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Layout.LOCK]  # --fresh deleted nothing


def test_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    holder = hold_lock(tmp_path / "out")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "out" / Layout.LOCK).exists()

    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}))

    assert code == 0
    assert f"taking over the lock left by pid {holder.pid}" in err
    assert not (tmp_path / "out" / Layout.LOCK).exists()


HOLD_WITH_WORKER = """
import os, sys, time
from pathlib import Path
from curate.layout import OutputLock
with OutputLock(Path(sys.argv[1])):
    if os.fork() == 0:
        time.sleep(2)
        os._exit(0)
    print("held", flush=True)
    time.sleep(120)
"""


def test_lock_of_a_killed_run_is_waited_for_while_its_workers_end(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WITH_WORKER, str(tmp_path / "out")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "in/a.jsonl"}))

    assert code == 0
    assert "waiting for its worker processes" in err and f"left by pid {holder.pid}" in err


def test_forked_workers_do_not_release_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputLock(out) as lock:
        child = os.fork()
        if child == 0:
            lock.__exit__(None, None, None)
            os._exit(0)
        os.waitpid(child, 0)
        probe = subprocess.run([sys.executable, "-c", PROBE, str(out)], cwd=ROOT, capture_output=True, text=True)
    assert probe.returncode != 0 and f"pid {os.getpid()}" in probe.stderr
    assert not (out / Layout.LOCK).exists()


def test_run_refused_after_taking_the_lock_leaves_no_directory_behind(tmp_path: Path, capsys: Any) -> None:
    write_inputs(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in/a.jsonl"}, out="new/out")

    code, err = run_curate(capsys, "run", recipe, "mixture={method: manual, weights: {nope: 1}}")

    assert code == 2 and "mixture.weights.nope" in err
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------------ damaged state


@pytest.mark.parametrize("name", [".state/recipe.json", "manifest.json"])
def test_damaged_state_is_named_with_a_pointer_to_fresh(built: Path, tmp_path: Path, capsys: Any,
                                                        name: str) -> None:
    (built / name).write_bytes(b'{"recipe_hash": "abc\xff')

    code, err = run_curate(capsys, "run", tmp_path / "r.yaml")

    assert code == 2
    assert str(built / name) in err and "--fresh" in err
    assert run_curate(capsys, "run", tmp_path / "r.yaml", "--fresh")[0] == 0
