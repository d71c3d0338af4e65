"""Main-text extraction for `format: warc`: speed and quality of trafilatura and resiliparse, as `curate.warc` calls
them.

What it measures:

* speed: pages/s of ``curate.warc.extract_main_text`` (HTML text -> main text; decoding excluded, the pages are
  decoded once with ``curate.warc.decode_html`` before timing) on (a) the 37 HTML responses of dolma's real Common
  Crawl-style WARC samples (``../shared/data/corpus/web/sample-000*.warc.gz``) and (b) the pages of the quality
  sets below; best of ``--repeat`` (3) alternating rounds, in this process, one core, with the cores other
  processes kept busy meanwhile reported (``contention.timed_when_quiet``);
* quality: token precision, recall and F1 of the extracted text against the hand-cleaned main text of each page,
  as the dragnet evaluation computes them (Peters & Lecocq 2013, ``dragnet.evaluation_metrics`` with ``bow``): the
  texts lowercased and cut into word tokens (``\\w+``), the overlap counted as a bag of words (a token matched at
  most as often as it occurs in both), precision = overlap / predicted tokens, recall = overlap / true tokens; the
  mean over pages (an empty extraction scores 0) and the share of pages with no text extracted. Sets:
    - dragnet (Peters & Lecocq 2013; seomoz/dragnet_data @ 95559be): ``--dragnet-html`` = ``dragnet_HTML.tar.gz``
      (``HTML/<id>.html``) with the hand-cleaned ``dragnet_Corrected.tar.gz`` of ``../shared/data/corpus/web``
      (``Corrected/<id>.html.corrected.txt``). ``../shared`` holds only the Corrected half, so this set is measured
      only when the HTML half is given;
    - scrapinghub's Article Extraction Benchmark (scrapinghub/article-extraction-benchmark @ 4a3bc97, MIT): 181 news
      and blog pages (``html/<id>.html.gz``) with the hand-annotated article body (``ground-truth.json``), given as
      ``--aeb DIR`` (a checkout of that repository).
* extractors: ``trafilatura`` as `format: warc` runs it (``fast=True``: no fallback extractors;
  ``include_comments=False``), trafilatura's default mode (``fast=False``, with its readability and jusText
  fallbacks; not timed), and ``resiliparse`` (``extract_plain_text(main_content=True)``, as DCLM runs it).

Prints one table and appends it to ``benchmarks/RESULTS.md``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/warc_extract.py --aeb /path/to/article-extraction-benchmark [--dragnet-html dragnet_HTML.tar.gz]
    python benchmarks/warc_extract.py --no-record --no-wait      # print only, time at once
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contention import timed_when_quiet  # noqa: E402
from report import (SHARED, add_no_record_no_wait, command_line, git_commit, markdown,  # noqa: E402
                    print_and_record, say)

from curate.warc import DEFAULT_EXTRACTOR, decode_html, read_records  # noqa: E402

WEB = SHARED / "corpus" / "web"
CORRECTED = WEB / "dragnet_Corrected.tar.gz"
_TOKEN = re.compile(r"\w+")


@dataclass
class Page:
    key: str
    html: str
    truth: str | None


def _trafilatura(fast: bool) -> Callable[[str], str]:
    import logging

    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    return lambda html: trafilatura.extract(html, fast=fast, include_comments=False, include_tables=True,
                                            output_format="txt") or ""


def _resiliparse() -> Callable[[str], str]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False, links=False,
                                           noscript=False, form_fields=False)


EXTRACTORS = {"trafilatura (fast, as format warc runs it)": _trafilatura(True),
              "trafilatura (default: fallbacks on)": _trafilatura(False),
              "resiliparse (main_content)": _resiliparse()}
TIMED = ["trafilatura (fast, as format warc runs it)", "resiliparse (main_content)"]


def warc_pages() -> list[Page]:
    """The HTML responses of dolma's WARC samples, decoded as `format: warc` decodes them (no truth)."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for path in sorted(WEB.glob("sample-000*.warc.gz")):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f):
                ctype = r.http_headers.get_header("Content-Type") if r.http_headers else None
                if r.rec_type == "response" and ctype and ctype.startswith("text/html"):
                    charset = re.search(r"charset=([\w-]+)", ctype)
                    html, _ = decode_html(r.content_stream().read(), charset.group(1) if charset else None)
                    pages.append(Page(r.rec_headers.get_header("WARC-Record-ID"), html, None))
    return pages


def aeb_pages(root: Path) -> list[Page]:
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    return [Page(k, decode_html(gzip.decompress((root / "html" / f"{k}.html.gz").read_bytes()), None)[0],
                 v["articleBody"]) for k, v in sorted(truth.items())]


def dragnet_pages(html_tar: Path) -> list[Page]:
    """Pages of dragnet_HTML.tar.gz with their text in dragnet_Corrected.tar.gz (pages without one are left out)."""
    truth = {}
    with tarfile.open(CORRECTED) as t:
        for m in t.getmembers():
            if m.isfile() and m.name.endswith(".corrected.txt"):
                key = Path(m.name).name.removesuffix(".corrected.txt")
                truth[key] = t.extractfile(m).read().decode("utf-8", "replace")  # type: ignore[union-attr]
    pages = []
    with tarfile.open(html_tar) as t:
        for m in t.getmembers():
            key = Path(m.name).name
            if m.isfile() and key in truth:
                raw = t.extractfile(m).read()  # type: ignore[union-attr]
                pages.append(Page(key, decode_html(raw, None)[0], truth[key]))
    return sorted(pages, key=lambda p: p.key)


def prf(pred: str, true: str) -> tuple[float, float, float]:
    """Bag-of-words token precision, recall and F1 of ``pred`` against ``true`` (the dragnet evaluation)."""
    p, t = Counter(_TOKEN.findall(pred.lower())), Counter(_TOKEN.findall(true.lower()))
    overlap = sum((p & t).values())
    precision = overlap / sum(p.values()) if p else 0.0
    recall = overlap / sum(t.values()) if t else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def quality(pages: list[Page], extract: Callable[[str], str]) -> dict[str, float]:
    scores, empty = [], 0
    for page in pages:
        out = extract(page.html)
        empty += not out.strip()
        assert page.truth is not None
        scores.append(prf(out, page.truth))
    n = len(scores)
    return {"precision": sum(s[0] for s in scores) / n, "recall": sum(s[1] for s in scores) / n,
            "f1": sum(s[2] for s in scores) / n, "empty": empty / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aeb", type=Path, help="a checkout of scrapinghub/article-extraction-benchmark")
    ap.add_argument("--dragnet-html", type=Path, help="dragnet_HTML.tar.gz of seomoz/dragnet_data")
    ap.add_argument("--repeat", type=int, default=3)
    add_no_record_no_wait(ap)
    args = ap.parse_args()
    commit = git_commit()

    sets: dict[str, list[Page]] = {}
    if args.dragnet_html:
        sets["dragnet"] = dragnet_pages(args.dragnet_html)
    if args.aeb:
        sets["AEB"] = aeb_pages(args.aeb)
    say(f"quality sets: {', '.join(f'{k} ({len(v)} pages)' for k, v in sets.items()) or 'none given'}")
    results: dict[tuple[str, str], dict[str, float]] = {}
    for set_name, pages in sets.items():
        for name, extract in EXTRACTORS.items():
            say(f"  quality: {name} on {set_name}")
            results[(set_name, name)] = quality(pages, extract)

    warc = warc_pages()
    with open(sorted(WEB.glob("sample-000*.warc.gz"))[0], "rb") as f:
        docs = sum(hasattr(r, "text") for r in read_records(f, "warc"))
    say(f"speed: {len(warc)} WARC pages, {sum(map(len, sets.values()))} quality-set pages")
    speed: dict[tuple[str, str], float] = {}
    loads = []
    for set_name, pages in [("WARC samples", warc), *sets.items()]:
        funcs = {name: (lambda e=EXTRACTORS[name], ps=pages: [e(p.html) for p in ps]) for name in TIMED}
        best, load = timed_when_quiet(funcs, repeats=args.repeat, wait=not args.no_wait, tries=3)
        loads.append(load)
        for name in TIMED:
            speed[(set_name, name)] = len(pages) / best[name]

    rows = []
    for name in EXTRACTORS:
        row = [name, *(f"{speed[(s, name)]:.1f}" if (s, name) in speed else "-" for s in ["WARC samples", *sets])]
        for set_name in sets:
            q = results[(set_name, name)]
            row += [f"{q['precision']:.3f}", f"{q['recall']:.3f}", f"**{q['f1']:.3f}**", f"{q['empty']:.1%}"]
        rows.append(row)
    head = ["extractor", "pages/s WARC samples", *(f"pages/s {s}" for s in sets)]
    for set_name in sets:
        head += [f"{set_name} P", f"{set_name} R", f"{set_name} F1", f"{set_name} empty"]
    notes = [
        f"- speed: pages/s on one core, HTML already decoded, best of {args.repeat} alternating rounds; other "
        f"processes kept up to {max(loads):.2f} cores busy during the timings (the machine is shared)",
        f"- WARC samples: {len(warc)} HTML responses of ../shared/data/corpus/web/sample-000{{0,1}}.warc.gz (dolma's "
        f"test WARCs; `format: warc` keeps {docs} documents of the first file's 22 pages)",
        "- quality: mean over pages of bag-of-words token precision/recall/F1 against the hand-cleaned text (dragnet's "
        "evaluation); empty = pages where nothing was extracted",
    ]
    if "dragnet" not in sets:
        notes.append("- dragnet: not measured: ../shared/data/corpus/web holds only dragnet_Corrected.tar.gz (the "
                     "hand-cleaned text); the pages' HTML (dragnet_HTML.tar.gz of seomoz/dragnet_data) is not on "
                     "this machine; pass it with --dragnet-html to measure")
    if "AEB" in sets:
        notes.append(f"- AEB: scrapinghub/article-extraction-benchmark @ 4a3bc97 (MIT), {len(sets['AEB'])} pages, "
                     "articleBody annotated by hand")
    fast, resili = TIMED
    for set_name in sets:
        t, r = results[(set_name, fast)], results[(set_name, resili)]
        notes.append(f"- choice: `format: warc` extracts with {DEFAULT_EXTRACTOR} by default: on {set_name} its F1 "
                     f"is {t['f1']:.3f} against {r['f1']:.3f} (precision {t['precision']:.3f} against "
                     f"{r['precision']:.3f}: resiliparse keeps more boilerplate, which later steps must then remove); "
                     f"resiliparse is {speed[('WARC samples', resili)] / speed[('WARC samples', fast)]:.1f}x faster on "
                     "the WARC samples and is there as `extractor: resiliparse` when speed matters more")
    body = markdown(head, rows) + "\n\n" + "\n".join(notes)
    print_and_record("main-text extraction for format warc: trafilatura vs resiliparse (benchmarks/warc_extract.py)",
                     command_line(), commit, body, record=not (args.no_record or args.no_wait))


if __name__ == "__main__":
    main()
