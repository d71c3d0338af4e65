"""What a mixture study (`train/ablate.py`) concludes: a regression from mixture weights to the objective, judged by
cross-validation, a mixture proposed by searching it, plots, ``report.md`` and ``mixture.json``.

The method is RegMix's (Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model Pre-training"):
fit a linear model and a gradient-boosted tree model (scikit-learn) on (weights -> objective) of small proxy runs,
check how well each ranks mixtures it has not seen (Spearman's rank correlation on k-fold held-out mixtures), score
many candidate mixtures with the better model and average the best ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.layout import write_text_atomic
from mixlab.logs import log

if TYPE_CHECKING:
    from train.ablate import Study

LOW_SPEARMAN = 0.5
"""below this held-out Spearman the fitted model orders unseen mixtures too poorly to trust its proposal"""
MIN_MIXTURES = 6
"""with fewer mixtures than this, a held-out Spearman says little whatever its value"""
SEARCH_SAMPLES = 100_000
SEARCH_TOP = 100
SEARCH_CONCENTRATIONS = (0.5, 1.0, 2.0, 4.0)
PLOTS = {"loss_vs_weight": "loss_vs_weight.png", "predicted_vs_observed": "predicted_vs_observed.png",
         "best_mixtures": "best_mixtures.png"}


@dataclass
class Fit:
    """One regression model: fitted on every run, and its k-fold held-out predictions."""

    name: str
    model: Any  # a fitted scikit-learn regressor
    heldout: np.ndarray  # (runs,) prediction of each run by the model fitted without its mixture
    spearman: float  # held-out predictions vs observed objective, over mixtures (means across seeds); nan if undefined
    pvalue: float
    mae: float  # mean absolute held-out error over runs
    r2_train: float  # in-sample R^2


def _models(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    return {"linear": LinearRegression(),
            "gradient boosting": GradientBoostingRegressor(n_estimators=100, learning_rate=0.1, max_depth=2,
                                                           min_samples_leaf=2, random_state=seed)}


def mixture_means(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct groups (mixtures) in first-seen order and the mean of ``values`` over each one's runs."""
    order = list(dict.fromkeys(groups.tolist()))
    return np.array(order), np.array([values[groups == g].mean() for g in order])


def center_by_seed(y: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``y`` (runs,) minus the mean of its seed's runs, plus the overall mean. When every seed runs every mixture,
    what a seed shares across mixtures (its initialization, its data order) cancels, and what is left
    differs only by mixture and noise: a paired comparison."""
    out = y.astype(np.float64).copy()
    for s in np.unique(seeds):
        out[seeds == s] -= y[seeds == s].mean()
    return out + y.mean()


def fit(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> list[Fit]:
    """Fit each model on (X: (runs, domains) weights, y: (runs,) objective) and cross-validate it with group k-fold
    (k = min(5, mixtures); ``groups`` names each run's mixture, so a mixture's seeds are never split between
    training and held-out). The Spearman is computed over mixtures: held-out prediction vs mean observed objective.
    ValueError with fewer than 2 mixtures."""
    from scipy.stats import spearmanr
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise ValueError("a regression needs at least 2 distinct mixtures")
    folds = list(GroupKFold(n_splits=min(5, n_groups)).split(X, y, groups))
    fits = []
    for name, template in _models(seed).items():
        heldout = np.empty_like(y, dtype=np.float64)
        for train, test in folds:
            heldout[test] = clone(template).fit(X[train], y[train]).predict(X[test])
        model = clone(template).fit(X, y)
        _, observed = mixture_means(y, groups)
        _, predicted = mixture_means(heldout, groups)
        if np.ptp(predicted) == 0 or np.ptp(observed) == 0:
            rho, p = float("nan"), float("nan")
        else:
            res = spearmanr(predicted, observed)
            rho, p = float(res.statistic), float(res.pvalue)
        r2 = float(model.score(X, y)) if np.ptp(y) > 0 else float("nan")
        fits.append(Fit(name, model, heldout, rho, p, float(np.mean(np.abs(heldout - y))), r2))
    return fits


def best_fit(fits: list[Fit]) -> Fit:
    """The model with the highest held-out Spearman (an undefined one counts as -1; ties go to the first, linear)."""
    return max(fits, key=lambda f: -1.0 if math.isnan(f.spearman) else f.spearman)


def warnings_for(fit_: Fit, mixtures: int) -> list[str]:
    """Plain-words warnings about trusting ``fit_``'s proposal."""
    out = []
    if mixtures < MIN_MIXTURES:
        out.append(f"Only {mixtures} mixtures: too few to judge the regression (use at least {MIN_MIXTURES}; RegMix "
                   "fits hundreds).")
    if math.isnan(fit_.spearman):
        out.append("The held-out Spearman is undefined (the held-out predictions, or the observed objectives, are "
                   "all equal): the regression cannot rank mixtures, so its proposed mixture is not evidence of "
                   "anything.")
    elif fit_.spearman < LOW_SPEARMAN:
        out.append(f"Low held-out Spearman ({fit_.spearman:.2f} < {LOW_SPEARMAN}): on mixtures it was not fitted on, "
                   "the regression orders them little better than chance, so do not trust the proposed mixture. "
                   "More mixtures, more seeds or a larger token budget per run make the objective less noisy.")
    elif fit_.pvalue > 0.05:
        out.append(f"The held-out Spearman ({fit_.spearman:.2f}) could arise by chance with this few mixtures "
                   f"(p = {fit_.pvalue:.2f} > 0.05).")
    return out


def propose(fit_: Fit, X: np.ndarray, natural: np.ndarray, seed: int = 0, samples: int = SEARCH_SAMPLES,
            top: int = SEARCH_TOP) -> tuple[np.ndarray, float, int]:
    """Search ``fit_``'s model for the mixture with the lowest predicted objective, as RegMix does: score
    ``samples`` candidates (Dirichlet around ``natural`` at concentrations :data:`SEARCH_CONCENTRATIONS`, plus the
    observed mixtures ``X``), keep those whose every weight lies within the range the study tried for that domain
    (no extrapolation), and average the ``top`` best. Returns (weights (domains,), predicted objective, candidates
    searched)."""
    rng = np.random.default_rng([seed, 0x5EA])
    k = X.shape[1]
    parts = [rng.dirichlet(np.maximum(natural * c * k, 1e-3), size=samples // len(SEARCH_CONCENTRATIONS))
             for c in SEARCH_CONCENTRATIONS]
    candidates = np.concatenate([X, *parts])
    inside = np.all((candidates >= X.min(axis=0) - 1e-12) & (candidates <= X.max(axis=0) + 1e-12), axis=1)
    candidates = candidates[inside]
    scores = fit_.model.predict(candidates)
    best = candidates[np.argsort(scores, kind="stable")[:top]].mean(axis=0)
    best = best / best.sum()
    return best, float(fit_.model.predict(best[None])[0]), len(candidates)


# -- plots -------------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_vs_weight(path: Path, rows: list[dict[str, Any]], domains: list[str]) -> None:
    """One panel per domain: each run's held-out loss on the domain against the domain's weight."""
    plt = _pyplot()
    cols = min(4, len(domains))
    nrows = math.ceil(len(domains) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False)
    seeds = sorted({r["seed"] for r in rows})
    for ax, d in zip(axes.flat, domains):
        for i, s in enumerate(seeds):
            pts = [(r[f"weight_{d}"], r[f"loss_{d}"]) for r in rows if r["seed"] == s]
            ax.scatter(*zip(*pts), s=16, marker="os^vD"[i % 5], alpha=0.75, label=f"seed {s}")
        ax.set_title(d)
        ax.set_xlabel(f"weight of {d}")
        ax.set_ylabel("held-out loss (nats/token)")
    for ax in list(axes.flat)[len(domains):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predicted_vs_observed(path: Path, fits: list[Fit], y: np.ndarray, objective: str) -> None:
    """Each model's k-fold held-out prediction of every run against its observed objective, with y = x."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fits), figsize=(4.2 * len(fits), 4.0), squeeze=False)
    lo, hi = float(min(y.min(), *(f.heldout.min() for f in fits))), float(max(y.max(), *(f.heldout.max() for f in fits)))
    pad = (hi - lo) * 0.05 or 0.01
    for ax, f in zip(axes.flat, fits):
        ax.scatter(y, f.heldout, s=16, alpha=0.75)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, ls="--")
        rho = "undefined" if math.isnan(f.spearman) else f"{f.spearman:.2f}"
        ax.set_title(f"{f.name}: held-out Spearman {rho}", fontsize=9)
        ax.set_xlabel(f"observed: {objective}", fontsize=8)
        ax.set_ylabel("predicted (k-fold held out)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_best_mixtures(path: Path, table: list[dict[str, Any]], domains: list[str],
                       proposal: dict[str, Any], show: int = 10) -> None:
    """The best mixtures by mean objective, and the proposed one, as stacked weight bars labelled with their
    objective."""
    plt = _pyplot()
    entries = [(f"proposed (predicted {proposal['predicted']:.3f})", proposal["weights"])] + \
        [(f"{t['mixture']} ({t['mean']:.3f} ± {t['std']:.3f})", t["weights"]) for t in table[:show]]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(entries) + 1.2))
    colors = plt.get_cmap("tab10")
    for i, (_, w) in enumerate(reversed(entries)):
        left = 0.0
        for j, d in enumerate(domains):
            ax.barh(i, w[d], left=left, color=colors(j % 10), label=d if i == 0 else None)
            left += w[d]
    ax.set_yticks(range(len(entries)), [e[0] for e in reversed(entries)], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("weight")
    ax.set_title("best mixtures by objective (mean ± std over seeds)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- report ------------------------------------------------------------------------------------------------------
def mixture_table(rows: list[dict[str, Any]], domains: list[str]) -> list[dict[str, Any]]:
    """Per mixture: its weights, mean and std (across seeds, ddof=1; 0 with one seed) of each domain's loss and
    of the objective, sorted by the mean objective (ties by name)."""
    table = []
    for name in dict.fromkeys(r["mixture"] for r in rows):
        mine = [r for r in rows if r["mixture"] == name]
        obj = np.array([r["objective"] for r in mine])
        table.append({"mixture": name, "seeds": len(mine), "weights": {d: mine[0][f"weight_{d}"] for d in domains},
                      "mean": float(obj.mean()), "std": float(obj.std(ddof=1)) if len(obj) > 1 else 0.0,
                      "losses": {d: (float(np.mean([r[f"loss_{d}"] for r in mine])),
                                     float(np.std([r[f"loss_{d}"] for r in mine], ddof=1)) if len(mine) > 1 else 0.0)
                                 for d in domains}})
    return sorted(table, key=lambda t: (t["mean"], t["mixture"]))


def seed_agreement(rows: list[dict[str, Any]]) -> float | None:
    """Mean Spearman rank correlation of the objective between every pair of seeds, over the mixtures both ran: how
    consistently the seeds order the mixtures (a ceiling for any regression). None with one seed or < 3 mixtures."""
    from scipy.stats import spearmanr

    by_seed: dict[int, dict[str, float]] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["mixture"]] = row["objective"]
    values = []
    for a, b in combinations(sorted(by_seed), 2):
        common = sorted(set(by_seed[a]) & set(by_seed[b]))
        xa, xb = [by_seed[a][m] for m in common], [by_seed[b][m] for m in common]
        if len(common) >= 3 and np.ptp(xa) > 0 and np.ptp(xb) > 0:
            values.append(float(spearmanr(xa, xb).statistic))
    return float(np.mean(values)) if values else None


def _fmt(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"


def write(study: "Study", rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit, search, plot and write ``report.md`` and ``mixture.json`` into the study's output directory; returns
    ``{"report", "mixture", "proposal", "predicted", "model", "spearman", "warnings", "best"}``."""
    from train.ablate import natural_weights, objective_name

    out, domains, cfg = study.out, study.domains, study.cfg
    X = np.array([[r[f"weight_{d}"] for d in domains] for r in rows])
    groups = np.array([r["mixture"] for r in rows])
    y = center_by_seed(np.array([r["objective"] for r in rows]), np.array([r["seed"] for r in rows]))
    fits = fit(X, y, groups, cfg.seed)
    chosen = best_fit(fits)
    natural = natural_weights(study.corpus)
    weights, predicted, searched = propose(chosen, X, np.array([natural[d] for d in domains]), cfg.seed)
    proposal = {d: round(float(w), 6) for d, w in zip(domains, weights)}
    table = mixture_table(rows, domains)
    n_mix = len(table)
    warnings = warnings_for(chosen, n_mix)
    agreement = seed_agreement(rows)
    if agreement is not None and agreement < LOW_SPEARMAN:
        warnings.append(f"The seeds disagree on the order of the mixtures (mean Spearman between seeds "
                        f"{agreement:.2f}): seed noise is as large as the differences between mixtures, so no "
                        "regression can rank them well. Raise the token budget or add seeds.")
    obj_name = objective_name(cfg.objective)

    plot_loss_vs_weight(out / PLOTS["loss_vs_weight"], rows, domains)
    plot_predicted_vs_observed(out / PLOTS["predicted_vs_observed"], fits, y,
                               obj_name + (", seed-centered" if len(cfg.seeds) > 1 else ""))
    plot_best_mixtures(out / PLOTS["best_mixtures"], table, domains, {"weights": proposal, "predicted": predicted})

    best = table[0]
    mixture = {"weights": proposal, "method": "ablation",
               "provenance": f"train ablate: {chosen.name} regression of the {obj_name} on {len(rows)} runs "
                             f"({n_mix} mixtures x {len(cfg.seeds)} seeds, {study.tokens:,} tokens each), mean of "
                             f"the {SEARCH_TOP} best of {searched:,} candidates it scored",
               "objective": obj_name, "predicted_objective": predicted, "model": chosen.name,
               "heldout_spearman": None if math.isnan(chosen.spearman) else chosen.spearman,
               "best_observed": {"mixture": best["mixture"], "weights": best["weights"], "objective": best["mean"],
                                 "std": best["std"]},
               "warnings": warnings}
    write_text_atomic(out / "mixture.json", json.dumps(mixture, indent=2) + "\n")

    params = records[0]["parameters"]
    wall = sum(r["wall_seconds"] for r in records)
    o, m = cfg.optim, cfg.model
    model_desc = f"from {m.path}" if m.path else f"{m.model_type} " + (", ".join(f"{k}={v}" for k, v in
                                                                                   m.config.items()) or "defaults")
    lines = [
        f"# Mixture ablation on `{study.corpus.name}`", "",
        f"Objective: **{obj_name}** (lower is better). {len(rows)} runs: {n_mix} mixtures x {len(cfg.seeds)} seeds.",
        "", "## Setup", "",
        "| | |", "|:--|:--|",
        f"| corpus | `{study.corpus.name}` ({len(domains)} domains: {', '.join(domains)}; natural shares "
        + ", ".join(f"{d} {natural[d]:.3f}" for d in domains) + ") |",
        f"| proxy model | {model_desc}; {params:,} parameters |",
        f"| per run | {study.tokens:,} tokens = {study.steps} steps x {o.batch_size * o.grad_accum} sequences x "
        f"{cfg.data.seq_len} tokens; lr {o.lr:g}, warmup {o.warmup_steps}, cosine to {o.min_lr_ratio:g} x lr |",
        f"| held out | {cfg.data.heldout_fraction:g} of each domain's documents, the same for every run (a hash of "
        "the document id); loss on up "
        f"to {cfg.eval.tokens_per_domain:,} tokens per domain |",
        f"| seeds | {', '.join(map(str, cfg.seeds))} (a seed sets the initialization and the data order) |",
        f"| compute | {wall / 60:.1f} min of run wall time in all (the runs ran side by side) |", "",
        "## Mixtures by objective", "",
        "Mean ± standard deviation across seeds; held-out loss in nats per token.", "",
        "| # | mixture | " + " | ".join(f"w {d}" for d in domains) + " | " + " | ".join(f"loss {d}" for d in domains)
        + " | objective |",
        "|--:|:--|" + "--:|" * (2 * len(domains) + 1)]
    for i, t in enumerate(table, 1):
        lines.append(f"| {i} | {t['mixture']} | " + " | ".join(f"{t['weights'][d]:.3f}" for d in domains) + " | "
                     + " | ".join(_fmt(*t["losses"][d], t["seeds"]) for d in domains) + " | "
                     + f"**{_fmt(t['mean'], t['std'], t['seeds'])}** |")
    spread = max(t["mean"] for t in table) - best["mean"]
    mean_std = float(np.mean([t["std"] for t in table])) if len(cfg.seeds) > 1 else None
    lines += ["", f"Spread of the objective across mixtures: {spread:.4f}"
              + (f"; mean seed standard deviation {mean_std:.4f}." if mean_std is not None else ".")]
    if agreement is not None:
        lines.append(f"Mean Spearman between seeds (do the seeds order the mixtures alike?): {agreement:.2f}.")
    centered = ("Each run's objective is first centered on its seed's mean over all mixtures (every seed runs every "
                "mixture, so what a seed shares across them, its initialization and data order, "
                "cancels) and the overall mean added back. " if len(cfg.seeds) > 1 else "")
    lines += ["", "## Regression: weights -> objective", "",
              centered + f"Group {min(5, n_mix)}-fold cross-validation: each fold's mixtures (all their seeds) are held out, the "
              "model is fitted on the rest, and its predictions for the held-out mixtures are compared with what "
              "they scored. The Spearman rank correlation is over mixtures (predicted vs mean observed objective); "
              f"below {LOW_SPEARMAN} it is called low.", "",
              "| model | held-out Spearman | p | held-out MAE | in-sample R² |", "|:--|--:|--:|--:|--:|"]
    for f in fits:
        rho = "undefined" if math.isnan(f.spearman) else f"{f.spearman:.3f}"
        p = "" if math.isnan(f.pvalue) else f"{f.pvalue:.3f}"
        lines.append(f"| {f.name}{' (used)' if f is chosen else ''} | {rho} | {p} | {f.mae:.4f} | "
                     f"{'' if math.isnan(f.r2_train) else f'{f.r2_train:.3f}'} |")
    linear = next(f for f in fits if f.name == "linear")
    coef = linear.model.coef_ - linear.model.coef_.mean()
    lines += ["", "Linear model, per domain (coefficient minus their mean; the weights sum to 1, so only differences "
              "count): moving weight to a domain with a lower value lowers the predicted objective.", "",
              "| " + " | ".join(domains) + " |", "|" + "--:|" * len(domains),
              "| " + " | ".join(f"{c:+.3f}" for c in coef) + " |"]
    lines += ["", "## Proposed mixture", "",
              f"Searched with the {chosen.name} model (the higher held-out Spearman): {searched:,} candidates "
              f"(Dirichlet samples around the natural mixture at concentrations "
              f"{', '.join(f'{c:g}' for c in SEARCH_CONCENTRATIONS)}, and the studied mixtures), keeping only those "
              "whose every weight lies within the range this study tried for that domain; the proposal is the mean "
              f"of the {SEARCH_TOP} with the lowest predicted objective, as RegMix does."
              + (" A tree model predicts one value per region of weights, so a proposal close to a studied mixture "
                 "inherits that mixture's objective as its prediction." if chosen.name == "gradient boosting" else ""),
              "",
              "| " + " | ".join(domains) + " | predicted objective | best observed |",
              "|" + "--:|" * (len(domains) + 2),
              "| " + " | ".join(f"{proposal[d]:.3f}" for d in domains) + f" | {predicted:.4f} | "
              f"{best['mixture']}: {_fmt(best['mean'], best['std'], best['seeds'])} |", ""]
    if warnings:
        lines += [line for w in warnings for line in ("**Warning.** " + w, "")]
    lines += ["Written to `mixture.json` (the corpus mixture format). Train on it with", "", "```",
              "train pretrain CONFIG.yaml data.weights=OUT/mixture.json",
              "```", "", "or `curate mix CORPUS --weights mixture.json --tokens N --out DIR` for another trainer. "
              "A proposal is a prediction from small proxy runs: check it with a run of the size you care about.",
              "", "## Plots", "",
              f"![per-domain loss against its weight]({PLOTS['loss_vs_weight']})", "",
              f"![predicted against observed, cross-validated]({PLOTS['predicted_vs_observed']})", "",
              f"![best mixtures]({PLOTS['best_mixtures']})", "",
              "Per-run numbers: `results.csv`; each run's training output: `runs/<id>/`.", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    for w in warnings:
        log.warning(w)
    return {"report": out / "report.md", "mixture": out / "mixture.json", "proposal": proposal,
            "predicted": predicted, "model": chosen.name, "spearman": chosen.spearman, "warnings": warnings,
            "best": best}
