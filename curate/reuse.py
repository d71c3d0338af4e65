"""Which finished tasks of an interrupted run can be reused: before a resume, the files that will still be read are
checked against the checksums in their tasks' markers, and a task whose file is damaged, truncated or missing loses
its marker, so that it runs again.

A file is checked only while something will still read it: the outputs of finalize tasks and every task's stats
(read when the manifest is written), and the files that a task which will run reads. A work file whose readers have
all finished is not needed (runs delete such files as they go). When a task must run again, the files it reads are
needed in turn, so damage found late in the plan can reach back to the input files themselves, which the input
fingerprints guard. Tasks are deterministic: a task run again writes the same bytes, so tasks that read its earlier
output stay valid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from curate.integrity import check_file
from curate.layout import Layout
from curate.plan import Plan
from curate.tasks import MapTask, finalize_phase, segment_phases
from mixlab.logs import log


@dataclass(frozen=True)
class Node:
    """A task of the plan and what it reads: (producing task, path prefix relative to the output root)."""

    task: str
    reads: tuple[tuple[str, str], ...]
    final: bool = False
    """a finalize task: its outputs are the corpus, always needed"""


def task_graph(lay: Layout, plan: Plan, domains: list[str]) -> list[Node]:
    """Every task of ``plan`` in the order phases run, with the files each reads. ``domains``: the output domains
    whose finalize tasks to include."""
    phases = [phase for seg in plan.segments for phase in segment_phases(plan, seg)]
    phases.append(finalize_phase(plan, domains))
    return [Node(t.id, t.reads(plan, lay), t.final) for phase in phases for t in phase.tasks]


def output_domains(lay: Layout, plan: Plan) -> list[str]:
    """The domains with kept documents, from the files the last segment's finished map tasks recorded."""
    last = plan.segments[-1].index
    final = lay.rel(lay.final_root, folder=True)
    domains = set()
    for u in range(len(plan.units)):
        record = lay.read_marker(MapTask(last, u).id)
        for path in record["files"] if record else ():
            if path.startswith(final):
                domains.add(path[len(final):].rsplit("/", 1)[0])
    return sorted(domains)


def invalidate_damaged(lay: Layout, plan: Plan) -> list[str]:
    """Check the files of finished tasks that will still be read; remove the marker of each task with a damaged,
    truncated or missing file (or a damaged marker) so that it runs again. Returns the tasks to run again, in plan
    order."""
    finalized = lay.state / "finalize" / "data"
    domains = set(output_domains(lay, plan))
    if finalized.exists():
        domains.update(m.relative_to(finalized).as_posix()[:-len(".done")] for m in finalized.rglob("*.done"))
    nodes = task_graph(lay, plan, sorted(domains))
    needed: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        needed[node.task].append(lay.task_stats(node.task).relative_to(lay.root).as_posix())
        if node.final:
            needed[node.task].append("")
    again: list[tuple[str, bool, str]] = []
    for node in reversed(nodes):
        runs = not lay.done(node.task)
        if not runs:
            problem = _problem(lay, node.task, needed[node.task])
            if problem is not None:
                lay.marker(node.task).unlink()
                again.append((node.task, *problem))
                runs = True
        if runs:
            for producer, prefix in node.reads:
                needed[producer].append(prefix)
    for task, damage, message in reversed(again):
        (log.warning if damage else log.info)(f"{message}; task {task} runs again")
    return [task for task, _, _ in reversed(again)]


def _problem(lay: Layout, task: str, prefixes: list[str]) -> tuple[bool, str] | None:
    """For a finished task whose needed files do not match its marker: whether that is damage (rather than a work
    file deleted once read), and a message naming the file. None when they all match."""
    record = lay.read_marker(task)
    if record is None:
        marker = lay.marker(task)
        earlier = marker.exists() and marker.stat().st_size == 0
        what = "a marker without checksums (from an earlier mixlab)" if earlier else "damaged completion marker"
        return not earlier, f"{marker.relative_to(lay.root).as_posix()}: {what}"
    for path, rec in sorted(record["files"].items()):
        if any(path.startswith(p) for p in prefixes):
            problem = check_file(lay.root, path, rec)
            if problem is not None:
                deleted_after_use = problem == "missing" and path.startswith(".work/") \
                    and not path.startswith(".work/stats/")
                return not deleted_after_use, f"{path}: {problem}"
    return None


__all__ = ["Node", "task_graph", "output_domains", "invalidate_damaged"]
