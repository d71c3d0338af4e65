"""The Ray executor (`executor.type: ray`): the same shards as the local executor, with one or two workers and after
losing nodes while tasks run; a clear line when the ray extra is missing or a node does not share the filesystem.

Ray must only ever talk over loopback here. The tests that start Ray (decorated with `loopback_only`) therefore run
in a child pytest inside a private network namespace that has nothing but loopback (`unshare --net`, as root), and
each reports the child's outcome; they are skipped, saying why, where such a namespace cannot be made.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from tests.conftest import QUICKSTART, ROOT

CHILD = "MIXLAB_TEST_LOOPBACK_ONLY"
"""set in the child pytest that runs inside the private network namespace"""
CHILD_TIMEOUT = 1200
CORPUS = ("data", "removed", "errors", "index", "stats")
"""what a run writes that must be the same bytes on every executor (the manifest and card also hold times)"""
LOOPBACK_TESTS: list[str] = []
_child_outcomes: dict[str, tuple[str, str]] | None = None


def _private_network_unavailable() -> str | None:
    """Why a loopback-only network namespace cannot be made here, or None when it can."""
    try:
        probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare --net is not available: {e}"
    if probe.returncode != 0:
        return f"unshare --net is not permitted here: {probe.stderr.strip()[:200]}"
    return None


def _run_in_private_network(node_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Run these tests in a child pytest inside a new network namespace with only loopback up; their outcomes by
    test name: (passed | failed | skipped, message)."""
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"mixlab-ray-tests-{os.getpid()}.xml"
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider --junitxml="$1" "${@:2}"'
    cmd = ["unshare", "--net", "bash", "-c", script, sys.executable, str(report), *node_ids]
    child = subprocess.run(cmd, cwd=ROOT, env={**os.environ, CHILD: "1"}, capture_output=True, text=True,
                           timeout=CHILD_TIMEOUT)
    outcomes: dict[str, tuple[str, str]] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            skipped = case.find("skipped")
            if bad is not None:
                outcomes[case.get("name", "")] = ("failed", f"{bad.get('message')}\n{bad.text or ''}")
            elif skipped is not None:
                outcomes[case.get("name", "")] = ("skipped", skipped.get("message") or "")
            else:
                outcomes[case.get("name", "")] = ("passed", "")
        report.unlink()
    tail = (child.stdout + child.stderr)[-4000:]
    return {name: outcomes.get(name, ("failed", f"did not run in the child pytest:\n{tail}"))
            for name in (i.split("::")[-1] for i in node_ids)}


def loopback_only(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` in the loopback-only child pytest (all such tests of this session in one child), where it
    first checks that no network interface but loopback exists; its fixtures are built there, not here."""
    names = list(inspect.signature(test).parameters)
    LOOPBACK_TESTS.append(test.__name__)

    @functools.wraps(test)
    def wrapper(request: pytest.FixtureRequest) -> None:
        global _child_outcomes
        if os.environ.get(CHILD) == "1":
            interfaces = {name for _, name in socket.if_nameindex()}
            assert interfaces == {"lo"}, f"refusing to start Ray: network interfaces other than loopback: {interfaces}"
            test(**{n: request.getfixturevalue(n) for n in names})
            return
        pytest.importorskip("ray", reason="the ray extra is not installed: pip install mixlab[ray]")
        if (why := _private_network_unavailable()) is not None:
            pytest.skip(f"Ray tests run in a loopback-only network namespace; {why}")
        if _child_outcomes is None:
            here = [i.nodeid for i in request.session.items
                    if i.nodeid.split("::")[0].endswith(Path(__file__).name) and i.name in LOOPBACK_TESTS]
            _child_outcomes = _run_in_private_network(here)
        outcome, message = _child_outcomes[test.__name__]
        if outcome == "skipped":
            pytest.skip(message)
        if outcome == "failed":
            pytest.fail(f"in the loopback-only network namespace: {message}", pytrace=False)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    return wrapper


def corpus_hashes(out: Path) -> dict[str, str]:
    """sha256 of every file of the corpus proper (shards, removed, errors, index, stats, mixture), by path."""
    files = [p for d in CORPUS for p in (out / d).rglob("*") if p.is_file()] + [out / "mixture.json"]
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def curate_run(recipe: Path, out: Path, *args: str) -> None:
    from curate.cli import main

    assert main(["--quiet", "run", str(recipe), "--output", str(out), *args]) == 0


# ------------------------------------------------------------------------------------- without starting Ray


def test_without_the_ray_extra_type_ray_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from tests.conftest import run_curate, small_recipe, write_inputs

    write_inputs(tmp_path)
    recipe = small_recipe(tmp_path, {"path": "a.jsonl"})
    monkeypatch.setitem(sys.modules, "ray", None)
    code, err = run_curate(capsys, "run", recipe, "--executor", "ray")
    assert code == 2
    assert err.strip().splitlines() == ["curate: error: executor.type ray needs the ray extra: pip install mixlab[ray]"]
    assert not (tmp_path / "out").exists()


def test_where_tasks_run_does_not_change_the_recipe_hash(tmp_path: Path) -> None:
    from curate.recipe import load_recipe
    from tests.conftest import small_recipe, write_inputs

    write_inputs(tmp_path)
    recipe = small_recipe(tmp_path, {"path": "a.jsonl"})
    local = load_recipe(recipe)
    ray = load_recipe(recipe, ["executor.type=ray", "executor.address=auto", "executor.max_retries=7",
                               "executor.num_cpus_per_task=2"])
    assert ray.hash() == local.hash()


def test_address_without_the_ray_executor_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.conftest import run_curate, small_recipe, write_inputs

    write_inputs(tmp_path)
    code, err = run_curate(capsys, "run", small_recipe(tmp_path, {"path": "a.jsonl"}), "--address", "auto")
    assert code == 2
    assert err.strip() == "curate: error: --address: only with --executor ray (or executor.type: ray in the recipe)"


def test_partitions_default_to_one_per_64_mib_of_input_up_to_16_then_one_per_gib(tmp_path: Path) -> None:
    from curate.recipe import default_partitions

    def sized(name: str, size: int) -> Path:
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(size)  # sparse: no disk used
        return path

    assert default_partitions([sized("small.jsonl", 2**20)]) == 1
    assert default_partitions([sized("mid.jsonl", 100 * 2**20)]) == 2
    assert default_partitions([sized("mid.jsonl.zst", 100 * 2**20)]) == 7  # compressed counts 4 x
    assert default_partitions([sized("gib.jsonl", 16 * 2**30)]) == 16
    assert default_partitions([sized("big.jsonl", 40 * 2**30 + 1)]) == 41
    assert default_partitions([sized("big.jsonl.gz", 10 * 2**30)]) == 40  # compressed counts 4 x
    assert default_partitions([sized("huge.jsonl", 5000 * 2**30)]) == 4096


def test_an_address_with_nothing_listening_is_refused_at_once_naming_it() -> None:
    from curate.executors.ray import _probe_address
    from mixlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"executor.address: nothing answers at 127.0.0.1:1 "):
        _probe_address("127.0.0.1:1", timeout=2)


def test_a_node_names_the_inputs_and_output_it_does_not_see_as_the_driver_does(tmp_path: Path) -> None:
    from curate.executors.ray import _node_view

    same, other = tmp_path / "same.jsonl", tmp_path / "other.jsonl"
    same.write_text("abc")
    other.write_text("abcdef")
    probe = tmp_path / "probe"
    probe.write_text("token-1")
    files = [(str(same), 3), (str(other), 3), (str(tmp_path / "gone.jsonl"), 1)]
    problems = _node_view(files, str(probe), "token-2", str(tmp_path / "reply"))
    assert problems == [f"{other}: 6 bytes here, 3 on the driver",
                        f"{tmp_path / 'gone.jsonl'}: No such file or directory",
                        f"the output directory: {probe} holds another run's probe (another directory under the "
                        "same path)"]
    unseen = _node_view([], str(tmp_path / "out" / "probe"), "token-1", str(tmp_path / "out" / "reply"))
    assert unseen == [f"the output directory: {tmp_path / 'out' / 'probe'}: No such file or directory"]
    assert _node_view(files[:1], str(probe), "token-1", str(tmp_path / "reply")) == []
    assert (tmp_path / "reply").read_text() == "token-1"


# ------------------------------------------------------------------------- Ray, in a loopback-only namespace


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fastText quality classifier trained on the quickstart's wiki text against its web text."""
    from curate.cli import main

    out = tmp_path_factory.mktemp("quality") / "model"
    data = ROOT / "recipes" / "data" / "quickstart"
    assert main(["--quiet", "classifier", "train", "--positive", str(data / "wiki" / "wiki_demo.txt"),
                 "--negative", str(data / "web" / "c4_demo.jsonl"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def every_step_recipe(tmp_path_factory: pytest.TempPathFactory, quickstart_lm: Path, quality_model: Path) -> Path:
    """The quickstart recipe (normalize, langid, exact_dedup, line_dedup, quality, perplexity, minhash_dedup) with
    the two steps it lacks, quality_classifier and code_quality, 4 partitions, and one more source of copies so that
    the dedup steps remove something: 10 web pages again (exact duplicates) and 10 Wikipedia articles with one word
    changed (near duplicates; wiki is out of line_dedup's scope, which would otherwise strip their shared lines)."""
    data = ROOT / "recipes" / "data" / "quickstart"
    web = (data / "web" / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()[:10]
    wiki = (data / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()[:10]
    where = tmp_path_factory.mktemp("recipe")
    (where / "web_copies.jsonl").write_text("\n".join(web) + "\n", encoding="utf-8")
    (where / "wiki_edits.jsonl").write_text("".join(json.dumps({"text": t.replace(" the ", " a ", 1)}) + "\n"
                                                    for t in wiki), encoding="utf-8")
    raw = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    for source in raw["sources"]:
        source["path"] = str(QUICKSTART.parent / source["path"])
    raw["sources"] += [{"path": str(where / "web_copies.jsonl"), "domain": "web"},
                       {"path": str(where / "wiki_edits.jsonl"), "domain": "wiki"}]
    steps = raw["steps"]
    at = next(i for i, s in enumerate(steps) if isinstance(s, dict) and "perplexity" in s)
    steps[at]["perplexity"]["models"] = {"en": str(quickstart_lm)}
    steps[at:at] = [{"quality_classifier": {"domains": ["web"], "model": str(quality_model), "threshold": 0.01}},
                    {"code_quality": {"domains": ["code"]}}]
    assert {next(iter(s)) for s in steps} == {"normalize", "langid", "exact_dedup", "line_dedup", "quality",
                                              "quality_classifier", "code_quality", "perplexity", "minhash_dedup"}
    raw["executor"] = {"workers": 2, "partitions": 4}
    path = where / "every_step.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray cluster on this machine: a head node with one CPU (the driver's), on loopback."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    yield c
    c.shutdown()


@loopback_only
def test_every_step_writes_the_same_bytes_locally_and_on_ray_with_one_and_two_workers(
        tmp_path: Path, every_step_recipe: Path, cluster: Any) -> None:
    curate_run(every_step_recipe, tmp_path / "local", "--workers", "2")
    local = corpus_hashes(tmp_path / "local")
    assert {p.split("/")[1] for p in local if p.startswith("removed/")} >= {"exact_dedup", "minhash_dedup",
                                                                           "perplexity", "quality"}

    curate_run(every_step_recipe, tmp_path / "ray1", "--executor", "ray", "--address", cluster.address)
    assert corpus_hashes(tmp_path / "ray1") == local

    second = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        curate_run(every_step_recipe, tmp_path / "ray2", "--executor", "ray", "--address", cluster.address)
    finally:
        cluster.remove_node(second)
    assert corpus_hashes(tmp_path / "ray2") == local
    assert "2 node(s), 2 CPUs" in (tmp_path / "ray2" / "logs" / "run.log").read_text()


@loopback_only
def test_a_task_that_fails_stops_the_run_with_the_same_one_line_error_as_locally(
        tmp_path: Path, cluster: Any, capsys: pytest.CaptureFixture) -> None:
    import gzip

    from tests.conftest import run_curate, small_recipe

    full = gzip.compress(b"".join(json.dumps({"text": f"document {i}"}).encode() + b"\n" for i in range(200)))
    (tmp_path / "in.jsonl.gz").write_bytes(full[: len(full) // 2])
    recipe = small_recipe(tmp_path, {"path": "in.jsonl.gz", "on_error": "fail"})
    code, err = run_curate(capsys, "run", recipe, "--executor", "ray", "--address", cluster.address)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("curate: error: in.jsonl.gz: compressed stream is truncated or corrupt")
    assert "ray: task seg0/u000000 failed: " in (tmp_path / "out" / "logs" / "run.log").read_text()


def _alive_nodes(cluster: Any) -> int:
    return sum(1 for n in cluster.global_state.node_table() if n["Alive"])


@loopback_only
def test_a_node_that_does_not_see_the_inputs_and_output_is_named_before_any_task_runs(
        tmp_path: Path, cluster: Any, capsys: pytest.CaptureFixture) -> None:
    from tests.conftest import run_curate, small_recipe, write_inputs

    data = write_inputs(tmp_path / "in")
    recipe = small_recipe(tmp_path, {"path": "in/a.jsonl"})
    ray_cli = Path(sys.executable).with_name("ray")
    # a node whose filesystem differs: tmp_path is an empty tmpfs in its own mount namespace
    script = f'mount -t tmpfs tmpfs {tmp_path} && exec "$0" start --address={cluster.address} ' \
             '--node-ip-address=127.0.0.1 --num-cpus=1 --block'
    before = _alive_nodes(cluster)
    node = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", script, str(ray_cli)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _alive_nodes(cluster) == before:
            assert node.poll() is None and time.monotonic() < deadline, "the extra node did not join"
            time.sleep(0.2)
        code, err = run_curate(capsys, "run", recipe, "--executor", "ray", "--address", cluster.address)
    finally:
        os.killpg(node.pid, 15)
        node.wait(timeout=60)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "must be on a filesystem every node shares" in err
    assert f"(127.0.0.1): {data}: No such file or directory; the output directory: {tmp_path / 'out'}" in err
    assert not list((tmp_path / "out" / ".state").rglob("*.done"))


def _lines_corpus(where: Path, files: int = 6) -> Path:
    """``files`` JSONL files of quickstart web pages, each with the same five pages appended (exact duplicates)."""
    lines = (ROOT / "recipes/data/quickstart/web/c4_demo.jsonl").read_text(encoding="utf-8").splitlines()
    for i in range(files):
        (where / f"in{i}.jsonl").write_text("\n".join(lines[i * 40:(i + 1) * 40] + lines[:5]) + "\n",
                                            encoding="utf-8")
    recipe = {"name": "lost", "sources": [{"path": "in*.jsonl", "domain": "web"}],
              "steps": ["normalize", "exact_dedup", {"line_dedup": {"min_count": 2}}, "minhash_dedup"],
              "output": {"dir": "out"}, "executor": {"workers": 2, "partitions": 4}}
    path = where / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def _wait_for(pattern: str, root: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert time.monotonic() < deadline, f"no {pattern} under {root} after {timeout} s"
        time.sleep(0.05)


@loopback_only
def test_a_run_that_loses_nodes_during_map_and_reduce_finishes_with_the_same_bytes_and_logs_the_retries(
        tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    from curate.executors.ray import FAULT_STALL_TASKS

    recipe = _lines_corpus(tmp_path)
    curate_run(recipe, tmp_path / "clean", "--workers", "2")
    fast_failure_detection = {"health_check_failure_threshold": 2, "health_check_period_ms": 500,
                              "health_check_initial_delay_ms": 0}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                      "_system_config": fast_failure_detection})
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        # each doomed node stalls on the tasks of one phase, so it surely holds one when it is killed
        in_map = c.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars={FAULT_STALL_TASKS: "seg0/"})
        in_reduce = c.add_node(num_cpus=1, node_ip_address="127.0.0.1",
                               env_vars={FAULT_STALL_TASKS: "reduce/exact_dedup/"})
        out = tmp_path / "ray"
        killed: list[str] = []

        def kill_nodes() -> None:
            for pattern, node in (("seg0/*.done", in_map), ("reduce/exact_dedup/*.done", in_reduce)):
                _wait_for(pattern, out / ".state")
                time.sleep(1)  # the node has started its stalled task (each task is spread to another node)
                c.remove_node(node, allow_graceful=False)
                killed.append(pattern)

        killer = threading.Thread(target=kill_nodes, daemon=True)
        killer.start()
        curate_run(recipe, out, "--executor", "ray", "--address", c.address)
        killer.join(timeout=5)
    finally:
        c.shutdown()
    assert killed == ["seg0/*.done", "reduce/exact_dedup/*.done"]
    assert corpus_hashes(out) == corpus_hashes(tmp_path / "clean")
    log = (out / "logs" / "run.log").read_text(encoding="utf-8")
    retried = [line for line in log.splitlines() if "lost on attempt 1" in line]
    assert any("task seg0/u" in line and "NodeDiedError" in line for line in retried), log
    assert any("task reduce/exact_dedup/p" in line and "NodeDiedError" in line for line in retried), log
    assert re.search(r"ray: normalize: .* [1-9]\d* retried \(seg0/u\d+", log), log
    assert re.search(r"ray: exact_dedup reduce: .* [1-9]\d* retried \(reduce/exact_dedup/p\d+", log), log
