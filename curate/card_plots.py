"""The data card's figures: PNG plots drawn with matplotlib from numbers `curate.card` has already counted.

matplotlib is imported when a figure is drawn (never when `curate` starts) and always through its object API
(``Figure`` + the Agg canvas), so no GUI backend and no global pyplot state is involved. Each PNG carries the
numbers it draws as JSON in its ``mixlab:data`` text chunk (read it with ``PIL.Image.open(path).text``), so a
reader or a test can check a plot against the manifest without reading pixels. The same numbers give the same
bytes: the PNG holds no date and no software version.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any, Callable

DATA_KEY = "mixlab:data"
"""PNG text chunk holding the JSON of the numbers a figure draws"""

_DPI = 100
_KEPT, _REMOVED, _NOTE = "#3b75af", "#d1603d", "#555555"


def available() -> bool:
    """Whether matplotlib is installed (it is a dependency of mixlab; a broken install leaves the card without
    figures rather than failing a finished run). Looks the package up without importing it."""
    from importlib.util import find_spec

    try:
        return find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def draw(name: str, data: dict[str, Any]) -> bytes:
    """The PNG of figure ``name`` (a key of :data:`FIGURES`) drawn from ``data`` (JSON-serializable, in the form
    that figure's function documents), with ``data`` in its ``mixlab:data`` text chunk. Raises KeyError for an
    unknown name and ImportError when matplotlib is missing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = FIGURES[name][1](data)
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    FIGURES[name][0](fig, data)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None,
                                                        DATA_KEY: json.dumps(data, sort_keys=True)})
    return buf.getvalue()


def _si(x: float) -> str:
    """1234 -> '1.2k', 3e6 -> '3M': short axis labels."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _bin_labels(edges: list[float]) -> list[str]:
    """Labels of the bins (-inf, e0), [e0, e1), ..., [e_last, inf) of a stats histogram."""
    return [f"<{_si(edges[0])}", *(f"{_si(a)}–{_si(b)}" for a, b in zip(edges, edges[1:])), f"≥{_si(edges[-1])}"]


def _trim(counts: list[int], *keep_at: int) -> tuple[int, int]:
    """The first and one-past-last bin index holding a count, widened by one empty bin each side and to cover the
    bins ``keep_at``."""
    used = [i for i, c in enumerate(counts) if c] or [0]
    lo, hi = min(used[0], *keep_at) if keep_at else used[0], max(used[-1], *keep_at) if keep_at else used[-1]
    return max(0, lo - 1), min(len(counts), hi + 2)


# -- figures ---------------------------------------------------------------------------------------------------------
def _funnel(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"read", "errored", "kept", "steps": [{"step", "removed", "remaining", "reasons": {r: n}}]}``;
    ``remaining`` is what is left after the step, so the last one equals ``kept``."""
    ax = fig.add_subplot()
    steps = data["steps"]
    y = list(range(len(steps)))[::-1]
    remaining = [s["remaining"] for s in steps]
    removed = [s["removed"] for s in steps]
    ax.barh(y, remaining, color=_KEPT, label="documents left after the step")
    ax.barh(y, removed, left=remaining, color=_REMOVED, label="removed by the step")
    top = max(r + d for r, d in zip(remaining, removed)) or 1
    for yi, s in zip(y, steps):
        reasons = sorted(s["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
        text = f"{s['remaining']:,}"
        if s["removed"]:
            text += f"  (−{s['removed']:,}: " + ", ".join(f"{r} {n:,}" for r, n in reasons[:2])
            text += f", +{len(reasons) - 2} more)" if len(reasons) > 2 else ")"
        ax.text(s["remaining"] + s["removed"] + top * 0.01, yi, text, va="center", fontsize=8, color=_NOTE)
    ax.set_yticks(y, [s["step"] for s in steps])
    ax.set_xlim(0, top * 1.25)
    _integer_x(ax)
    ax.set_xlabel("documents")
    ax.set_title(f"Processing funnel: {data['read']:,} read, {data['errored']:,} errored, {data['kept']:,} kept")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=4.2, ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def _funnel_size(data: dict[str, Any]) -> tuple[float, float]:
    return 10.0, 1.5 + 0.42 * len(data["steps"])


def _lengths(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"edges": [bytes ...], "domains": {d: {"counts": [...], "docs", "bytes"}}}``; a document of
    ``n`` UTF-8 bytes is counted in the bin ``[e_i, e_i+1)`` holding ``n`` (clipped into the edges' range)."""
    edges, domains = data["edges"], data["domains"]
    allc = [sum(c) for c in zip(*(v["counts"] for v in domains.values()))]
    lo, hi = _trim(allc)
    axes = fig.subplots(len(domains), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (d, v) in zip(axes, domains.items()):
        ax.stairs(v["counts"][lo:hi], edges[lo:hi + 1], fill=True, color=_KEPT)
        mean = v["bytes"] / v["docs"] if v["docs"] else 0
        ax.set_ylabel("documents", fontsize=8)
        _integer_y(ax)
        ax.set_title(f"{d}: {v['docs']:,} documents, mean {_si(mean)}B", loc="left", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_xscale("log")
    _plain_log_ticks(axes[-1], edges[lo], edges[hi])
    axes[-1].set_xlabel("document length (UTF-8 bytes, log scale)")
    fig.suptitle("Document length per domain (kept documents)")


def _lengths_size(data: dict[str, Any]) -> tuple[float, float]:
    return 9.0, max(2.8, 0.9 + 1.25 * len(data["domains"]))


def _languages(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"domains": {d: {lang: docs}}, "shown": [lang ...]}``: the kept documents of each domain by
    their ``lang`` annotation (``none``: not identified, e.g. a domain outside langid's scope); languages not in
    ``shown`` are drawn together as 'other'."""
    ax = fig.add_subplot()
    from matplotlib import colormaps

    domains, shown = data["domains"], data["shown"]
    palette = colormaps["tab10"].colors
    names = list(domains)[::-1]
    left = [0] * len(names)
    groups = [(lang, palette[i % len(palette)]) for i, lang in enumerate(shown)]
    groups += [("other", "#9a9a9a"), ("none", "#dddddd")]
    for lang, color in groups:
        if lang == "other":
            widths = [sum(n for k, n in domains[d].items() if k not in shown and k != "none") for d in names]
        else:
            widths = [domains[d].get(lang, 0) for d in names]
        if not any(widths):
            continue
        label = "not identified" if lang == "none" else lang
        ax.barh(names, widths, left=left, color=color, label=label, edgecolor="white", linewidth=0.5)
        for i, w in enumerate(widths):
            total = sum(domains[names[i]].values())
            if total and w / total >= 0.08:
                ax.text(left[i] + w / 2, i, label, ha="center", va="center", fontsize=7,
                        color="black" if lang in ("other", "none") else "white")
        left = [a + b for a, b in zip(left, widths)]
    for i, d in enumerate(names):
        ax.text(left[i], i, f" {sum(domains[d].values()):,}", va="center", fontsize=8, color=_NOTE)
    ax.set_xlim(0, max(left or [1]) * 1.12 or 1)
    _integer_x(ax)
    ax.set_xlabel("kept documents")
    ax.set_title("Languages per domain (langid's `lang` of the kept documents)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=4.2, ncol=min(8, len(shown) + 2),
              fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def _languages_size(data: dict[str, Any]) -> tuple[float, float]:
    return 10.0, 2.0 + 0.45 * len(data["domains"])


def _perplexity(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"edges": [ppl ...], "population": str, "langs": {lang: {"kept": [...], "removed": [...],
    "head_max", "middle_max"}}}``: documents the perplexity step scored, binned like the length figure; ``kept``
    are in the corpus, ``removed`` left it at that step or a later one."""
    edges, langs = data["edges"], data["langs"]
    axes = fig.subplots(len(langs), 1, squeeze=False)[:, 0]
    for ax, (lang, v) in zip(axes, langs.items()):
        total = [a + b for a, b in zip(v["kept"], v["removed"])]
        cuts = [c for c in (v.get("head_max"), v.get("middle_max")) if c is not None]
        at = [max(0, min(len(total) - 1, _bin_of(edges, c))) for c in cuts]
        lo, hi = _trim(total, *at)
        ax.stairs(total[lo:hi], edges[lo:hi + 1], fill=True, color=_REMOVED, label="removed")
        ax.stairs(v["kept"][lo:hi], edges[lo:hi + 1], fill=True, color=_KEPT, label="kept")
        ax.set_xscale("log")
        _plain_log_ticks(ax, edges[lo], edges[hi])
        for c, name, side in zip(cuts, ("head ≤", "middle ≤"), ("right", "left")):
            ax.axvline(c, color="black", linestyle="--", linewidth=1)
            ax.text(c, 1.0, f" {name} {c:,.0f} ", transform=ax.get_xaxis_transform(), va="bottom", ha=side,
                    fontsize=8)
        ax.set_ylabel("documents")
        _integer_y(ax)
        ax.set_title(f"Perplexity ({lang}): {sum(total):,} documents scored, {sum(v['kept']):,} kept "
                     f"({data['population']})", fontsize=10, pad=16)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="upper right", fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xlabel("KenLM perplexity (log scale); dashed: bucket cutoffs (head | middle | tail)")


def _plain_log_ticks(ax: Any, lo: float, hi: float) -> None:
    """Tick labels of a log x axis as plain numbers (1,000 rather than 10^3), minor ones too over a short range."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def minor(x: float, _: Any) -> str:
        return _si(x) if x > 0 and round(x / 10 ** math.floor(math.log10(x))) in (2, 3, 5) else ""

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _si(x)))
    ax.xaxis.set_minor_formatter(FuncFormatter(minor) if hi / max(lo, 1e-12) < 30 else NullFormatter())
    ax.tick_params(axis="x", which="minor", length=3.5)


def _integer_y(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _integer_x(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _bin_of(edges: list[float], x: float) -> int:
    return sum(1 for e in edges[1:-1] if e <= x)


def _perplexity_size(data: dict[str, Any]) -> tuple[float, float]:
    return 9.0, 0.8 + 2.6 * len(data["langs"])


def _quality_score(fig: Any, data: dict[str, Any]) -> None:
    """``data``: the quality_classifier step's stats histogram ``{"edges", "counts", "threshold"}`` (bins
    (-inf, e0), ..., [e_last, inf) of P(reference quality), drawn on [0, 1])."""
    ax = fig.add_subplot()
    edges = [0.0, *data["edges"], 1.0]
    ax.stairs(data["counts"], edges, fill=True, color=_KEPT)
    if data.get("threshold") is not None:
        ax.axvline(data["threshold"], color="black", linestyle="--", linewidth=1)
        ax.text(data["threshold"], 1.0, f"threshold {data['threshold']:g}", transform=ax.get_xaxis_transform(),
                va="bottom", ha="center", fontsize=8)
    ax.set_xlim(0, 1)
    _integer_y(ax)
    ax.set_xlabel("quality_score: P(reference quality) from the fastText classifier")
    ax.set_ylabel("documents")
    ax.set_title(f"Quality-classifier scores of the {sum(data['counts']):,} documents it scored", pad=16)
    ax.spines[["top", "right"]].set_visible(False)


def _quality_score_size(data: dict[str, Any]) -> tuple[float, float]:
    return 8.0, 3.6


def _gopher(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"documents": n, "signals": {column: {"edges", "counts"}}}``, the quality step's stats
    histograms of its Gopher signals over the documents that reached it."""
    signals = data["signals"]
    cols = 3
    rows = math.ceil(len(signals) / cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (col, h) in zip(axes, signals.items()):
        labels = _bin_labels(h["edges"])
        ax.bar(range(len(h["counts"])), h["counts"], color=_KEPT)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(col, fontsize=9)
        _integer_y(ax)
        ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[len(signals):]:
        ax.set_visible(False)
    fig.suptitle(f"Gopher quality signals of the {data['documents']:,} documents that reached `quality`")


def _gopher_size(data: dict[str, Any]) -> tuple[float, float]:
    return 11.0, 0.6 + 2.5 * math.ceil(len(data["signals"]) / 3)


def _duplicates(fig: Any, data: dict[str, Any]) -> None:
    """``data``: ``{"exact": {size: groups}, "near": {size: clusters}, "population": str}`` (sizes as strings,
    JSON keys): how many groups of identical documents (exact_dedup) and near-duplicate clusters (minhash_dedup)
    had each size, counting every document of a group, the one kept included."""
    series = [(k, label, color) for k, label, color in (("exact", "exact duplicates (exact_dedup)", _KEPT),
                                                        ("near", "near duplicates (minhash_dedup)", _REMOVED))
              if data.get(k)]
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for ax, (key, label, color) in zip(axes, series):
        sizes = {int(s): n for s, n in data[key].items()}
        xs = sorted(sizes)
        if xs[-1] <= 40:
            ax.bar(xs, [sizes[x] for x in xs], color=color, width=0.8)
            ax.set_xticks(xs if len(xs) <= 20 else xs[:: math.ceil(len(xs) / 20)])
            ax.set_xlim(1.4, max(xs[-1], 6) + 0.6)
            _integer_y(ax)
        else:
            ax.plot(xs, [sizes[x] for x in xs], "o", color=color, markersize=4)
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("documents in the group")
        ax.set_ylabel("groups")
        ax.set_title(f"{label}: {sum(sizes.values()):,} groups, {sum(s * n for s, n in sizes.items()):,} docs",
                     fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Duplicate group sizes ({data['population']})")


def _duplicates_size(data: dict[str, Any]) -> tuple[float, float]:
    return 5.0 * sum(1 for k in ("exact", "near") if data.get(k)), 3.6


FIGURES: dict[str, tuple[Callable[[Any, dict[str, Any]], None], Callable[[dict[str, Any]], tuple[float, float]]]] = {
    "funnel": (_funnel, _funnel_size),
    "length": (_lengths, _lengths_size),
    "languages": (_languages, _languages_size),
    "perplexity": (_perplexity, _perplexity_size),
    "quality_score": (_quality_score, _quality_score_size),
    "gopher_signals": (_gopher, _gopher_size),
    "duplicates": (_duplicates, _duplicates_size),
}
"""figure name (the PNG's stem) -> (draw on a Figure, its size in inches from the data)"""
