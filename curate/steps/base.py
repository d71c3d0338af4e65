"""The step interface every curation step shares.

A step computes annotation columns, then decides keep/remove with a reason; the two are separate so statistics can be
taken from the annotations whatever the decision. ``MapStep`` sees one batch at a time. ``GlobalStep`` needs the
whole corpus and is run as map (``keys``) -> shuffle by key into partitions on disk -> ``reduce`` per partition ->
``apply`` per batch, so memory grows with a partition, not with the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

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


class MapStep(Step):
    def annotate(self, batch: pa.Table) -> pa.Table:
        """Return ``batch`` with this step's annotation columns added (and ``text`` rewritten if it transforms)."""
        raise NotImplementedError

    def decide(self, batch: pa.Table) -> pa.Array:
        """Per row: the removal reason, or null to keep. ``batch`` already carries the annotations."""
        raise NotImplementedError


class Decisions:
    """What ``reduce`` wrote for every partition; handed to ``apply``."""

    def __init__(self, tables: list[pa.Table] | None = None, loader: Any = None, count: int = 0) -> None:
        self._tables, self._loader, self.count = tables, loader, count

    def partitions(self) -> Iterator[tuple[int, pa.Table]]:
        for p in range(self.count):
            yield p, (self._tables[p] if self._tables is not None else self._loader(p))

    def for_unit(self, unit: int) -> pa.Table:
        """Rows of every partition whose ``_unit`` column equals ``unit``."""
        parts = [t.filter(pc.equal(t["_unit"], unit)) for _, t in self.partitions() if t.num_rows]
        return pa.concat_tables(parts) if parts else pa.table({"_unit": pa.array([], pa.int32())})


class GlobalStep(Step):
    key_schema: ClassVar[pa.Schema]
    """Schema of the rows ``keys`` emits; column ``_part_key`` (uint64) decides the partition."""

    def keys(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def reduce(self, partition: pa.Table) -> tuple[pa.Table, dict[str, Any]]:
        """Decisions for the key rows of one partition, and counters for the step's stats."""
        raise NotImplementedError

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        """Return the batch (annotated, possibly rewritten) and its removal reasons (null = keep)."""
        raise NotImplementedError


def null_column(dtype: pa.DataType, n: int) -> pa.Array:
    return pa.nulls(n, type=dtype)


def histogram(values: pa.Array, edges: list[float]) -> list[int]:
    """Counts per bin: (-inf, e0), [e0, e1), ..., [e_last, inf); nulls are not counted."""
    arr = values.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).tolist()


def reasons(values: list[str | None]) -> pa.Array:
    return pa.array(values, type=pa.string())
