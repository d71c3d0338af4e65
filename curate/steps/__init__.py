"""Registered curation steps. A recipe names a step by its ``name``; its params are validated by ``Params``.

``REGISTRY`` maps each name to its class and imports a step's module only when the class is first asked for, so
that reading a recipe loads the steps it names and nothing else (no model libraries for steps it does not use).
"""

from __future__ import annotations

import importlib
from typing import Iterator, Mapping

from curate.steps.base import GlobalStep, MapStep, Step

_MODULES = {
    "normalize": "curate.steps.normalize:Normalize",
    "exact_dedup": "curate.steps.exact_dedup:ExactDedup",
    "line_dedup": "curate.steps.line_dedup:LineDedup",
    "minhash_dedup": "curate.steps.minhash:MinhashDedup",
    "quality": "curate.steps.quality:Quality",
    "langid": "curate.steps.langid:Langid",
    "perplexity": "curate.steps.perplexity:Perplexity",
    "quality_classifier": "curate.steps.quality_classifier:QualityClassifier",
    "code_quality": "curate.steps.code_quality:CodeQuality",
    "url_filter": "curate.steps.url_filter:UrlFilter",
}
"""step name -> ``module:class``, in the order steps are listed to users"""


class _Registry(Mapping[str, type[Step]]):
    """Step name -> step class, each module imported on first look-up (a KeyError for an unknown name)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules
        self._loaded: dict[str, type[Step]] = {}

    def __getitem__(self, name: str) -> type[Step]:
        if name not in self._loaded:
            module, cls = self._modules[name].split(":")
            step = getattr(importlib.import_module(module), cls)
            assert step.name == name, f"{module}.{cls} is registered as {name!r} but named {step.name!r}"
            self._loaded[name] = step
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules


REGISTRY: Mapping[str, type[Step]] = _Registry(_MODULES)

__all__ = ["REGISTRY", "Step", "MapStep", "GlobalStep"]
