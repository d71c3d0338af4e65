"""`line_dedup`: CCNet-style removal of lines repeated across the corpus (navigation, cookie banners, footers).

A line is normalized as CCNet does (lowercase, digits -> 0, punctuation and symbols removed, whitespace folded) and
hashed; the number of *documents* containing each hash is counted corpus-wide. Every occurrence of a line found in
``min_count`` or more documents is dropped; a document left under ``min_words`` words by that is removed.
The set of frequent line hashes (8 bytes per distinct repeated line) is what a worker holds in memory.

Code is left whole: in source files, lines such as ``}``, ``else:`` or ``return result`` repeat across files and
cutting them breaks the program. A code document (:func:`curate.steps.code_quality.code_mask`: read from a file with
a code extension, or of a domain listed in ``code_domains``) neither counts its lines nor loses any, unless the
recipe opts in with ``code: true``. ``line_dedup_code`` marks code documents, the ``notes`` of
``stats/line_dedup.json`` count them (``code_documents_left_whole``, or ``code_documents_deduplicated`` with the
opt-in), and plan time warns when a code domain is in the step's scope. Code files are
deduplicated whole by ``exact_dedup`` and ``minhash_dedup``.

Every document leaves the step without leading or trailing newlines (the form a document that lost lines always had),
so its form does not depend on whether a line was cut; a code file keeps every line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field

from curate.steps.base import Decisions, GlobalStep, StepParams
from curate.steps.code_quality import code_domains_of, code_mask, describe, in_scope


class LineDedupParams(StepParams):
    min_count: int = Field(default=2, ge=2, description="drop lines found in at least this many documents")
    min_line_chars: int = Field(default=1, ge=1, description="shorter normalized lines are never dropped")
    min_words: int = Field(default=5, ge=0, description="remove a document left with fewer words")
    code: bool = Field(default=False, description="also cut repeated lines out of code documents (off: code "
                       "documents are left whole)")
    code_domains: list[str] | None = Field(default=None, description="domains whose documents are code whatever "
                                           "their file names (e.g. code read from JSONL)")


def _line_table(text: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    lists = pc.split_pattern(text, "\n").combine_chunks()
    return lists.flatten(), lists.offsets.to_numpy()


def line_hashes(lines: pa.Array, min_chars: int) -> np.ndarray:
    """uint64 hash per line of its CCNet-normalized form; 0 for lines too short to count."""
    norm = pc.utf8_lower(lines)
    norm = pc.replace_substring_regex(norm, r"\d", "0")
    norm = pc.replace_substring_regex(norm, r"[\p{P}\p{S}]", "")
    norm = pc.utf8_trim_whitespace(pc.replace_substring_regex(norm, r"\s+", " "))
    short = pc.less(pc.utf8_length(norm), min_chars).to_numpy(zero_copy_only=False)
    h = np.fromiter((xxhash.xxh3_64_intdigest(s) for s in norm.cast(pa.binary()).to_pylist()), np.uint64, len(norm))
    h[h == 0] = 1
    h[short] = 0
    return h


class LineDedup(GlobalStep):
    name = "line_dedup"
    Params = LineDedupParams
    columns = {"dup_lines_removed": pa.int32(), "line_dedup_code": pa.bool_()}
    key_schema = pa.schema([("_part_key", pa.uint64())])

    def __init__(self, params: LineDedupParams, ctx: Any) -> None:
        super().__init__(params, ctx)
        self._frequent: np.ndarray | None = None
        self._frequent_of: Decisions | None = None

    @classmethod
    def plan_warnings(cls, params: StepParams, recipe: Any) -> list[str]:
        assert isinstance(params, LineDedupParams)
        code = in_scope(code_domains_of(recipe, params.code_domains), params.domains)
        if not code:
            return []
        if params.code:
            return [f"code: true cuts repeated lines out of code files of {describe(code)}: lines such as '}}' or "
                    "'return x' recur across files, so files may no longer parse; leave code out of its domains "
                    "or drop code: true"]
        return [f"{describe(code)} in its scope: code documents are left whole and counted (notes in "
                "stats/line_dedup.json); limit its domains to the prose ones to say so"]

    def notes(self, batch: pa.Table) -> dict[str, int]:
        n = int(pc.sum(batch["line_dedup_code"]).as_py() or 0)
        key = "code_documents_deduplicated" if self.params.code else "code_documents_left_whole"
        return {key: n} if n else {}

    def _hashes(self, batch: pa.Table) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
        """The batch's lines, their documents' line offsets, their hashes (0 = never counted nor dropped: too
        short, or in a code document the step leaves whole) and which documents are code."""
        lines, offsets = _line_table(batch["text"])
        h = line_hashes(lines, self.params.min_line_chars)
        code = code_mask(batch, self.params.code_domains)
        if not self.params.code:
            h[np.repeat(code, np.diff(offsets))] = 0
        return lines, offsets, h, code

    def keys(self, batch: pa.Table) -> tuple[pa.Table, None]:
        lines, offsets, h, _ = self._hashes(batch)
        doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        order = np.lexsort((h, doc))
        hs, ds = h[order], doc[order]
        first = np.ones(len(hs), dtype=bool)
        first[1:] = (hs[1:] != hs[:-1]) | (ds[1:] != ds[:-1])
        per_doc = hs[first & (hs != 0)]
        return pa.table([pa.array(per_doc, pa.uint64())], schema=self.key_schema), None

    def reduce(self, partition: pa.Table, side: Any = None) -> tuple[pa.Table, dict[str, Any]]:
        values, counts = np.unique(partition["_part_key"].to_numpy(), return_counts=True)
        frequent = values[counts >= self.params.min_count]
        return pa.table({"hash": pa.array(frequent, pa.uint64())}), {
            "distinct_lines": int(len(values)), "frequent_lines": int(len(frequent)),
            "line_occurrences_in_documents": int(counts.sum()),
        }

    def _frequent_set(self, decisions: Decisions) -> np.ndarray:
        if self._frequent_of is not decisions:
            parts = [t["hash"].to_numpy() for _, t in decisions.partitions() if t.num_rows]
            self._frequent = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)
            self._frequent_of = decisions
        assert self._frequent is not None
        return self._frequent

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        frequent = self._frequent_set(decisions)
        lines, offsets, h, code = self._hashes(batch)
        pos = np.searchsorted(frequent, h)
        drop = (h != 0) & (pos < len(frequent)) & (frequent[np.minimum(pos, len(frequent) - 1)] == h) \
            if len(frequent) else np.zeros(len(h), bool)
        dropped_per_doc = np.add.reduceat(drop.astype(np.int32), offsets[:-1]) if len(h) else \
            np.zeros(batch.num_rows, np.int32)
        dropped_per_doc[np.diff(offsets) == 0] = 0
        texts = batch["text"].to_pylist()
        reason: list[str | None] = [None] * batch.num_rows
        touched = np.flatnonzero(dropped_per_doc)
        if len(touched):
            line_list = lines.to_pylist()
            for d in touched:
                a, b = offsets[d], offsets[d + 1]
                kept = [line_list[i] for i in range(a, b) if not drop[i]]
                new = "\n".join(kept).strip("\n")
                texts[d] = new
                if len(new.split()) < self.params.min_words:
                    reason[d] = "too_short_after_line_dedup"
            batch = batch.set_column(batch.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
        batch = batch.set_column(batch.schema.get_field_index("text"), "text", pc.utf8_trim(batch["text"], "\n"))
        skipped = code & (not self.params.code)
        batch = batch.append_column("dup_lines_removed", pa.array(dropped_per_doc.astype(np.int32), mask=skipped))
        batch = batch.append_column("line_dedup_code", pa.array(code))
        return batch, pa.array(reason, pa.string())
