"""`url_filter`: remove documents by their URL: a domain blocklist, URL regexes, and exact URL dedup corpus-wide.

The URL is the ``url`` column (``column``) that ``warc`` and ``wet`` sources write, and a jsonl, json or parquet
source with a ``url_field`` (C4's and RefinedWeb's ``url``); documents without one pass untouched. Rules, in order
(the first that matches is the reason):

* ``url_blocklisted``: the host (lowercase, port and a leading ``www.`` dropped) is a domain of a ``blocklist`` file
  or a subdomain of one. A blocklist file holds one domain per line; ``#`` starts a comment; a hosts-file line
  (``0.0.0.0 example.com``) gives its last field; a leading ``*.`` or ``.`` is dropped (the subdomains are always
  blocked). This is the format of the UT1 blocklists (Université Toulouse 1) that RefinedWeb and FineWeb filter with.
* ``url_pattern``: a ``patterns`` regex (Python ``re``, searched anywhere in the URL as written) matches.
* ``duplicate_url``: an earlier document (input order; ``keep: latest``: a later crawl by ``date``) has the same
  normalized URL (:func:`normalize_url`). Only documents the first two rules keep take part.

Dedup is a global step as ``exact_dedup`` is: 128-bit xxh3 of the normalized URL -> shuffle by key -> per key the
document to keep -> apply; the result does not depend on workers, partitions or shard order.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, field_validator

from curate.steps.base import Decisions, GlobalStep, StepContext, StepParams, equal_key_groups
from mixlab.paths import resolve_path

TRACKING_PARAMS = ["utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
                   "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id",
                   "oly_enc_id", "vero_id", "li_fat_id"]
"""query parameters that only track a click (Google Analytics' ``utm_*``, the ad networks' click ids, mail
campaign ids), dropped before URLs are compared"""
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlFilterParams(StepParams):
    blocklist: str | list[str] | None = Field(default=None, description="file(s) of blocked domains, one per line "
                                              "(subdomains blocked too); relative to the recipe")
    patterns: list[str] = Field(default=[], description="regexes (Python re) searched in the URL; a match removes")
    dedup: bool = Field(default=True, description="remove documents whose normalized URL an earlier one has")
    keep: Literal["first", "latest"] = Field(default="first", description="which of a URL's documents dedup "
                                             "keeps: the first in input order, or the latest crawl by date")
    tracking_params: list[str] = Field(default=TRACKING_PARAMS, description="query parameters dropped before "
                                       "URLs are compared (shell-style patterns: utm_*)")
    column: str = Field(default="url", description="the column holding the URL")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for i, p in enumerate(v):
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"patterns[{i}] {p!r} is not a valid regex: {e}") from None
        return v

    @property
    def blocklists(self) -> list[str]:
        return [] if self.blocklist is None else [self.blocklist] if isinstance(self.blocklist, str) \
            else list(self.blocklist)


def normalize_url(url: str, tracking: list[str] = TRACKING_PARAMS) -> str:
    """The form two URLs of the same page share: scheme dropped (http = https), host lowercased without a trailing
    dot, a leading ``www.`` and the scheme's default port; the fragment dropped; query parameters matching
    ``tracking`` (shell-style patterns, case-insensitive) dropped and the rest sorted; a trailing slash dropped
    (the root path is empty). ``//host/path?query``; a string without a host stays as is, stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return url
    host = host.removeprefix("www.")
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not any(fnmatch.fnmatchcase(k.lower(), t.lower()) for t in tracking)]
    path = parts.path.rstrip("/")
    return urlunsplit(("", host, path, urlencode(sorted(query)), ""))


def url_host(url: str) -> str | None:
    """The host of ``url`` as blocklists name it: lowercase, without port, trailing dot or leading ``www.``."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.rstrip(".").removeprefix("www.") if host else None


def read_blocklist(path: Path) -> set[str]:
    """The domains of a blocklist file (format: the module docstring). Raises ValueError naming the file when it
    cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ValueError(f"blocklist {path}: {e.strerror or e}") from None
    domains = set()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if fields:
            domains.add(fields[-1].lower().lstrip("*").lstrip(".").rstrip(".").removeprefix("www."))
    domains.discard("")
    return domains


class UrlFilter(GlobalStep):
    name = "url_filter"
    Params = UrlFilterParams
    columns = {"url_duplicate_of": pa.string(), "url_copies": pa.int32()}
    key_schema = pa.schema([("_part_key", pa.uint64()), ("hi", pa.uint64()), ("date", pa.string()),
                            ("_unit", pa.int32()), ("_pos", pa.int64()), ("id", pa.string())])

    def __init__(self, params: UrlFilterParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self.blocked: set[str] = set()
        self.patterns = [re.compile(p) for p in params.patterns]

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        assert isinstance(params, UrlFilterParams)
        if params.column not in schema.names:
            raise ValueError(f"no column {params.column!r} to read URLs from: a warc or wet source writes url; for "
                             "a jsonl, json or parquet source set its url_field (the key or column of the URL)")
        if params.keep == "latest" and "date" not in schema.names:
            raise ValueError("keep: latest needs a date column (a warc or wet source writes date)")
        for f in params.blocklists:
            read_blocklist(resolve_path(ctx.base, f))

    def setup(self) -> None:
        for f in self.params.blocklists:
            self.blocked |= read_blocklist(resolve_path(self.ctx.base, f))

    def _rule_reasons(self, urls: list[str | None]) -> list[str | None]:
        """Per URL: ``url_blocklisted``, ``url_pattern`` or None (kept by the rules; also for a null URL)."""
        out: list[str | None] = []
        for url in urls:
            reason = None
            if url is not None:
                host = url_host(url)
                if host and self.blocked:
                    labels = host.split(".")
                    if any(".".join(labels[i:]) in self.blocked for i in range(len(labels))):
                        reason = "url_blocklisted"
                if reason is None and any(p.search(url) for p in self.patterns):
                    reason = "url_pattern"
            out.append(reason)
        return out

    def keys(self, batch: pa.Table) -> tuple[pa.Table, None]:
        if not self.params.dedup:
            return self.key_schema.empty_table(), None
        urls = batch[self.params.column].to_pylist()
        rules = self._rule_reasons(urls)
        rows = [i for i, (u, r) in enumerate(zip(urls, rules)) if u is not None and r is None]
        tracking = self.params.tracking_params
        digests = [xxhash.xxh3_128_intdigest(normalize_url(urls[i], tracking).encode("utf-8")) for i in rows]
        lo = np.fromiter((d & 0xFFFFFFFFFFFFFFFF for d in digests), np.uint64, len(digests))
        hi = np.fromiter((d >> 64 for d in digests), np.uint64, len(digests))
        take = pa.array(rows, pa.int64())
        dates = (batch["date"].take(take).cast(pa.string()) if "date" in batch.column_names
                 else pa.nulls(len(rows), pa.string()))
        return pa.table([pa.array(lo), pa.array(hi), dates, batch["_unit"].take(take), batch["_pos"].take(take),
                         batch["id"].take(take)], schema=self.key_schema), None

    def reduce(self, partition: pa.Table, side: Any = None) -> tuple[pa.Table, dict[str, Any]]:
        order = [("_part_key", "ascending"), ("hi", "ascending")]
        if self.params.keep == "latest":
            order.append(("date", "descending"))  # ISO 8601 dates sort as strings; null last
        t = partition.sort_by(order + [("_unit", "ascending"), ("_pos", "ascending")])
        decisions, groups, in_groups = equal_key_groups(t, "url_duplicate_of", "url_copies")
        stats = {"urls": t.num_rows, "duplicate_urls": groups, "documents_with_duplicate_url": in_groups}
        return decisions, stats

    def apply(self, batch: pa.Table, decisions: Decisions) -> tuple[pa.Table, pa.Array]:
        rules = self._rule_reasons(batch[self.params.column].to_pylist())
        if self.params.dedup:
            cols = decisions.lookup(batch, self.columns)
        else:
            cols = {c: pa.nulls(batch.num_rows, t) for c, t in self.columns.items()}
        has_url = pc.is_valid(batch[self.params.column])
        copies = pc.if_else(has_url, pc.fill_null(cols["url_copies"], 1), pa.scalar(None, pa.int32()))
        batch = batch.append_column("url_duplicate_of", cols["url_duplicate_of"])
        batch = batch.append_column("url_copies", copies)
        dup = cols["url_duplicate_of"].to_pylist()
        reasons = [r if r is not None else ("duplicate_url" if d is not None else None) for r, d in zip(rules, dup)]
        return batch, pa.array(reasons, pa.string())
