"""The step interface every curation step shares.

A step computes annotation columns, then decides keep/remove with a reason; the two are separate so statistics can be
taken from the annotations whatever the decision. ``MapStep`` sees one batch at a time. ``GlobalStep`` needs the
whole corpus and is run as map (``keys``) -> shuffle by key into partitions on disk -> ``reduce`` per partition ->
``apply`` per batch, so memory grows with a partition, not with the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from mixlab.config import Strict


class StepParams(Strict):
    """Params every step takes."""

    domains: list[str] | None = Field(default=None, description="run only on documents of these domains")


@dataclass(frozen=True)
class StepContext:
    seed: int
    partitions: int
    base: Path = Path(".")
    """The recipe's directory: relative paths in step params resolve against it."""


class Step:
    name: ClassVar[str]
    Params: ClassVar[type[StepParams]] = StepParams
    columns: ClassVar[dict[str, pa.DataType]] = {}
    """Annotation columns the step adds, with their types (null where the step did not run on a document)."""
    histograms: ClassVar[dict[str, list[float]]] = {}
    """Annotation column -> bin edges, for the histograms in ``stats/<step>.json``."""

    def __init__(self, params: StepParams, ctx: StepContext) -> None:
        self.params, self.ctx = params, ctx

    def setup(self) -> None:
        """Load models and other heavy state; called once per worker before the first batch."""

    @classmethod
    def output_domains(cls, params: StepParams, domains: set[str]) -> set[str]:
        """The domains documents can have after this step (a routing step renames them)."""
        return domains

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        """Raise ValueError when the documents reaching the step (``schema``) or the files ``params`` name lack
        something the step needs; called before any work starts."""

    @classmethod
    def plan_warnings(cls, params: StepParams, recipe: Any) -> list[str]:
        """Warnings about how the step meets this recipe (a :class:`curate.recipe.Recipe`: its sources and files),
        printed by `curate run` and `curate validate` before any work starts. Raise ValueError for a param that
        does not fit the recipe."""
        return []

    def notes(self, batch: pa.Table) -> dict[str, int]:
        """Counts for ``notes`` in the step's stats, from an annotated batch (e.g. documents let through unjudged,
        by why); summed over the run. A global step is asked after ``apply``."""
        return {}


class MapStep(Step):
    def annotate(self, batch: pa.Table) -> pa.Table:
        """Return ``batch`` with this step's annotation columns added (and ``text`` rewritten if it transforms)."""
        raise NotImplementedError

    def decide(self, batch: pa.Table) -> pa.Array:
        """Per row: the removal reason, or null to keep. ``batch`` already carries the annotations."""
        raise NotImplementedError


class Decisions:
    """What ``reduce`` (or ``combine``) wrote, one table per partition; handed to ``apply``."""

    def __init__(self, loader: Callable[[int], pa.Table], count: int) -> None:
        self._loader, self.count = loader, count
        self._unit: tuple[int, pa.Table] | None = None

    def partitions(self) -> Iterator[tuple[int, pa.Table]]:
        for p in range(self.count):
            yield p, self._loader(p)

    def for_unit(self, unit: int) -> pa.Table:
        """Rows of every partition whose ``_unit`` column equals ``unit`` (the last unit asked is cached)."""
        if self._unit is None or self._unit[0] != unit:
            parts = [t.filter(pc.equal(t["_unit"], unit)) for _, t in self.partitions() if t.num_rows]
            self._unit = (unit, pa.concat_tables(parts) if parts else pa.table({"_unit": pa.array([], pa.int32())}))
        return self._unit[1]

    def lookup(self, batch: pa.Table, columns: dict[str, pa.DataType]) -> dict[str, pa.Array]:
        """For each row of ``batch``, ``columns`` of its decision row (matched by unit and ``_pos``; null where the
        reduce wrote none)."""
        dec = self.for_unit(batch["_unit"][0].as_py())
        if dec.num_rows == 0:
            return {c: pa.nulls(batch.num_rows, t) for c, t in columns.items()}
        idx = pc.index_in(batch["_pos"], value_set=dec["_pos"])
        return {c: pc.take(dec[c], idx) for c in columns}


class SideStore:
    """Per-document data a global step wrote in its map phase: one memory-mapped Arrow IPC table per unit.

    Row ``k`` of unit ``u`` has the global index ``offsets[u] + k``; global order is input order."""

    def __init__(self, tables: list[pa.Table]) -> None:
        self.tables = tables
        self.offsets = np.concatenate([[0], np.cumsum([t.num_rows for t in tables])]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def global_index(self, unit: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
        return self.offsets[unit.astype(np.int64)] + ordinal.astype(np.int64)

    def locate(self, gidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unit = np.searchsorted(self.offsets, gidx, side="right") - 1
        return unit, gidx - self.offsets[unit]

    def column(self, name: str) -> np.ndarray | pa.ChunkedArray:
        """One column over all units in global order (NumPy for numeric columns)."""
        chunks = [c for t in self.tables for c in t[name].chunks]
        arr = pa.chunked_array(chunks, type=self.tables[0].schema.field(name).type)
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            return arr.to_numpy()
        return arr


class GlobalStep(Step):
    key_schema: ClassVar[pa.Schema]
    """Schema of the rows ``keys`` emits; column ``_part_key`` (uint64) decides the partition."""
    side_schema: ClassVar[pa.Schema | None] = None
    """Schema of the per-document side data ``keys`` returns, if the step keeps any (see :class:`SideStore`)."""
    has_combine: ClassVar[bool] = False
    """True when the partitions' reductions need one more whole-corpus pass (``combine``) before ``apply``."""

    def prepare(self, input_bytes: int) -> None:
        """Called by a map task before it hands ``keys`` about ``input_bytes`` of documents (the size of its input
        files), e.g. to start loading compiled code in the background; by default nothing."""

    def keys(self, batch: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """Key rows for the shuffle, and side rows (one per document, in order) or None.

        ``batch`` carries ``_ord``: the document's row in this unit's side data."""
        raise NotImplementedError

    def reference_side(self) -> list[pa.Table]:
        """Side tables of documents outside this corpus (e.g. earlier corpora to dedup against); the side store
        appends them after this corpus's units."""
        return []

    def reduce(self, partition: pa.Table, side: SideStore | None) -> tuple[pa.Table, dict[str, Any]]:
        """The reduction of one partition's key rows, and counters for the step's stats."""
        raise NotImplementedError

    def combine(self, reduced: Decisions, side: SideStore | None, out: Path) -> tuple[pa.Table, dict[str, Any]]:
        """Decisions for ``apply`` from all partitions' reductions (only when ``has_combine``). ``out`` is the
        corpus directory, for a step that persists an index."""
        raise NotImplementedError

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        """Return the batch (annotated, possibly rewritten) and its removal reasons (null = keep)."""
        raise NotImplementedError


def histogram(values: pa.Array, edges: list[float]) -> list[int]:
    """Counts per bin: (-inf, e0), [e0, e1), ..., [e_last, inf); nulls are not counted."""
    arr = values.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).tolist()


def equal_key_groups(t: pa.Table, duplicate_of: str, copies: str) -> tuple[pa.Table, int, int]:
    """Groups of rows of ``t`` with the same 128-bit key (``_part_key``, ``hi``), ``t`` sorted by that key and then
    by the order that decides which row of a group is kept (the first). Returns the decisions for the rows in a group
    of two or more (``_unit``, ``_pos``, ``duplicate_of``: the kept row's ``id`` or null for the kept row itself,
    ``copies``: the group's size (int32)) sorted by ``_unit``, ``_pos``; the number of such groups; and the rows in
    them."""
    lo, hi = t["_part_key"].to_numpy(), t["hi"].to_numpy()
    n = len(lo)
    new_group = np.ones(n, dtype=bool)
    if n > 1:
        new_group[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, n))
    size_per_row = sizes[group]
    in_dup_group = size_per_row > 1
    kept_id = pc.take(t["id"], pa.array(starts[group]))
    dup_of = pc.if_else(pa.array(in_dup_group & ~new_group), kept_id, pa.scalar(None, pa.string()))
    sel = pa.array(np.flatnonzero(in_dup_group))
    decisions = pa.table({"_unit": pc.take(t["_unit"], sel), "_pos": pc.take(t["_pos"], sel),
                          duplicate_of: pc.take(dup_of, sel),
                          copies: pa.array(size_per_row[in_dup_group].astype(np.int32))})
    return (decisions.sort_by([("_unit", "ascending"), ("_pos", "ascending")]), int((sizes > 1).sum()),
            int(in_dup_group.sum()))
