"""Per-language keep rates of a corpus, for its manifest and data card: how many documents `langid` identified in
each language, and how many of those the corpus kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

IDENTIFIED = "identified:"
"""prefix of the `langid` step's notes that count documents identified per language"""


def keep_rates(root: Path, domains: dict[str, Any], notes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """``{lang: {identified, kept, keep_rate}}``, most identified first: ``identified`` from the langid step's
    ``notes`` (documents that reached langid, per language), ``kept`` from the ``lang`` column of the corpus's data
    shards (``domains``: the manifest's, paths relative to ``root``). Documents langid did not see (domains outside
    its scope, e.g. code) are in neither count."""
    identified = {k[len(IDENTIFIED):]: v for k, v in notes.items() if k.startswith(IDENTIFIED)}
    kept: dict[str, int] = {}
    for v in domains.values():
        for shard in v["shards"]:
            path = root / shard["path"]
            if "lang" not in pq.read_schema(path).names:
                continue
            for c in pc.value_counts(pq.read_table(path, columns=["lang"])["lang"].combine_chunks()).to_pylist():
                if c["values"] is not None:
                    kept[c["values"]] = kept.get(c["values"], 0) + c["counts"]
    order = sorted(identified, key=lambda lang: (-identified[lang], lang))
    return {lang: {"identified": identified[lang], "kept": kept.get(lang, 0),
                   "keep_rate": round(kept.get(lang, 0) / identified[lang], 4)} for lang in order if identified[lang]}


def card_lines(rates: dict[str, dict[str, Any]]) -> list[str]:
    """The data card's "Languages" section for :func:`keep_rates`' result."""
    out = ["", "## Languages", "", "Documents `langid` identified per language, and the share of them the corpus kept "
           "(domains outside langid's scope are not counted).", "",
           "| language | identified | kept | keep rate |", "|---|---:|---:|---:|"]
    out += [f"| {lang} | {r['identified']:,} | {r['kept']:,} | {r['keep_rate']:.1%} |" for lang, r in rates.items()]
    return out
