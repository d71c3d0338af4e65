"""The tasks of a plan: what one worker does for one unit, one partition or one domain.

Executors only decide where and when tasks run; the tasks themselves are the same everywhere. Every task writes its
files atomically, then its stats, then its marker, and returns nothing an executor must keep.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.arrow_io import AtomicIPCWriter, ShardWriter, iter_ipc, read_ipc
from curate.layout import Layout, read_json, write_json_atomic
from curate.plan import Plan, Segment, step_context
from curate.readers import DOC_SCHEMA, ERROR_SCHEMA, READ_STEP, read_unit
from curate.recipe import KeepRemoved, StepSpec
from curate.steps import REGISTRY, GlobalStep, MapStep, Step
from curate.steps.base import Decisions, SideStore, histogram

SPILL_BUFFER_BYTES = 64 * 2**20


class Worker:
    """Per-process state: step instances (models loaded once) and cached decisions."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan, self.layout = plan, Layout(root)
        self.ctx = step_context(plan.recipe)
        self._steps: dict[str, Step] = {}
        self._decisions: dict[str, Decisions] = {}

    def step(self, spec: StepSpec) -> Step:
        if spec.name not in self._steps:
            inst = REGISTRY[spec.name](spec.params, self.ctx)
            inst.setup()
            self._steps[spec.name] = inst
        return self._steps[spec.name]

    def decisions(self, spec: StepSpec) -> Decisions:
        """What ``apply`` reads: the combined decisions, or else every partition's reduction."""
        if spec.name not in self._decisions:
            combined = self.step(spec).has_combine  # type: ignore[attr-defined]
            self._decisions[spec.name] = reduced_tables(self.layout, spec.name, self.ctx.partitions, combined)
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


def map_task_id(seg: int, unit: int) -> str:
    return f"seg{seg}/u{unit:06d}"


def reduce_task_id(step: str, part: int) -> str:
    return f"reduce/{step}/p{part:04d}"


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


def _input_batches(w: Worker, seg: Segment, unit_index: int, errors: AtomicIPCWriter | None,
                   counters: dict[str, int], read_removed: tuple[_RemovedSink, _StepStats] | None = None
                   ) -> Iterator[pa.Table]:
    """The documents entering segment ``seg``: read from the unit's files (segment 0; error records go to
    ``errors``, documents the readers remove to ``read_removed``), else loaded from the previous segment."""
    batch_size = w.plan.recipe.model.executor.batch_size
    if seg.index == 0:
        unit = w.plan.units[unit_index]
        for docs, errs, removed in read_unit(unit, batch_size):
            counters["read"] += docs.num_rows + errs.num_rows + removed.num_rows
            counters["errored"] += errs.num_rows
            if errors is not None:
                errors.write(errs)
            if read_removed is not None:
                sink, stats = read_removed
                stats.documents_in += docs.num_rows + removed.num_rows
                if removed.num_rows:
                    stats.removed.update(removed["reason"].to_pylist())
                    sink.add(removed.drop_columns(["reason"]), removed["reason"].combine_chunks())
            if docs.num_rows:
                yield docs
    else:
        yield from iter_ipc(w.layout.segment_out(seg.index - 1, unit_index), batch_size)


def run_map(w: Worker, seg: Segment, unit_index: int) -> None:
    """Run segment ``seg`` on one unit: read or load its documents, run the steps, write what each produces."""
    lay, plan = w.layout, w.plan
    out_cfg = plan.recipe.model.output
    task = map_task_id(seg.index, unit_index)
    in_schema = plan.schemas[seg.index - 1] if seg.index else None
    counters = {"read": 0, "errored": 0, "kept": 0}
    codec = plan.recipe.model.executor.work_compression
    errors = AtomicIPCWriter(lay.errors_out(unit_index), ERROR_SCHEMA, codec) if seg.index == 0 else None
    stats = {spec.name: _StepStats() for spec in seg.steps}
    sinks: dict[str, _RemovedSink] = {}
    read_removed = None
    if seg.index == 0:
        stats = {READ_STEP: _StepStats(), **stats}
        sinks[READ_STEP] = _RemovedSink(lay.removed_out(READ_STEP, unit_index), DOC_SCHEMA, out_cfg.keep_removed,
                                        plan.recipe.model.seed, codec)
        read_removed = (sinks[READ_STEP], stats[READ_STEP])
    schema = plan.schemas[seg.index]
    running = in_schema or DOC_SCHEMA
    for spec in seg.steps:
        for name, dtype in REGISTRY[spec.name].columns.items():
            running = running.append(pa.field(name, dtype))
        sinks[spec.name] = _RemovedSink(lay.removed_out(spec.name, unit_index), running, out_cfg.keep_removed,
                                        plan.recipe.model.seed, codec)
    kept_writers: dict[str, AtomicIPCWriter] = {}
    key_step = w.step(seg.keys) if seg.keys else None
    spill = _Spill(lay, seg.keys.name, unit_index, key_step, w.ctx.partitions, codec) if key_step else None
    ordinal = 0
    side = None
    if isinstance(key_step, GlobalStep) and key_step.side_schema is not None:
        side = AtomicIPCWriter(lay.side(seg.keys.name, unit_index), key_step.side_schema)

    def kept_writer(domain: str) -> AtomicIPCWriter:
        if domain not in kept_writers:
            path = lay.final_out(domain, unit_index) if seg.last else lay.segment_out(seg.index, unit_index)
            kept_writers[domain] = AtomicIPCWriter(path, schema, codec)
        return kept_writers[domain]

    if not seg.last:
        kept_writer("")
    for batch in _input_batches(w, seg, unit_index, errors, counters, read_removed):
        for spec in seg.steps:
            batch, why = _run_step(w, spec, batch, stats[spec.name], apply_global=(spec is seg.apply))
            removed_mask = pc.is_valid(why)
            n_removed = pc.sum(removed_mask).as_py() or 0
            if n_removed:
                stats[spec.name].removed.update(pc.filter(why, removed_mask).to_pylist())
                sinks[spec.name].add(batch.filter(removed_mask), pc.filter(why, removed_mask))
                batch = batch.filter(pc.invert(removed_mask))
            if batch.num_rows == 0:
                break
        if batch.num_rows == 0:
            continue
        counters["kept"] += batch.num_rows
        if seg.last:
            for domain in pc.unique(batch["domain"]).to_pylist():
                kept_writer(domain).write(batch.filter(pc.equal(batch["domain"], domain)))
        else:
            kept_writer("").write(batch)
        if key_step is not None:
            sub, _, _ = _split_by_domain(batch, seg.keys.params.domains)
            if sub.num_rows:
                assert isinstance(key_step, GlobalStep)
                sub = sub.append_column("_ord", pa.array(np.arange(ordinal, ordinal + sub.num_rows)))
                ordinal += sub.num_rows
                keys, side_rows = key_step.keys(sub)
                if side is not None and side_rows is not None:
                    side.write(side_rows)
                assert spill is not None
                spill.add(keys)
    if spill is not None:
        spill.close()
    for wr in [*kept_writers.values(), *([side] if side is not None else [])]:
        wr.close()
    for sink in sinks.values():
        sink.close()
    if errors is not None:
        errors.close()
    written = [wr.path for wr in [*kept_writers.values(), *([side] if side else []), *([errors] if errors else [])]]
    written += [p for sink in sinks.values() for p in sink.paths] + (spill.paths if spill else [])
    _finish(lay, task, {**counters, "steps": {name: st.to_json() for name, st in stats.items()}}, written)


def run_reduce(w: Worker, spec: StepSpec, part: int) -> None:
    lay = w.layout
    step = w.step(spec)
    assert isinstance(step, GlobalStep)
    files = sorted((lay.work / "shuffle" / spec.name / f"p{part:04d}").glob("u*.arrow"))
    table = pa.concat_tables([read_ipc(f) for f in files]) if files else step.key_schema.empty_table()
    decisions, counters = step.reduce(table, w.side_store(spec))
    codec = w.plan.recipe.model.executor.work_compression
    out = AtomicIPCWriter(lay.decisions(spec.name, part), decisions.schema, codec)
    out.write(decisions)
    out.close()
    _finish(lay, reduce_task_id(spec.name, part), counters, [out.path])


def combine_task_id(step: str) -> str:
    return f"combine/{step}"


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
    index = [p for p in (lay.root / "index").rglob("*") if p.is_file()] if (lay.root / "index").exists() else []
    _finish(lay, combine_task_id(spec.name), counters, [out.path, *index])


def run_finalize_domain(w: Worker, domain: str) -> None:
    """Concatenate one domain's kept documents in input order and cut them into shards."""
    lay, plan = w.layout, w.plan
    cfg = plan.recipe.model.output
    files = sorted((lay.work / "final" / domain).glob("u*.arrow"))
    out_schema = plan.output_schema
    writer = ShardWriter(lay.data / domain, lay.root, out_schema, cfg.compression, cfg.shard_docs, cfg.shard_bytes,
                         estimate_tokens=True)
    for f in files:
        for t in iter_ipc(f, plan.recipe.model.executor.batch_size):
            writer.write(t.select(out_schema.names))
    shards = writer.close()
    _finish(lay, f"finalize/data/{domain}", {"shards": shards}, [lay.root / s["path"] for s in shards])


def run_finalize_side(w: Worker, what: str) -> None:
    """Consolidate removed documents of one step (``what`` = step name) or the error records (``errors``)."""
    lay, plan = w.layout, w.plan
    cfg = plan.recipe.model.output
    if what == "errors":
        files = sorted((lay.work / "errors").glob("u*.arrow"))
        target, schema = lay.errors, pa.schema([f for f in ERROR_SCHEMA if not f.name.startswith("_")])
        sample = None
    else:
        files = sorted((lay.work / "removed" / what).glob("u*.arrow"))
        target = lay.removed(what)
        sample = cfg.keep_removed.sample if isinstance(cfg.keep_removed, KeepRemoved) else None
        schema = None
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
    task = f"finalize/{'errors' if what == 'errors' else 'removed/' + what}"
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
            s = read_json(lay.task_stats(map_task_id(seg.index, u)))
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
            red.update(read_json(lay.task_stats(reduce_task_id(spec.name, p))))
        steps[spec.name]["reduce"] = dict(red)
        if lay.task_stats(combine_task_id(spec.name)).exists():
            steps[spec.name]["combine"] = read_json(lay.task_stats(combine_task_id(spec.name)))
    return {"totals": total, "steps": steps}


__all__ = ["Worker", "run_map", "run_reduce", "run_combine", "run_finalize_domain", "run_finalize_side",
           "collect_map_stats", "map_task_id", "reduce_task_id", "combine_task_id"]
