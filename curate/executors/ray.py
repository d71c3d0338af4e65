"""The Ray executor: every task of a phase runs as a Ray task on a cluster whose nodes share the inputs' and the
output's filesystem; a task lost with its worker process or its node runs again.

Tasks are idempotent (each writes its files under temporary names, renames them, then writes its marker), so a
task that runs again, even next to a straggling copy of itself, writes the same bytes: the corpus is the same as
the local executor's. Retries are the driver's, not Ray's (``max_retries=0`` on every Ray task), so that each lost
attempt is logged to ``OUT/logs/run.log`` with its task id and the reason Ray gives. An exception raised by a task
itself (a bug, a bad input with ``on_error: fail``, a full disk) is not retried: it stops the run as it would
locally.

Ray: https://docs.ray.io (Moritz et al. 2018, "Ray: A Distributed Framework for Emerging AI Applications").
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from curate.layout import Layout
from curate.plan import Plan
from mixlab.errors import ConfigError, RunError
from mixlab.logs import bars_enabled, log

if TYPE_CHECKING:
    from curate.recipe import Executor as ExecutorSettings
    from curate.tasks import Task, Worker

FAULT_STALL_TASKS = "MIXLAB_FAULT_STALL_TASKS"
"""environment variable of a Ray node (for lost-node tests): comma-separated task id prefixes; a task whose id
starts with one sleeps for ``STALL_SECONDS`` before it runs there, so that it is surely running when the test
kills that node"""
STALL_SECONDS = 600.0
CHECK_SECONDS = 120.0
"""how long the shared-filesystem check waits for every node's answer"""
SHOWN = 5
"""task ids or paths named in one log line, before '... and N more'"""

_workers: dict[str, "Worker"] = {}
"""The :class:`curate.tasks.Worker` of this Ray worker process, by run token: built by its first task of a run,
reused by the next ones (models stay loaded, decisions cached)."""


RAY_NOTICES = ("ray._private.authentication.authentication_token_setup",)
"""Ray loggers whose start-up notices (e.g. "Token authentication is enabled for this Ray cluster") go to the run
log rather than the terminal"""


class _ToRunLog(logging.Filter):
    """Sends a Ray logger's records to mixlab's log at DEBUG (``OUT/logs/run.log``; the terminal under
    ``--verbose``) instead of Ray's console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        log.debug(f"ray: {record.getMessage()}")
        return False


def quiet_ray_notices() -> None:
    """Send the notices of the Ray loggers :data:`RAY_NOTICES` to the run log instead of the terminal.
    Idempotent."""
    for name in RAY_NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ToRunLog) for f in logger.filters):
            logger.addFilter(_ToRunLog())


@contextmanager
def stderr_to_run_log() -> Iterator[None]:
    """While Ray starts or connects, what is written to this process's file descriptor 2 goes to the run log
    (``log.debug``, one line each) instead of the terminal: Ray's C++ core worker writes its warnings there (e.g.
    "network_util.cc: Failed to determine local IP via external connectivity to 8.8.8.8" on a machine without
    internet access), which a Python logging setting cannot reach. Processes Ray starts meanwhile write their own
    logs under Ray's session directory."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.debug(f"ray: {line}")


def require_ray() -> Any:
    """The ``ray`` module; ConfigError (one line) when the ray extra is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor.type ray needs the ray extra: pip install mixlab[ray]") from None
    return ray


def _run_task(plan_box: list[Any], root: str, token: str, task: "Task") -> dict[str, Any]:
    """Body of every Ray task: run ``task`` with this process's Worker for the run ``token`` (built from the plan
    in ``plan_box[0]``, an object ref fetched only on the process's first task of the run). Returns the node id
    and the seconds the task itself took."""
    import ray

    from curate.tasks import Worker

    stall = [p for p in os.environ.get(FAULT_STALL_TASKS, "").split(",") if p]
    if any(task.id.startswith(p) for p in stall):
        time.sleep(STALL_SECONDS)
    worker = _workers.get(token)
    if worker is None:
        _workers.clear()  # one run at a time per process
        worker = _workers[token] = Worker(ray.get(plan_box[0]), Path(root))
    started = time.perf_counter()
    task.run(worker)
    return {"node": ray.get_runtime_context().get_node_id(), "seconds": time.perf_counter() - started}


def _node_view(files: list[tuple[str, int]], probe: str, token: str, reply: str) -> list[str]:
    """Run on one node: what it sees differently from the driver. ``files`` are (path, size) of the inputs as the
    driver sees them; ``probe`` a file the driver wrote under the output directory holding ``token``; ``reply`` a
    file this node writes there for the driver to find. Returns one line per problem, empty when all agree."""
    problems = []
    for path, size in files:
        try:
            seen = os.stat(path).st_size
        except OSError as e:
            problems.append(f"{path}: {e.strerror or e}")
            continue
        if seen != size:
            problems.append(f"{path}: {seen} bytes here, {size} on the driver")
    try:
        with open(probe, encoding="utf-8") as f:
            if f.read() != token:
                return [*problems, f"the output directory: {probe} holds another run's probe (another directory "
                                   "under the same path)"]
        with open(reply, "w", encoding="utf-8") as f:
            f.write(token)
    except OSError as e:
        problems.append(f"the output directory: {e.filename}: {e.strerror or e}")
    return problems


def _shorten(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _probe_address(address: str, timeout: float = 10.0) -> None:
    """Fail fast, naming ``address``, when a ``HOST:PORT`` address has nothing listening (``ray.init`` would retry
    for minutes); ``auto`` and ``ray://`` addresses are left to Ray, which bounds its own wait. Raises ConfigError."""
    import socket

    if address == "auto" or "://" in address or address.count(":") != 1:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"executor.address: nothing answers at {address} ({e.strerror or e}); start the head node "
                          "with `ray start --head` there, or give the address `ray start` printed") from None


class RayExecutor:
    """Runs each phase's tasks as Ray tasks (``num_cpus_per_task`` CPUs each), retrying a task whose worker or node
    died up to ``max_retries`` times. With ``address`` None it starts a Ray instance on this machine with
    ``workers`` CPUs (only on loopback) and stops it at the end; otherwise it joins that cluster (``auto``,
    ``HOST:PORT`` or ``ray://HOST:PORT``) and first checks that every node sees the inputs and the output."""

    def __init__(self, plan: Plan, root: Path, workers: int, settings: "ExecutorSettings") -> None:
        self.plan, self.root, self.workers = plan, root, workers
        self.address, self.max_retries = settings.address, settings.max_retries
        self.num_cpus_per_task = settings.num_cpus_per_task
        self.token = uuid.uuid4().hex
        self._ray: Any = None
        self._owns_ray = False
        self._remote: Any = None
        self._plan_box: list[Any] = []

    def __enter__(self) -> "RayExecutor":
        ray = self._ray = require_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                       "configure_logging": True}
            quiet_ray_notices()
            try:
                with stderr_to_run_log(), warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        if self.address is None:
                            ray.init(address="local", num_cpus=self.workers, _node_ip_address="127.0.0.1",
                                     **options)
                        else:
                            _probe_address(self.address)
                            ray.init(address=self.address, **options)
                    finally:
                        for w in caught:
                            log.debug(f"ray: {w.category.__name__}: {w.message}")
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = self.address or "a local instance"
                raise ConfigError(f"executor.address: cannot start or reach Ray at {where}: "
                                  f"{str(e).strip().splitlines()[0][:300]}") from None
            self._owns_ray = True
        try:
            if not (self._owns_ray and self.address is None):  # a cluster, not the one-node instance started here
                self._check_shared_filesystem()
            self._plan_box = [ray.put(self.plan)]
            self._remote = ray.remote(_run_task).options(num_cpus=self.num_cpus_per_task, max_retries=0,
                                                         retry_exceptions=False, scheduling_strategy="SPREAD")
            resources = ray.cluster_resources()
            nodes = [n for n in ray.nodes() if n["Alive"]]
            log.info(f"ray: {len(nodes)} node(s), {resources.get('CPU', 0):g} CPUs, {self.num_cpus_per_task:g} "
                     f"per task, {self.max_retries} retries of a lost task")
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._owns_ray and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False

    def _check_shared_filesystem(self) -> None:
        """ConfigError, before any task, naming each node that does not see an input file (or sees another size)
        or the output directory (a probe file written here, read and answered there)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, lay = self._ray, Layout(self.root)
        files = [(str(f), f.stat().st_size) for fs in self.plan.recipe.files for f in fs]
        lay.work.mkdir(parents=True, exist_ok=True)
        probe = lay.work / f"ray-probe-{self.token}"
        probe.write_text(self.token, encoding="utf-8")
        view = ray.remote(_node_view)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        replies = {n["NodeID"]: lay.work / f"ray-probe-{self.token}-{n['NodeID'][:16]}" for n in nodes}
        refs = {}
        for n in nodes:
            on_node = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            refs[n["NodeID"]] = view.options(num_cpus=0, max_retries=0, scheduling_strategy=on_node).remote(
                files, str(probe), self.token, str(replies[n["NodeID"]]))
        where = {n["NodeID"]: f"node {n['NodeID'][:12]} ({n['NodeManagerAddress']})" for n in nodes}
        problems = []
        try:
            for node, ref in refs.items():
                try:
                    seen = ray.get(ref, timeout=CHECK_SECONDS)
                except ray.exceptions.GetTimeoutError:
                    seen = [f"no answer within {CHECK_SECONDS:g} s"]
                except ray.exceptions.RayError as e:  # the node left the cluster: it will get no task
                    log.warning(f"ray: {where[node]} left during the shared-filesystem check ({type(e).__name__})")
                    continue
                if not seen and not replies[node].exists():
                    seen = [f"it wrote {replies[node]}, which this machine does not see"]
                if seen:
                    problems.append(f"{where[node]}: {'; '.join(seen[:SHOWN])}" + (
                        f"; and {len(seen) - SHOWN} more" if len(seen) > SHOWN else ""))
        finally:
            for path in [probe, *replies.values()]:
                path.unlink(missing_ok=True)
        if problems:
            raise ConfigError(f"executor.type ray: the inputs and the output directory must be on a filesystem "
                              f"every node shares, under the same paths (see the README, section Ray): "
                              f"{' | '.join(problems)}")

    def run(self, description: str, tasks: Sequence["Task"]) -> None:
        """Run every task of one phase as a Ray task and return when all have finished. A task lost with its
        worker or node (Ray's WorkerCrashedError, NodeDiedError, OutOfMemoryError, ObjectLostError) runs again, up
        to ``max_retries`` times, each loss logged; after that, RunError. A task's own exception stops the phase
        (the others are cancelled) and is raised as the task raised it."""
        if not tasks:
            return
        from tqdm import tqdm

        ray = self._ray
        lost_kinds = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                      ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError)
        attempts: dict[str, int] = {}
        pending: dict[Any, Task] = {}

        def submit(task: Task) -> None:
            attempts[task.id] = attempts.get(task.id, 0) + 1
            pending[self._remote.remote(self._plan_box, str(self.root), self.token, task)] = task

        for task in tasks:
            submit(task)
        started, done, failed, busy = time.perf_counter(), 0, 0, 0.0
        retried: list[str] = []
        nodes: set[str] = set()
        bar = tqdm(total=len(tasks), desc=description, unit="task", disable=not bars_enabled(), dynamic_ncols=True,
                   leave=False)
        try:
            while pending:
                ray.wait(list(pending), num_returns=1)  # block until one is done, then take all that are
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        info = ray.get(ref)
                    except lost_kinds as e:
                        failed += 1
                        reason = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                        if attempts[task.id] > self.max_retries:
                            raise RunError(f"task {task.id} was lost {attempts[task.id]} times (executor.max_retries "
                                           f"{self.max_retries}); last: {reason}. Run again to resume") from None
                        log.warning(f"ray: task {task.id} lost on attempt {attempts[task.id]} ({reason}); running "
                                    f"it again")
                        retried.append(task.id)
                        submit(task)
                    except ray.exceptions.RayTaskError as e:
                        failed += 1
                        log.debug(f"ray: task {task.id} failed:\n{e}")
                        if not isinstance(e.cause, Exception):  # an exception Ray could not bring back
                            raise RunError(f"task {task.id} failed: {' '.join(str(e).split())[:500]}") from None
                        log.info(f"ray: task {task.id} failed: {type(e.cause).__name__}: {e.cause}")
                        raise e.cause from None
                    else:
                        done += 1
                        busy += info["seconds"]
                        nodes.add(info["node"])
                        bar.update(1)
                        bar.set_postfix(retried=len(retried), failed=failed, refresh=False)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        again = f" ({_shorten(retried)})" if retried else ""
        rate = done / max(seconds, 1e-9)
        log.info(f"ray: {description}: {done} task{'s' * (done != 1)} in {seconds:.1f} s ({rate:.1f} tasks/s, "
                 f"{busy:.1f} task-seconds on {len(nodes)} node(s)), {len(retried)} retried{again}, {failed} failed")


__all__ = ["RayExecutor", "require_ray", "FAULT_STALL_TASKS"]
