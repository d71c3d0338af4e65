"""The shape of a unit of work: task objects, the phases of a plan, the local executor's scheduling, the lazy step
registry and the one path resolver."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from curate import tasks
from curate.executors import LocalExecutor
from curate.layout import Layout
from curate.plan import Plan, build_plan
from curate.recipe import load_recipe
from mixlab.paths import resolve_path
from tests.conftest import ROOT


def _plan(tmp_path: Path, steps: list[Any], partitions: int = 2) -> Plan:
    for domain in ("web", "wiki"):
        (tmp_path / f"{domain}.jsonl").write_text(json.dumps({"text": f"a {domain} document"}) + "\n",
                                                  encoding="utf-8")
    recipe = {"name": "t", "sources": [{"path": f"{d}.jsonl", "domain": d} for d in ("web", "wiki")],
              "steps": steps, "output": {"dir": "out"}, "executor": {"workers": 1, "partitions": partitions}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return build_plan(load_recipe(path))


def _phases(plan: Plan) -> list[tasks.Phase]:
    return [p for seg in plan.segments for p in tasks.segment_phases(plan, seg)] + \
        [tasks.finalize_phase(plan, plan.domains)]


STEPS = ["normalize", "exact_dedup", "minhash_dedup"]


def test_phases_name_their_tasks_with_the_marker_ids_earlier_runs_wrote(tmp_path: Path) -> None:
    plan = _plan(tmp_path, STEPS)
    ids = [[t.id for t in phase.tasks] for phase in _phases(plan)]
    assert ids == [
        ["seg0/u000000", "seg0/u000001"],
        ["reduce/exact_dedup/p0000", "reduce/exact_dedup/p0001"],
        ["seg1/u000000", "seg1/u000001"],
        ["reduce/minhash_dedup/p0000", "reduce/minhash_dedup/p0001"],
        ["combine/minhash_dedup"],
        ["seg2/u000000", "seg2/u000001"],
        ["finalize/data/web", "finalize/data/wiki", "finalize/removed/read", "finalize/removed/normalize",
         "finalize/removed/exact_dedup", "finalize/removed/minhash_dedup", "finalize/errors"],
    ]


def test_every_task_id_round_trips_through_its_marker_and_stats_paths(tmp_path: Path) -> None:
    plan = _plan(tmp_path, STEPS)
    lay = Layout(tmp_path / "out")
    for task in (t for phase in _phases(plan) for t in phase.tasks):
        assert lay.marker(task.id).relative_to(lay.state).as_posix() == task.id + ".done"
        assert lay.task_stats(task.id).relative_to(lay.work / "stats").as_posix() == task.id + ".json"


def test_tasks_read_only_what_tasks_of_earlier_phases_write(tmp_path: Path) -> None:
    plan = _plan(tmp_path, STEPS)
    lay = Layout(tmp_path / "out")
    earlier: set[str] = set()
    for phase in _phases(plan):
        for task in phase.tasks:
            for producer, path in task.reads(plan, lay):
                assert producer in earlier, (task.id, producer)
                assert path.startswith(".work/") and not Path(path).is_absolute()
        earlier |= {t.id for t in phase.tasks}


def test_tasks_and_phases_survive_pickling_unchanged(tmp_path: Path) -> None:
    plan = _plan(tmp_path, STEPS)
    phases = _phases(plan)
    assert pickle.loads(pickle.dumps(phases)) == phases
    again = pickle.loads(pickle.dumps(plan))
    assert [s.cls for s in again.recipe.steps] == [s.cls for s in plan.recipe.steps]


@dataclass(frozen=True)
class _WritePid:
    """A task that records the process it ran in."""

    path: str
    final: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"pid/{Path(self.path).name}"

    def reads(self, plan: Plan, lay: Layout) -> tasks.Reads:
        return ()

    def run(self, worker: tasks.Worker) -> None:
        Path(self.path).write_text(str(os.getpid()))


def _pids(tmp_path: Path, workers: int, n: int) -> tuple[set[int], bool]:
    plan = _plan(tmp_path, ["normalize"])
    todo = [_WritePid(str(tmp_path / f"pid{i}")) for i in range(n)]
    with LocalExecutor(plan, tmp_path / "out", workers) as ex:
        ex.run("test", todo)
        started = ex.pool_started
    return {int(Path(t.path).read_text()) for t in todo}, started


def test_a_phase_of_one_task_runs_in_the_driver_without_a_pool(tmp_path: Path) -> None:
    assert _pids(tmp_path, workers=2, n=1) == ({os.getpid()}, False)


def test_one_worker_runs_every_task_in_the_driver(tmp_path: Path) -> None:
    assert _pids(tmp_path, workers=1, n=3) == ({os.getpid()}, False)


def test_a_phase_of_several_tasks_runs_on_the_pool(tmp_path: Path) -> None:
    pids, started = _pids(tmp_path, workers=2, n=4)
    assert started and os.getpid() not in pids


@dataclass(frozen=True)
class _FinalWaits:
    """A finalize task that records its thread and waits (up to a few seconds) until the other tasks of
    ``arrived`` started: it passes only when they run at once."""

    name: str
    final: ClassVar[bool] = True
    started: ClassVar[list[tuple[str, int]]] = []
    arrived: ClassVar[threading.Barrier | None] = None

    @property
    def id(self) -> str:
        return f"finalize/test/{self.name}"

    def reads(self, plan: Plan, lay: Layout) -> tasks.Reads:
        return ()

    def run(self, worker: tasks.Worker) -> None:
        _FinalWaits.started.append((self.name, threading.get_ident()))
        assert _FinalWaits.arrived is not None
        _FinalWaits.arrived.wait(timeout=5)


def test_with_one_worker_a_phase_of_finalize_tasks_runs_on_threads_of_the_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    _FinalWaits.started, _FinalWaits.arrived = [], threading.Barrier(2)
    plan = _plan(tmp_path, ["normalize"])

    with LocalExecutor(plan, tmp_path / "out", 1) as ex:
        ex.run("write shards", [_FinalWaits("a"), _FinalWaits("b")])
        started = ex.pool_started

    assert not started and not _FinalWaits.arrived.broken
    assert len({thread for _, thread in _FinalWaits.started}) == 2


def test_reading_a_recipe_imports_only_the_steps_it_names(tmp_path: Path) -> None:
    _plan(tmp_path, ["normalize"])
    code = ("import sys; from curate.recipe import load_recipe; r = load_recipe(sys.argv[1]); "
            "print(r.steps[0].cls.__name__, sorted(m for m in sys.modules if m.startswith(('curate.steps.', "
            "'curate.lm', 'curate.classifier'))))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "recipe.yaml")], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.split(maxsplit=1) == ["Normalize", "['curate.steps.base', 'curate.steps.normalize']\n"]


def test_paths_resolve_against_the_naming_file_with_home_expanded(tmp_path: Path) -> None:
    base = tmp_path / "recipes"
    assert resolve_path(base, "data/x.jsonl") == base / "data" / "x.jsonl"
    assert resolve_path(base, "~/x") == Path.home() / "x"
    assert resolve_path(base, "/abs/../x") == Path("/abs/../x")
    assert resolve_path(base, "../x", canonical=True) == (tmp_path / "x").resolve()
