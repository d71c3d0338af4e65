"""`perplexity`: CCNet's KenLM perplexity per document, head/middle/tail buckets, and filtering.

A global step, because buckets come from per-language percentiles of the corpus itself (CCNet: 30th and 60th):
keys score every document (one pass, models loaded once per worker) and shuffle ``(lang, ppl)`` by language;
reduce computes each language's cutoffs; combine assigns a bucket to every document; apply annotates and filters.
Cutoffs given in the recipe are used as they are. A document whose language has no model keeps ``ppl`` null and
is never removed by this step.

``score: lines`` scores a document from its lines instead (:meth:`curate.lm.LineScores.line_aware_perplexity`):
CCNet's document perplexity times the character-weighted ``line_quantile`` of its line perplexities, geometrically
weighted by ``line_weight``; ``ppl`` then holds that score, and buckets, cutoffs and ``max_ppl`` apply to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, model_serializer, model_validator

from curate.steps.base import Decisions, GlobalStep, SideStore, StepContext, StepParams
from mixlab.paths import resolve_path

Bucket = Literal["head", "middle", "tail"]


class PerplexityParams(StepParams):
    models: dict[str, str] = Field(min_length=1, description="language -> model directory from `curate lm train`")
    lang: str | None = Field(default=None, description="language of every document; default: the `lang` column")
    percentiles: tuple[float, float] = Field(default=(30.0, 60.0), description="head/middle and middle/tail cuts")
    cutoffs: dict[str, tuple[float, float]] | None = Field(
        default=None, description="per language (head_max, middle_max) perplexity; computed from the corpus if absent")
    keep_buckets: list[Bucket] | None = Field(default=None, description="remove documents in other buckets")
    max_ppl: float | dict[str, float] | None = Field(default=None, description="remove documents above this")
    score: Literal["document", "lines"] = Field(
        default="document", description="document: CCNet's perplexity of the whole document; lines: "
        "ppl ** (1 - line_weight) * (line_quantile of the line perplexities, weighted by characters) ** line_weight")
    line_quantile: float = Field(default=0.25, gt=0, le=1, description="with score: lines, the quantile of line "
                                 "perplexities (by characters) that pulls the score")
    line_weight: float = Field(default=0.5, gt=0, le=1, description="with score: lines, its geometric weight")

    @model_validator(mode="after")
    def _check(self) -> "PerplexityParams":
        lo, hi = self.percentiles
        if not 0 < lo < hi < 100:
            raise ValueError("percentiles must satisfy 0 < head < tail < 100")
        for lang, (a, b) in (self.cutoffs or {}).items():
            if not 0 < a <= b:
                raise ValueError(f"cutoffs.{lang}: need 0 < head_max <= middle_max")
        given = sorted({"line_quantile", "line_weight"} & self.model_fields_set)
        if self.score == "document" and given:
            raise ValueError(f"{' and '.join(given)}: only used with score: lines")
        return self

    @model_serializer(mode="wrap")
    def _without_default_score(self, handler: Any) -> dict[str, Any]:
        """The CCNet score leaves the dump (and so the recipe hash) as it was before ``score`` existed."""
        data = handler(self)
        if self.score == "document":
            for key in ("score", "line_quantile", "line_weight"):
                data.pop(key, None)
        return data


class Perplexity(GlobalStep):
    name = "perplexity"
    Params = PerplexityParams
    columns = {"ppl": pa.float32(), "ppl_bucket": pa.string()}
    histograms = {"ppl": [10, 30, 100, 300, 1000, 3000, 10000, 100000]}
    key_schema = pa.schema([("_part_key", pa.uint64()), ("lang", pa.string()), ("ppl", pa.float64())])
    side_schema = pa.schema([("_pos", pa.int64()), ("lang", pa.string()), ("ppl", pa.float64())])
    has_combine = True

    def __init__(self, params: PerplexityParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self._models: dict[str, Any] = {}

    @classmethod
    def model_dir(cls, path: str, base: Path) -> Path:
        return resolve_path(base, path)

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        assert isinstance(params, PerplexityParams)
        if params.lang is None and "lang" not in schema.names:
            raise ValueError("documents have no `lang` column: put langid before this step, or set lang: xx")
        for lang, path in params.models.items():
            d = cls.model_dir(path, ctx.base)
            for name in ("sp.model", "lm.binary"):
                if not (d / name).is_file():
                    raise ValueError(f"models.{lang}: {d} has no {name} (build it with `curate lm train`)")

    def _model(self, lang: str) -> Any:
        if lang not in self._models:
            from curate.lm import LanguageModel

            self._models[lang] = LanguageModel(self.model_dir(self.params.models[lang], self.ctx.base))
        return self._models[lang]

    def _langs(self, batch: pa.Table) -> np.ndarray:
        if self.params.lang is not None:
            return np.full(batch.num_rows, self.params.lang, dtype=object)
        return np.asarray(batch["lang"].to_pylist(), dtype=object)

    def keys(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        langs = self._langs(batch)
        ppl = np.full(batch.num_rows, np.nan)
        for lang in set(langs.tolist()) & set(self.params.models):
            rows = np.flatnonzero(langs == lang)
            texts = pc.take(batch["text"], pa.array(rows))
            if self.params.score == "lines":
                ppl[rows] = self._model(lang).line_scores(texts).line_aware_perplexity(
                    self.params.line_quantile, self.params.line_weight)
            else:
                ppl[rows] = self._model(lang).perplexity(texts)
        scored = np.flatnonzero(~np.isnan(ppl))
        part = np.fromiter((xxhash.xxh3_64_intdigest(str(langs[i]).encode()) for i in scored), np.uint64, len(scored))
        keys = pa.table([pa.array(part), pa.array(langs[scored].tolist(), pa.string()), pa.array(ppl[scored])],
                        schema=self.key_schema)
        side = pa.table([batch["_pos"], pa.array(langs.tolist(), pa.string()), pa.array(ppl, from_pandas=True)],
                        schema=self.side_schema)
        return keys, side

    def reduce(self, partition: pa.Table, side: SideStore | None) -> tuple[pa.Table, dict[str, Any]]:
        rows: dict[str, list] = {"lang": [], "head_max": [], "middle_max": [], "documents": []}
        given = self.params.cutoffs or {}
        lo, hi = self.params.percentiles
        for lang in sorted(set(partition["lang"].to_pylist())):
            values = partition.filter(pc.equal(partition["lang"], lang))["ppl"].to_numpy()
            head, middle = given.get(lang) or tuple(np.percentile(values, [lo, hi]).tolist())
            for k, v in (("lang", lang), ("head_max", head), ("middle_max", middle), ("documents", len(values))):
                rows[k].append(v)
        cut = pa.table(rows, schema=pa.schema([("lang", pa.string()), ("head_max", pa.float64()),
                                               ("middle_max", pa.float64()), ("documents", pa.int64())]))
        return cut, {"scored_documents": int(partition.num_rows)}

    def combine(self, reduced: Decisions, side: SideStore | None, out: Path) -> tuple[pa.Table, dict[str, Any]]:
        assert side is not None
        cuts = pa.concat_tables([t for _, t in reduced.partitions()]).to_pylist()
        cutoffs = {c["lang"]: (c["head_max"], c["middle_max"]) for c in cuts}
        parts = []
        for unit, t in enumerate(side.tables):
            if t.num_rows == 0:
                continue
            ppl, langs = t["ppl"].to_numpy(), np.asarray(t["lang"].to_pylist(), dtype=object)
            bucket, reason = self._decide(ppl, langs, cutoffs)
            parts.append(pa.table({"_unit": pa.array(np.full(t.num_rows, unit, np.int32)), "_pos": t["_pos"],
                                   "ppl": pa.array(ppl, from_pandas=True),
                                   "ppl_bucket": pa.array(bucket.tolist(), pa.string()),
                                   "reason": pa.array(reason.tolist(), pa.string())}))
        schema = pa.schema([("_unit", pa.int32()), ("_pos", pa.int64()), ("ppl", pa.float64()),
                            ("ppl_bucket", pa.string()), ("reason", pa.string())])
        decisions = pa.concat_tables(parts) if parts else schema.empty_table()
        stats = {"cutoffs": {c["lang"]: {"head_max": c["head_max"], "middle_max": c["middle_max"],
                                         "documents": c["documents"]} for c in cuts},
                 "percentiles": list(self.params.percentiles),
                 "cutoffs_from": "recipe" if self.params.cutoffs else "corpus percentiles"}
        if self.params.score == "lines":
            stats["score"] = {"method": "lines", "line_quantile": self.params.line_quantile,
                              "line_weight": self.params.line_weight}
        return decisions, stats

    def _decide(self, ppl: np.ndarray, langs: np.ndarray, cutoffs: dict[str, tuple[float, float]]
                ) -> tuple[np.ndarray, np.ndarray]:
        p: PerplexityParams = self.params
        head = np.array([cutoffs.get(l, (np.nan, np.nan))[0] for l in langs], dtype=np.float64)
        middle = np.array([cutoffs.get(l, (np.nan, np.nan))[1] for l in langs], dtype=np.float64)
        scored = ~np.isnan(ppl)
        bucket = np.full(len(ppl), None, dtype=object)
        with np.errstate(invalid="ignore"):
            bucket[scored] = np.where(ppl[scored] <= head[scored], "head",
                                      np.where(ppl[scored] <= middle[scored], "middle", "tail"))
        reason = np.full(len(ppl), None, dtype=object)
        if p.keep_buckets is not None:
            drop = scored & ~np.isin(bucket.astype(str), p.keep_buckets)
            reason[drop] = "ppl_bucket_" + bucket[drop].astype(str)
        if p.max_ppl is not None:
            limit = np.array([p.max_ppl.get(l, np.inf) if isinstance(p.max_ppl, dict) else p.max_ppl for l in langs],
                             dtype=np.float64)
            with np.errstate(invalid="ignore"):
                reason[scored & (ppl > limit)] = "ppl_above_max"
        return bucket, reason

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        cols = decisions.lookup(batch, {"ppl": pa.float64(), "ppl_bucket": pa.string(), "reason": pa.string()})
        batch = batch.append_column("ppl", cols["ppl"]).append_column("ppl_bucket", cols["ppl_bucket"])
        return batch, cols["reason"]
