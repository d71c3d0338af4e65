"""Domain weights from per-domain token counts: natural, uniform, temperature, manual."""

from __future__ import annotations

from typing import Any

from curate.recipe import Mixture


def weigh(mixture: Mixture, tokens: dict[str, int]) -> dict[str, Any]:
    """Return the content of ``mixture.json``: weights (sum to 1, sorted by domain), method and provenance."""
    domains = sorted(tokens)
    if mixture.method == "natural":
        raw = {d: float(tokens[d]) for d in domains}
        why = "proportional to each domain's estimated tokens after curation"
    elif mixture.method == "uniform":
        raw = {d: 1.0 for d in domains if tokens[d] > 0}
        why = "equal weight per non-empty domain"
    elif mixture.method == "temperature":
        assert mixture.tau is not None
        raw = {d: float(tokens[d]) ** (1.0 / mixture.tau) for d in domains}
        why = f"token share raised to 1/tau, tau={mixture.tau}"
    else:
        raw = {d: float((mixture.weights or {}).get(d, 0.0)) for d in domains}
        why = "weights given in the recipe, normalized"
    total = sum(raw.values())
    weights = {d: (raw.get(d, 0.0) / total if total > 0 else 0.0) for d in domains}
    empty = [d for d in domains if tokens[d] == 0 and weights[d] > 0]
    return {"weights": weights, "method": mixture.method, "provenance": why,
            "tokens": {d: tokens[d] for d in domains}, "tau": mixture.tau,
            "warnings": [f"domain {d!r} has weight {weights[d]:.3f} but no documents left" for d in empty]}
