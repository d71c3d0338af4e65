"""`quality_classifier`: score documents with a fastText classifier from `curate classifier train` and remove the
ones below ``threshold``. The score (P(reference quality)) feeds `minhash_dedup`'s ``keep: best_quality``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.classifier import prepare, score
from curate.models import load_fasttext
from curate.steps.base import MapStep, StepContext, StepParams
from mixlab.paths import resolve_path


class QualityClassifierParams(StepParams):
    model: str = Field(description="directory written by `curate classifier train`")
    threshold: float | None = Field(default=0.5, ge=0, le=1, description="remove below; null: annotate only")
    max_chars: int = Field(default=10_000, ge=100)


class QualityClassifier(MapStep):
    name = "quality_classifier"
    Params = QualityClassifierParams
    columns = {"quality_score": pa.float32()}
    histograms = {"quality_score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}

    def __init__(self, params: QualityClassifierParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self.model: Any = None

    @classmethod
    def model_file(cls, params: QualityClassifierParams, base: Path) -> Path:
        return resolve_path(base, params.model) / "model.bin"

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        assert isinstance(params, QualityClassifierParams)
        f = cls.model_file(params, ctx.base)
        if not f.is_file():
            raise ValueError(f"model: {f} does not exist (train one with `curate classifier train`)")

    def setup(self) -> None:
        self.model = load_fasttext(self.model_file(self.params, self.ctx.base))

    def annotate(self, batch: pa.Table) -> pa.Table:
        texts = prepare(batch["text"], self.params.max_chars)
        return batch.append_column("quality_score", pa.array(score(self.model, texts).astype(np.float32)))

    def decide(self, batch: pa.Table) -> pa.Array:
        if self.params.threshold is None:
            return pa.nulls(batch.num_rows, pa.string())
        low = pc.less(batch["quality_score"], pa.scalar(self.params.threshold, pa.float32()))
        return pc.if_else(low, pa.scalar("low_quality_score"), pa.scalar(None, pa.string()))
