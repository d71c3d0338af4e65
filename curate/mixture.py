"""Domain weights: from per-domain token counts (natural, uniform, temperature, manual), or learned by DoReMi on the
corpus just written (method doremi: `train doremi`'s code, imported only then)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.recipe import Mixture, Recipe
from mixlab.logs import log


def weigh(mixture: Mixture, tokens: dict[str, int]) -> dict[str, Any]:
    """Return the content of ``mixture.json``: weights (sum to 1, sorted by domain), method and provenance.
    ValueError for method doremi, whose weights are learned (:func:`learn_doremi`)."""
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
    elif mixture.method == "manual":
        raw = {d: float((mixture.weights or {}).get(d, 0.0)) for d in domains}
        why = "weights given in the recipe, normalized"
    else:
        raise ValueError(f"method {mixture.method!r} is learned on the corpus: see learn_doremi")
    total = sum(raw.values())
    weights = {d: (raw.get(d, 0.0) / total if total > 0 else 0.0) for d in domains}
    empty = [d for d in domains if tokens[d] == 0 and weights[d] > 0]
    warnings = [f"domain {d!r} has weight {weights[d]:.3f} but no documents left" for d in empty]
    if mixture.method == "manual":
        unweighted = [d for d in domains if tokens[d] > 0 and d not in (mixture.weights or {})]
        warnings += [f"domain {d!r} (made by routing) has ~{tokens[d]:,} tokens but no weight in mixture.weights: "
                     f"it gets weight 0 (its documents are in data/{d}/, outside the mixture)" for d in unweighted]
        for w in warnings[len(empty):]:
            log.warning(f"mixture: {w}")
    return {"weights": weights, "method": mixture.method, "provenance": why,
            "tokens": {d: tokens[d] for d in domains}, "tau": mixture.tau, "warnings": warnings}


def learn_doremi(recipe: Recipe, root: Path, tokens: dict[str, int]) -> dict[str, Any]:
    """Run `train doremi` (``train.doremi.learn``) with the recipe's ``mixture.doremi`` config on the complete corpus
    at ``root`` (its manifest written) into ``root/doremi``, continuing a run found there; return the content of the
    corpus's ``mixture.json``: the learned weights for every domain in ``tokens`` (estimated tokens per domain, 0 for
    a domain without documents), method doremi, provenance, and DoReMi's parameters, rounds and held-out losses.
    Raises ConfigError or RunError as ``train doremi`` does."""
    from mixlab import logs
    from train.doremi import learn

    cfg = recipe.model.mixture.doremi_config(recipe.base, root)
    logs.configure_libraries()
    out = root / "doremi"
    learned = learn(cfg, resume=out.is_dir() and any(out.iterdir()))
    weights = {d: float(learned["weights"].get(d, 0.0)) for d in sorted(tokens)}
    return {"weights": weights, "method": "doremi",
            "provenance": f"{learned['provenance']}; the run is in doremi/ (mixture.json, trajectory.png, eval.json)",
            "tokens": {d: tokens[d] for d in sorted(tokens)}, "tau": None, "warnings": [],
            "doremi": {k: learned[k] for k in ("parameters", "natural_weights", "reference", "proxy", "rounds")}}
