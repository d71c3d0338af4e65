"""A recipe's steps cut into segments, the unit of scheduling every executor runs the same way.

Segment k: [apply the previous global step] -> map steps -> [emit keys of the next global step].
Between segments a global step's keys are shuffled into partitions and reduced; the last segment writes the kept
documents per domain, and finalize cuts them into shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from curate.readers import READ_STEP, Unit, doc_schema, plan_units
from curate.recipe import Recipe, StepSpec
from curate.steps import GlobalStep
from curate.steps.base import StepContext
from mixlab.config import suggest
from mixlab.errors import ConfigError
from mixlab.logs import log


@dataclass
class Segment:
    index: int
    apply: StepSpec | None = None
    maps: list[StepSpec] = field(default_factory=list)
    keys: StepSpec | None = None

    @property
    def steps(self) -> list[StepSpec]:
        return ([self.apply] if self.apply else []) + self.maps

    @property
    def last(self) -> bool:
        return self.keys is None


@dataclass
class Plan:
    recipe: Recipe
    units: list[Unit]
    segments: list[Segment]
    schemas: list[pa.Schema]
    """schemas[k]: columns of the documents leaving segment k (hidden ``_unit``/``_pos`` included)."""
    domains: list[str]
    """The domains of the output (source domains, as routing steps rename them)."""
    step_schemas: dict[str, pa.Schema]
    """step name -> columns of the documents leaving that step (what its removed documents are written with);
    step ``read``: those the readers deliver."""

    @property
    def global_steps(self) -> list[StepSpec]:
        return [s.keys for s in self.segments if s.keys is not None]

    def spec(self, name: str) -> StepSpec:
        """The recipe's step named ``name`` (KeyError when the recipe has none)."""
        for spec in self.recipe.steps:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def output_schema(self) -> pa.Schema:
        last = self.schemas[-1]
        return pa.schema([f for f in last if not f.name.startswith("_")])


def is_global(spec: StepSpec) -> bool:
    return issubclass(spec.cls, GlobalStep)


def step_context(recipe: Recipe) -> StepContext:
    return StepContext(seed=recipe.model.seed, partitions=recipe.model.executor.partitions, base=recipe.base)


def build_plan(recipe: Recipe) -> Plan:
    segments = [Segment(0)]
    for spec in recipe.steps:
        if is_global(spec):
            segments[-1].keys = spec
            segments.append(Segment(len(segments), apply=spec))
        else:
            segments[-1].maps.append(spec)
    schema = doc_schema(recipe.model.sources)
    schemas = []
    step_schemas = {READ_STEP: schema}
    ctx = step_context(recipe)
    domains = {s.domain for s in recipe.model.sources}
    for seg in segments:
        for spec in seg.steps:
            for d in spec.params.domains or []:
                if d not in domains:
                    raise ConfigError(f"steps[{spec.index}].{spec.name}.domains: unknown domain {d!r}"
                                      f"{suggest(d, domains)} (domains here: {', '.join(sorted(domains))})")
            try:
                spec.cls.check_input(spec.params, schema, ctx)
                warnings = spec.cls.plan_warnings(spec.params, recipe)
            except (ValueError, ConfigError) as e:
                raise ConfigError(f"steps[{spec.index}].{spec.name}: {e}") from None
            for warning in warnings:
                log.warning(f"steps[{spec.index}].{spec.name}: {warning}")
            domains = spec.cls.output_domains(spec.params, domains)
            for name, dtype in spec.cls.columns.items():
                if name in schema.names:
                    raise ConfigError(f"steps[{spec.index}] {spec.name}: column {name!r} is already set by a step")
                schema = schema.append(pa.field(name, dtype))
            step_schemas[spec.name] = schema
        schemas.append(schema)
    _check_mixture(recipe, domains)
    names = [[recipe.source_name(p) for p in files] for files in recipe.files]
    units = plan_units(recipe.files, recipe.model.sources, names)
    return Plan(recipe, units, segments, schemas, sorted(domains), step_schemas)


def _check_mixture(recipe: Recipe, domains: set[str]) -> None:
    """A manual mixture names only output domains, and every domain that is not made by a routing step (such as
    langid's ``route``). A routed domain without a weight is allowed, since it may turn out empty; one that does
    not gets weight 0 with a warning (:func:`curate.mixture.weigh`)."""
    mixture = recipe.model.mixture
    if mixture.method != "manual":
        return
    given = set(mixture.weights or {})
    for d in sorted(given - domains):
        raise ConfigError(f"mixture.weights.{d}: unknown domain{suggest(d, domains)} "
                          f"(domains: {', '.join(sorted(domains))})")
    routed = domains - {s.domain for s in recipe.model.sources}
    for d in sorted(domains - given - routed):
        raise ConfigError(f"mixture.weights: no weight for domain {d!r}")
    if unweighted := sorted(routed - given):
        log.info(f"mixture.weights: no weight for the routed domain(s) {', '.join(unweighted)}; each gets weight 0, "
                 "with a warning if it has documents")
