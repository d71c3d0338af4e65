"""The data card: a Markdown summary of a corpus, rendered from its manifest alone (so it is reproducible)."""

from __future__ import annotations

from typing import Any

from curate import languages


def _n(x: int) -> str:
    return f"{x:,}"


def _mb(x: int) -> str:
    return f"{x / 1e6:,.2f}"


def render(m: dict[str, Any]) -> str:
    acc = m["accounting"]
    out = [f"# Data card: {m['name']}", "",
           f"Built by mixlab {m['tool_versions']['mixlab']} from recipe `{m['recipe_hash'][:12]}` "
           f"(seed {m['seed']}). Corpus hash `{m['corpus_sha256'][:16]}`.", "",
           "## Sources", "", "| domain | format | files | first file |", "|---|---|---:|---|"]
    for s in m["sources"]:
        out.append(f"| {s['domain']} | {s['format']} | {len(s['files'])} | `{s['files'][0]}` |")
    out += ["", "## Accounting", "",
            f"Documents read **{_n(acc['read'])}** = kept **{_n(acc['kept'])}** + removed "
            f"**{_n(acc['removed_total'])}** + errored **{_n(acc['errored'])}** "
            f"({'balanced' if acc['balanced'] else 'NOT BALANCED'}).", "",
            "## Step funnel", "", "| step | documents in | removed | kept | share removed |", "|---|---:|---:|---:|---:|"]
    for f in m["funnel"]:
        share = f["removed"] / f["documents_in"] if f["documents_in"] else 0.0
        out.append(f"| {f['step']} | {_n(f['documents_in'])} | {_n(f['removed'])} | "
                   f"{_n(f['documents_in'] - f['removed'])} | {share:.1%} |")
    out += ["", "## Removal reasons", "", "| step | reason | documents |", "|---|---|---:|"]
    for step, reasons in acc["removed"].items():
        for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"| {step} | {reason} | {_n(count)} |")
    if m["errors"]["by_kind"]:
        out += ["", "## Errors", "", "| kind | records |", "|---|---:|"]
        out += [f"| {k} | {_n(v)} |" for k, v in m["errors"]["by_kind"].items()]
    if m.get("languages"):
        out += languages.card_lines(m["languages"])
    out += ["", "## Domains", "",
            f"Tokens are estimated {m['token_estimate']}." if m.get("token_estimate") else
            f"Tokens are estimated as text bytes / {m['bytes_per_token_estimate']:g}.", "",
            "| domain | documents | MB of text | est. tokens | shards | mixture weight |",
            "|---|---:|---:|---:|---:|---:|"]
    for d, v in m["domains"].items():
        out.append(f"| {d} | {_n(v['docs'])} | {_mb(v['bytes'])} | {_n(v['est_tokens'])} | {len(v['shards'])} | "
                   f"{m['mixture'].get(d, 0.0):.4f} |")
    method = m["recipe"]["mixture"]["method"]
    out += ["", f"Mixture method: `{method}` (see `mixture.json`).", "",
            "## Files", "", "- `data/<domain>/part-*.parquet`: kept documents (columns: "
            "`id`, `text`, `domain`, `source` and the annotations of every step)",
            f"- `removed/<step>/`: removed documents with `reason` (kept: {m['keep_removed']})",
            "- `errors/`: records that could not be read, with `source` and `location`",
            "- `stats/<step>.json`: per-step counters and histograms", ""]
    return "\n".join(out)
