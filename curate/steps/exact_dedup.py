"""`exact_dedup`: corpus-wide removal of documents whose normalized text is identical.

Key = 128-bit xxh3 of the text lowercased with whitespace folded. Per key the earliest document in input order
(unit, position) is kept, so the result does not depend on workers, partitions or shard order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.steps.base import Decisions, GlobalStep, StepParams


class ExactDedupParams(StepParams):
    lowercase: bool = True


class ExactDedup(GlobalStep):
    name = "exact_dedup"
    Params = ExactDedupParams
    columns = {"duplicate_of": pa.string(), "exact_copies": pa.int32()}
    key_schema = pa.schema([("_part_key", pa.uint64()), ("hi", pa.uint64()), ("_unit", pa.int32()),
                            ("_pos", pa.int64()), ("id", pa.string())])

    def _normalized(self, text: pa.ChunkedArray) -> pa.ChunkedArray:
        if self.params.lowercase:
            text = pc.utf8_lower(text)
        return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))

    def keys(self, batch: pa.Table) -> tuple[pa.Table, None]:
        digests = [xxhash.xxh3_128_intdigest(t) for t in self._normalized(batch["text"]).cast(pa.binary()).to_pylist()]
        lo = np.fromiter((d & 0xFFFFFFFFFFFFFFFF for d in digests), np.uint64, len(digests))
        hi = np.fromiter((d >> 64 for d in digests), np.uint64, len(digests))
        return pa.table([pa.array(lo), pa.array(hi), batch["_unit"], batch["_pos"], batch["id"]],
                        schema=self.key_schema), None

    def reduce(self, partition: pa.Table, side: Any = None) -> tuple[pa.Table, dict[str, Any]]:
        t = partition.sort_by([("_part_key", "ascending"), ("hi", "ascending"), ("_unit", "ascending"),
                               ("_pos", "ascending")])
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
        first_id = pc.take(t["id"], pa.array(starts[group]))
        dup_of = pc.if_else(pa.array(in_dup_group & ~new_group), first_id, pa.scalar(None, pa.string()))
        sel = pa.array(np.flatnonzero(in_dup_group))
        decisions = pa.table({"_unit": pc.take(t["_unit"], sel), "_pos": pc.take(t["_pos"], sel),
                              "duplicate_of": pc.take(dup_of, sel),
                              "exact_copies": pa.array(size_per_row[in_dup_group].astype(np.int32))})
        decisions = decisions.sort_by([("_unit", "ascending"), ("_pos", "ascending")])
        stats = {"documents": int(n), "duplicate_groups": int((sizes > 1).sum()),
                 "documents_in_duplicate_groups": int(in_dup_group.sum())}
        return decisions, stats

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        cols = decisions.lookup(batch, self.columns)
        batch = batch.append_column("duplicate_of", cols["duplicate_of"])
        batch = batch.append_column("exact_copies", pc.fill_null(cols["exact_copies"], 1))
        duplicate = pc.is_valid(cols["duplicate_of"])
        reason = pc.if_else(duplicate, pa.scalar("exact_duplicate"), pa.scalar(None, pa.string()))
        return batch, reason
