"""The tasks of a plan: what one worker does for one unit, one partition or one domain.

A task is a small frozen object of plain fields (picklable, so any executor can ship it to a process or a node):
it owns its ``id`` (the name of its completion marker), names the files it reads through :class:`Layout`, and
``run(worker)`` does the work. A run is a sequence of phases (:func:`segment_phases`, :func:`finalize_phase`);
executors only decide where and when the tasks of a phase run. Every task writes its files atomically, then its
stats, then its marker, and returns nothing an executor must keep.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.arrow_io import AtomicIPCWriter, ShardWriter, iter_ipc, read_ipc
from curate.layout import Layout, read_json, write_json_atomic
from curate.plan import Plan, Segment, step_context
from curate.prefetch import prefetch
from curate.readers import ERROR_SCHEMA, READ_STEP, read_unit
from curate.recipe import KeepRemoved, StepSpec
from curate.steps import GlobalStep, MapStep, Step
from curate.steps.base import Decisions, SideStore, histogram

SPILL_BUFFER_BYTES = 64 * 2**20


class Worker:
    """Per-process state: step instances (models loaded once) and cached decisions. Built from ``(plan, root)``
    alone, in every process (or on every node) that runs tasks."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan, self.layout = plan, Layout(root)
        self.ctx = step_context(plan.recipe)
        self._steps: dict[str, Step] = {}
        self._decisions: dict[str, Decisions] = {}

    def step(self, spec: StepSpec) -> Step:
        if spec.name not in self._steps:
            inst = spec.cls(spec.params, self.ctx)
            inst.setup()
            self._steps[spec.name] = inst
        return self._steps[spec.name]

    def decisions(self, spec: StepSpec) -> Decisions:
        """What ``apply`` reads: the combined decisions, or else every partition's reduction."""
        if spec.name not in self._decisions:
            self._decisions[spec.name] = reduced_tables(self.layout, spec.name, self.ctx.partitions,
                                                        spec.cls.has_combine)
        return self._decisions[spec.name]

    def side_store(self, spec: StepSpec) -> SideStore | None:
        step = self.step(spec)
        if not isinstance(step, GlobalStep) or step.side_schema is None:
            return None
        own = [read_ipc(self.layout.side(spec.name, u)) for u in range(len(self.plan.units))]
        return SideStore(own + step.reference_side())


def reduced_tables(lay: Layout, step: str, partitions: int, combined: bool = False) -> Decisions:
    cache: dict[int, pa.Table] = {}

    def load(p: int) -> pa.Table:
        if p not in cache:
            cache[p] = read_ipc(lay.combined(step) if combined else lay.decisions(step, p))
        return cache[p]

    return Decisions(loader=load, count=1 if combined else partitions)


# ------------------------------------------------------------------------------------------------ task objects

Reads = tuple[tuple[str, str], ...]
"""What a task reads: (id of the task that writes it, path relative to the output root; a folder ends in ``/`` and
stands for the files of that task below it)."""


class Task(Protocol):
    """A unit of work of a phase: what every executor schedules."""

    final: ClassVar[bool]
    """a finalize task: what it writes is the corpus itself"""

    @property
    def id(self) -> str:
        """The task's name: its completion marker is ``Layout.marker(id)``, its stats ``Layout.task_stats(id)``."""
        ...

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        """The files the task reads, each with the task that writes it (see :data:`Reads`)."""
        ...

    def run(self, worker: Worker) -> None:
        """Do the work: write the outputs, the stats, then the completion marker."""
        ...


def _key_segment(plan: Plan, step: str) -> int:
    """The segment whose map tasks emit the keys of global step ``step``."""
    return next(seg.index for seg in plan.segments if seg.keys is not None and seg.keys.name == step)


@dataclass(frozen=True)
class MapTask:
    """Segment ``segment`` of the plan on input unit ``unit`` (:func:`run_map`)."""

    segment: int
    unit: int
    final: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"seg{self.segment}/u{self.unit:06d}"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        if self.segment == 0:
            return ()
        reads = [(MapTask(self.segment - 1, self.unit).id, lay.rel(lay.segment_out(self.segment - 1, self.unit)))]
        apply = plan.segments[self.segment].apply
        if apply is not None and apply.cls.has_combine:
            reads.append((CombineTask(apply.name).id, lay.rel(lay.combined(apply.name))))
        elif apply is not None:
            reads += [(ReduceTask(apply.name, p).id, lay.rel(lay.decisions(apply.name, p)))
                      for p in range(plan.recipe.model.executor.partitions)]
        return tuple(reads)

    def run(self, worker: Worker) -> None:
        run_map(worker, worker.plan.segments[self.segment], self.unit)


@dataclass(frozen=True)
class ReduceTask:
    """Shuffle partition ``partition`` of global step ``step``, reduced to decisions (:func:`run_reduce`)."""

    step: str
    partition: int
    final: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"reduce/{self.step}/p{self.partition:04d}"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        seg = _key_segment(plan, self.step)
        spills = [(MapTask(seg, u).id, lay.rel(lay.spill_dir(self.step, self.partition), folder=True))
                  for u in range(len(plan.units))]
        return tuple(spills) + _side_reads(plan, lay, self.step, seg)

    def run(self, worker: Worker) -> None:
        run_reduce(worker, worker.plan.spec(self.step), self.partition)


@dataclass(frozen=True)
class CombineTask:
    """The whole-corpus pass over every partition's reduction of global step ``step`` (:func:`run_combine`)."""

    step: str
    final: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"combine/{self.step}"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        reduced = [(ReduceTask(self.step, p).id, lay.rel(lay.decisions(self.step, p)))
                   for p in range(plan.recipe.model.executor.partitions)]
        return tuple(reduced) + _side_reads(plan, lay, self.step, _key_segment(plan, self.step))

    def run(self, worker: Worker) -> None:
        run_combine(worker, worker.plan.spec(self.step))


def _side_reads(plan: Plan, lay: Layout, step: str, seg: int) -> Reads:
    return tuple((MapTask(seg, u).id, lay.rel(lay.side(step, u))) for u in range(len(plan.units)))


@dataclass(frozen=True)
class FinalizeDomainTask:
    """The kept documents of ``domain``, in input order, cut into shards (:func:`run_finalize_domain`)."""

    domain: str
    final: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"finalize/data/{self.domain}"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        last = plan.segments[-1].index
        return tuple((MapTask(last, u).id, lay.rel(lay.final_dir(self.domain), folder=True))
                     for u in range(len(plan.units)))

    def run(self, worker: Worker) -> None:
        run_finalize_domain(worker, self.domain)


@dataclass(frozen=True)
class FinalizeRemovedTask:
    """The documents step ``step`` removed (all, or the seeded sample), cut into shards (:func:`run_finalize_side`)."""

    step: str
    final: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"finalize/removed/{self.step}"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        seg = next((s.index for s in plan.segments if any(spec.name == self.step for spec in s.steps)), 0)
        return tuple((MapTask(seg, u).id, lay.rel(lay.removed_dir(self.step), folder=True))
                     for u in range(len(plan.units)))

    def run(self, worker: Worker) -> None:
        lay, cfg = worker.layout, worker.plan.recipe.model.output
        sample = cfg.keep_removed.sample if isinstance(cfg.keep_removed, KeepRemoved) else None
        run_finalize_side(worker, self.id, lay.removed_dir(self.step), lay.removed(self.step), None, sample)


@dataclass(frozen=True)
class FinalizeErrorsTask:
    """The error records of every unit, cut into shards (:func:`run_finalize_side`)."""

    final: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return "finalize/errors"

    def reads(self, plan: Plan, lay: Layout) -> Reads:
        return tuple((MapTask(0, u).id, lay.rel(lay.errors_dir, folder=True)) for u in range(len(plan.units)))

    def run(self, worker: Worker) -> None:
        schema = pa.schema([f for f in ERROR_SCHEMA if not f.name.startswith("_")])
        run_finalize_side(worker, self.id, worker.layout.errors_dir, worker.layout.errors, schema, None)


@dataclass(frozen=True)
class Phase:
    """Tasks that may run in any order and at once; a phase starts when the one before it has finished."""

    description: str
    tasks: list[Task]


def segment_phases(plan: Plan, seg: Segment) -> list[Phase]:
    """The phases of segment ``seg``: its map tasks (one per unit), then, when it emits the keys of a global step,
    that step's reduce tasks (one per partition) and its combine task when it has one."""
    names = "+".join(s.name for s in seg.steps) or "read"
    phases = [Phase(names, [MapTask(seg.index, u.index) for u in plan.units])]
    if seg.keys is not None:
        step = seg.keys.name
        partitions = range(plan.recipe.model.executor.partitions)
        phases.append(Phase(f"{step} reduce", [ReduceTask(step, p) for p in partitions]))
        if seg.keys.cls.has_combine:
            phases.append(Phase(f"{step} combine", [CombineTask(step)]))
    return phases


def finalize_phase(plan: Plan, domains: list[str]) -> Phase:
    """The last phase: shards of each output domain in ``domains`` (those with kept documents), of each step's
    removed documents (step ``read`` first) and of the error records."""
    tasks: list[Task] = [FinalizeDomainTask(d) for d in domains]
    tasks += [FinalizeRemovedTask(s) for s in [READ_STEP, *(spec.name for spec in plan.recipe.steps)]]
    tasks.append(FinalizeErrorsTask())
    return Phase("write shards", tasks)


# --------------------------------------------------------------------------------------------------- map tasks


def _split_by_domain(batch: pa.Table, domains: list[str] | None) -> tuple[pa.Table, pa.Table, np.ndarray | None]:
    if domains is None:
        return batch, batch.slice(0, 0), None
    mask = pc.is_in(batch["domain"], value_set=pa.array(domains)).to_numpy(zero_copy_only=False)
    return batch.filter(pa.array(mask)), batch.filter(pa.array(~mask)), mask


def _merge_back(inside: pa.Table, outside: pa.Table, mask: np.ndarray | None, step: Step) -> pa.Table:
    if mask is None:
        return inside
    for name, dtype in step.columns.items():
        outside = outside.append_column(name, pa.nulls(outside.num_rows, dtype))
    both = pa.concat_tables([inside.select(outside.column_names), outside])
    order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    return both.take(pa.array(np.argsort(order, kind="stable")))


class _StepStats:
    def __init__(self) -> None:
        self.documents_in = 0
        self.removed: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.hist: dict[str, np.ndarray] = {}

    def add_hist(self, step: Step, batch: pa.Table) -> None:
        for col, edges in step.histograms.items():
            counts = np.asarray(histogram(batch[col].combine_chunks(), edges))
            self.hist[col] = self.hist.get(col, 0) + counts

    def to_json(self) -> dict[str, Any]:
        return {"documents_in": self.documents_in, "removed": dict(sorted(self.removed.items())),
                "histograms": {k: v.tolist() for k, v in self.hist.items()},
                "notes": dict(sorted(self.notes.items()))}


def _run_step(w: Worker, spec: StepSpec, batch: pa.Table, stats: _StepStats,
              apply_global: bool) -> tuple[pa.Table, pa.Array]:
    step = w.step(spec)
    inside, outside, mask = _split_by_domain(batch, spec.params.domains)
    stats.documents_in += inside.num_rows
    if inside.num_rows:
        if apply_global:
            assert isinstance(step, GlobalStep)
            inside, why = step.apply(inside, w.decisions(spec))
        else:
            assert isinstance(step, MapStep)
            inside = step.annotate(inside)
            why = step.decide(inside)
        stats.notes.update(step.notes(inside))
        for name, dtype in step.columns.items():
            i = inside.schema.get_field_index(name)
            inside = inside.set_column(i, name, inside[name].cast(dtype))
        stats.add_hist(step, inside)
    else:
        for name, dtype in step.columns.items():
            inside = inside.append_column(name, pa.nulls(0, dtype))
        why = pa.nulls(0, pa.string())
    if mask is not None:
        full_why = np.full(batch.num_rows, None, dtype=object)
        full_why[np.flatnonzero(mask)] = np.asarray(why.to_pylist(), dtype=object)
        why = pa.array(full_why.tolist(), pa.string())
    merged = _merge_back(inside, outside, mask, step)
    return merged, why


class _RemovedSink:
    """Removed documents of one step and unit: all, none, or the ``N`` with the smallest seeded hash of their id
    (a sample that is the same whatever the workers, and merges across units by taking the N smallest again)."""

    def __init__(self, path: Path, schema: pa.Schema, policy: Any, seed: int, compression: str) -> None:
        self.policy, self.seed = policy, seed
        self.schema = schema.append(pa.field("reason", pa.string())).append(pa.field("_sample_key", pa.uint64()))
        self.rows = 0
        self._w = AtomicIPCWriter(path, self.schema, compression) if policy != "none" else None
        self._held: list[pa.Table] = []

    @property
    def paths(self) -> list[Path]:
        """The file this sink writes (none when removed documents are not kept)."""
        return [self._w.path] if self._w is not None else []

    def add(self, removed: pa.Table, why: pa.Array) -> None:
        if self._w is None or removed.num_rows == 0:
            return
        keys = pa.array(np.fromiter((xxhash.xxh3_64_intdigest(i, seed=self.seed & 0xFFFFFFFF)
                                     for i in removed["id"].cast(pa.binary()).to_pylist()), np.uint64, removed.num_rows))
        t = removed.append_column("reason", why).append_column("_sample_key", keys)
        if isinstance(self.policy, KeepRemoved):
            self._held.append(t)
            held = pa.concat_tables(self._held)
            if held.num_rows > 4 * self.policy.sample:
                held = _smallest(held, self.policy.sample)
            self._held = [held]
        else:
            self._w.write(t)

    def close(self) -> None:
        if self._w is None:
            return
        if self._held:
            held = _smallest(pa.concat_tables(self._held), self.policy.sample)
            self._w.write(held.sort_by([("_unit", "ascending"), ("_pos", "ascending")]))
        self._w.close()


class _Spill:
    """One unit's keys of a global step, by shuffle partition: held in memory up to ``SPILL_BUFFER_BYTES``, then
    appended to one file per partition (a few large writes instead of one per batch and partition)."""

    def __init__(self, lay: Layout, step: str, unit: int, key_step: Step, partitions: int, codec: str) -> None:
        assert isinstance(key_step, GlobalStep)  # a segment's keys come from its global step
        self.lay, self.step, self.unit, self.schema = lay, step, unit, key_step.key_schema
        self.partitions, self.codec = partitions, codec
        self.held: dict[int, list[pa.Table]] = {}
        self.writers: dict[int, AtomicIPCWriter] = {}
        self.bytes = 0

    def add(self, keys: pa.Table) -> None:
        part = (keys["_part_key"].to_numpy() % np.uint64(self.partitions)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        keys = keys.take(pa.array(order))
        bounds = np.searchsorted(part[order], np.arange(self.partitions + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            self.held.setdefault(p, []).append(keys.slice(bounds[p], bounds[p + 1] - bounds[p]))
        self.bytes += keys.nbytes
        if self.bytes >= SPILL_BUFFER_BYTES:
            self.flush()

    @property
    def paths(self) -> list[Path]:
        """The spill files written so far, one per partition that received keys."""
        return [wr.path for wr in self.writers.values()]

    def flush(self) -> None:
        for p, tables in self.held.items():
            if p not in self.writers:
                self.writers[p] = AtomicIPCWriter(self.lay.spill(self.step, p, self.unit), self.schema, self.codec)
            self.writers[p].write(pa.concat_tables(tables).combine_chunks())
        self.held, self.bytes = {}, 0

    def close(self) -> None:
        self.flush()
        for wr in self.writers.values():
            wr.close()


def _smallest(t: pa.Table, n: int) -> pa.Table:
    if t.num_rows <= n:
        return t
    idx = pc.select_k_unstable(t, k=n, sort_keys=[("_sample_key", "ascending"), ("_unit", "ascending"),
                                                  ("_pos", "ascending")])
    return t.take(idx)


class _MapOutputs:
    """Every file one map task writes, opened as it goes and closed together: the kept documents (one file per
    domain in the last segment, else one file for the next segment), the error records (segment 0), the removed
    documents of each step (step ``read`` too in segment 0), and the keys of the next global step, spilled by
    partition, with its side rows."""

    def __init__(self, w: Worker, seg: Segment, unit: int) -> None:
        lay, plan, model = w.layout, w.plan, w.plan.recipe.model
        self.lay, self.seg, self.unit = lay, seg, unit
        self.codec = model.executor.work_compression
        self.schema = plan.schemas[seg.index]
        self.errors = AtomicIPCWriter(lay.errors_out(unit), ERROR_SCHEMA, self.codec) if seg.index == 0 else None
        removal = ([READ_STEP] if seg.index == 0 else []) + [spec.name for spec in seg.steps]
        self.removed = {name: _RemovedSink(lay.removed_out(name, unit), plan.step_schemas[name],
                                           model.output.keep_removed, model.seed, self.codec) for name in removal}
        self.key_step: GlobalStep | None = None
        self.spill: _Spill | None = None
        self.side: AtomicIPCWriter | None = None
        self._ordinal = 0
        if seg.keys is not None:
            key_step = w.step(seg.keys)
            assert isinstance(key_step, GlobalStep)
            self.key_step = key_step
            self.spill = _Spill(lay, seg.keys.name, unit, key_step, w.ctx.partitions, self.codec)
            if key_step.side_schema is not None:
                self.side = AtomicIPCWriter(lay.side(seg.keys.name, unit), key_step.side_schema)
        self._kept: dict[str, AtomicIPCWriter] = {}
        if not seg.last:
            self._kept_writer("")

    def _kept_writer(self, domain: str) -> AtomicIPCWriter:
        if domain not in self._kept:
            lay, unit = self.lay, self.unit
            path = lay.final_out(domain, unit) if self.seg.last else lay.segment_out(self.seg.index, unit)
            self._kept[domain] = AtomicIPCWriter(path, self.schema, self.codec)
        return self._kept[domain]

    def keep(self, batch: pa.Table) -> None:
        """Write documents that passed every step of the segment, and emit their keys for the next global step."""
        if self.seg.last:
            for domain in pc.unique(batch["domain"]).to_pylist():
                self._kept_writer(domain).write(batch.filter(pc.equal(batch["domain"], domain)))
        else:
            self._kept_writer("").write(batch)
        if self.key_step is None:
            return
        assert self.seg.keys is not None and self.spill is not None
        sub, _, _ = _split_by_domain(batch, self.seg.keys.params.domains)
        if sub.num_rows:
            sub = sub.append_column("_ord", pa.array(np.arange(self._ordinal, self._ordinal + sub.num_rows)))
            self._ordinal += sub.num_rows
            keys, side_rows = self.key_step.keys(sub)
            if self.side is not None and side_rows is not None:
                self.side.write(side_rows)
            self.spill.add(keys)

    def close(self) -> list[Path]:
        """Close every file (each is renamed into place); returns the paths written."""
        writers = [*self._kept.values(), *(w for w in (self.side, self.errors) if w is not None)]
        for wr in writers:
            wr.close()
        for sink in self.removed.values():
            sink.close()
        if self.spill is not None:
            self.spill.close()
        return [wr.path for wr in writers] + [p for sink in self.removed.values() for p in sink.paths] + \
            (self.spill.paths if self.spill is not None else [])


def _input_batches(w: Worker, seg: Segment, unit_index: int, out: _MapOutputs, counters: dict[str, int],
                   read_stats: _StepStats | None) -> Iterator[pa.Table]:
    """The documents entering segment ``seg``: read from the unit's files (segment 0, by a thread that reads up to
    two batches ahead of the steps, :func:`curate.prefetch.prefetch`; error records and the documents the readers
    remove go to ``out``), else loaded from the previous segment."""
    batch_size = w.plan.recipe.model.executor.batch_size
    if seg.index == 0:
        assert out.errors is not None and read_stats is not None
        for docs, errs, removed in prefetch(read_unit(w.plan.units[unit_index], batch_size)):
            counters["read"] += docs.num_rows + errs.num_rows + removed.num_rows
            counters["errored"] += errs.num_rows
            out.errors.write(errs)
            read_stats.documents_in += docs.num_rows + removed.num_rows
            if removed.num_rows:
                read_stats.removed.update(removed["reason"].to_pylist())
                out.removed[READ_STEP].add(removed.drop_columns(["reason"]), removed["reason"].combine_chunks())
            if docs.num_rows:
                yield docs
    else:
        yield from iter_ipc(w.layout.segment_out(seg.index - 1, unit_index), batch_size)


def _set_aside(batch: pa.Table, why: pa.Array, stats: _StepStats, sink: _RemovedSink) -> pa.Table:
    """The rows of ``batch`` whose removal reason ``why`` is null; the others are counted and go to ``sink``."""
    removed_mask = pc.is_valid(why)
    if not (pc.sum(removed_mask).as_py() or 0):
        return batch
    stats.removed.update(pc.filter(why, removed_mask).to_pylist())
    sink.add(batch.filter(removed_mask), pc.filter(why, removed_mask))
    return batch.filter(pc.invert(removed_mask))


def run_map(w: Worker, seg: Segment, unit_index: int) -> None:
    """Run segment ``seg`` on one unit: read or load its documents, run the steps, write what each produces."""
    out = _MapOutputs(w, seg, unit_index)
    stats = {READ_STEP: _StepStats()} if seg.index == 0 else {}
    stats.update({spec.name: _StepStats() for spec in seg.steps})
    counters = {"read": 0, "errored": 0, "kept": 0}
    if out.key_step is not None:
        inputs = w.plan.units[unit_index].files if seg.index == 0 else \
            [w.layout.segment_out(seg.index - 1, unit_index)]
        out.key_step.prepare(sum(f.stat().st_size for f in inputs))
    for batch in _input_batches(w, seg, unit_index, out, counters, stats.get(READ_STEP)):
        for spec in seg.steps:
            batch, why = _run_step(w, spec, batch, stats[spec.name], apply_global=(spec is seg.apply))
            batch = _set_aside(batch, why, stats[spec.name], out.removed[spec.name])
            if batch.num_rows == 0:
                break
        if batch.num_rows:
            counters["kept"] += batch.num_rows
            out.keep(batch)
    written = out.close()
    stats_doc = {**counters, "steps": {name: st.to_json() for name, st in stats.items()}}
    _finish(w.layout, MapTask(seg.index, unit_index).id, stats_doc, written)


# ------------------------------------------------------------------------------------- reduce, combine, finalize

def run_reduce(w: Worker, spec: StepSpec, part: int) -> None:
    """Reduce shuffle partition ``part`` of global step ``spec`` to its decisions."""
    lay = w.layout
    step = w.step(spec)
    assert isinstance(step, GlobalStep)
    files = lay.unit_files(lay.spill_dir(spec.name, part))
    table = pa.concat_tables([read_ipc(f) for f in files]) if files else step.key_schema.empty_table()
    decisions, counters = step.reduce(table, w.side_store(spec))
    codec = w.plan.recipe.model.executor.work_compression
    out = AtomicIPCWriter(lay.decisions(spec.name, part), decisions.schema, codec)
    out.write(decisions)
    out.close()
    _finish(lay, ReduceTask(spec.name, part).id, counters, [out.path])


def run_combine(w: Worker, spec: StepSpec) -> None:
    """The whole-corpus pass of a global step that has one (e.g. connected components of near duplicates)."""
    lay = w.layout
    step = w.step(spec)
    assert isinstance(step, GlobalStep)
    reduced = reduced_tables(lay, spec.name, w.ctx.partitions)
    decisions, counters = step.combine(reduced, w.side_store(spec), lay.root)
    out = AtomicIPCWriter(lay.combined(spec.name), decisions.schema, w.plan.recipe.model.executor.work_compression)
    out.write(decisions.sort_by([("_unit", "ascending"), ("_pos", "ascending")]))
    out.close()
    index = [p for p in lay.index.rglob("*") if p.is_file()] if lay.index.exists() else []
    _finish(lay, CombineTask(spec.name).id, counters, [out.path, *index])


def run_finalize_domain(w: Worker, domain: str) -> None:
    """Concatenate one domain's kept documents in input order and cut them into shards. The task's stats hold the
    shards (``shards``) and what the data card counts of their documents (``card``,
    :meth:`curate.card.DomainCounts.to_json`), counted batch by batch as they are written."""
    from curate.card import DomainCounts, perplexity_lang

    lay, plan = w.layout, w.plan
    cfg = plan.recipe.model.output
    out_schema = plan.output_schema
    writer = ShardWriter(lay.data / domain, lay.root, out_schema, cfg.compression, cfg.shard_docs, cfg.shard_bytes,
                         estimate_tokens=True)
    counts = DomainCounts(perplexity_lang(plan.recipe.to_dict()["steps"]))
    for f in lay.unit_files(lay.final_dir(domain)):
        for t in iter_ipc(f, plan.recipe.model.executor.batch_size):
            t = t.select(out_schema.names)
            writer.write(t)
            counts.add(t)
    shards = writer.close()
    _finish(lay, FinalizeDomainTask(domain).id, {"shards": shards, "card": counts.to_json()},
            [lay.root / s["path"] for s in shards])


def run_finalize_side(w: Worker, task: str, work: Path, target: Path, schema: pa.Schema | None,
                      sample: int | None) -> None:
    """Consolidate the per-unit files in ``work`` (removed documents of a step, or error records) into shards in
    ``target``, hidden columns dropped: all rows in unit order, or the ``sample`` rows with the smallest seeded
    hash. ``schema``: that of the shards, else the files' own."""
    lay, plan = w.layout, w.plan
    cfg = plan.recipe.model.output
    files = lay.unit_files(work)
    tables_iter: Iterator[pa.Table]
    if sample is not None and files:
        held = _smallest(pa.concat_tables([read_ipc(f) for f in files]), sample)
        tables_iter = iter([held.sort_by([("_unit", "ascending"), ("_pos", "ascending")])])
    else:
        tables_iter = (t for f in files for t in iter_ipc(f, plan.recipe.model.executor.batch_size))
    writer: ShardWriter | None = None
    for t in tables_iter:
        t = t.select([c for c in t.column_names if not c.startswith("_")])
        if t.num_rows == 0:
            continue
        if writer is None:
            writer = ShardWriter(target, lay.root, schema or t.schema, cfg.compression, cfg.shard_docs,
                                 cfg.shard_bytes)
        writer.write(t)
    shards = writer.close() if writer else []
    target.mkdir(parents=True, exist_ok=True)
    _finish(lay, task, {"shards": shards}, [lay.root / s["path"] for s in shards])


def _finish(lay: Layout, task: str, stats: dict[str, Any], written: list[Path]) -> None:
    """Write a task's stats, then its completion marker with the size and checksum of every file it wrote
    (``written``, and the stats)."""
    write_json_atomic(lay.task_stats(task), stats)
    lay.mark_done(task, [*written, lay.task_stats(task)])


def collect_map_stats(lay: Layout, plan: Plan) -> dict[str, Any]:
    """Sum per-unit stats: corpus counters and per-step counters/histograms."""
    total = {"read": 0, "errored": 0}
    steps: dict[str, dict[str, Any]] = {}
    for seg in plan.segments:
        for u in range(len(plan.units)):
            s = read_json(lay.task_stats(MapTask(seg.index, u).id))
            if seg.index == 0:
                total["read"] += s["read"]
                total["errored"] += s["errored"]
            for name, st in s["steps"].items():
                acc = steps.setdefault(name, {"documents_in": 0, "removed": Counter(), "histograms": {}})
                acc["documents_in"] += st["documents_in"]
                acc["removed"].update(st["removed"])
                acc.setdefault("notes", Counter()).update(st.get("notes", {}))
                for col, counts in st["histograms"].items():
                    prev = acc["histograms"].get(col)
                    acc["histograms"][col] = counts if prev is None else [a + b for a, b in zip(prev, counts)]
    for spec in plan.global_steps:
        red: Counter[str] = Counter()
        for p in range(plan.recipe.model.executor.partitions):
            red.update(read_json(lay.task_stats(ReduceTask(spec.name, p).id)))
        steps[spec.name]["reduce"] = dict(red)
        combine = lay.task_stats(CombineTask(spec.name).id)
        if combine.exists():
            steps[spec.name]["combine"] = read_json(combine)
    return {"totals": total, "steps": steps}


__all__ = ["Worker", "Task", "Phase", "MapTask", "ReduceTask", "CombineTask", "FinalizeDomainTask",
           "FinalizeRemovedTask", "FinalizeErrorsTask", "segment_phases", "finalize_phase", "run_map", "run_reduce",
           "run_combine", "run_finalize_domain", "run_finalize_side", "collect_map_stats"]
