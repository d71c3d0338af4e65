"""Registered curation steps. A recipe names a step by its ``name``; its params are validated by ``Params``."""

from __future__ import annotations

from curate.steps.base import GlobalStep, MapStep, Step
from curate.steps.code_quality import CodeQuality
from curate.steps.exact_dedup import ExactDedup
from curate.steps.langid import Langid
from curate.steps.line_dedup import LineDedup
from curate.steps.minhash import MinhashDedup
from curate.steps.normalize import Normalize
from curate.steps.perplexity import Perplexity
from curate.steps.quality import Quality
from curate.steps.quality_classifier import QualityClassifier

REGISTRY: dict[str, type[Step]] = {cls.name: cls for cls in (Normalize, ExactDedup, LineDedup, MinhashDedup, Quality, Langid, Perplexity,
                                                     QualityClassifier, CodeQuality)}

__all__ = ["REGISTRY", "Step", "MapStep", "GlobalStep"]
