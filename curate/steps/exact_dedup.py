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

from curate.steps.base import Decisions, GlobalStep, StepParams, equal_key_groups


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
        decisions, groups, in_groups = equal_key_groups(t, "duplicate_of", "exact_copies")
        stats = {"documents": t.num_rows, "duplicate_groups": groups, "documents_in_duplicate_groups": in_groups}
        return decisions, stats

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        cols = decisions.lookup(batch, self.columns)
        batch = batch.append_column("duplicate_of", cols["duplicate_of"])
        batch = batch.append_column("exact_copies", pc.fill_null(cols["exact_copies"], 1))
        duplicate = pc.is_valid(cols["duplicate_of"])
        reason = pc.if_else(duplicate, pa.scalar("exact_duplicate"), pa.scalar(None, pa.string()))
        return batch, reason
