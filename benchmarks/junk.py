"""Rule-generated junk documents for the perplexity and quality-classifier benchmarks, made from real held-out text.

Five kinds, each a function ``(source, rng) -> text``, made from a wiki paragraph (or, for code, a Python file) so
the junk has the vocabulary and topics of the real text it is compared with:

* ``boilerplate``: 8-16 web chrome lines (cookie notices, menus, breadcrumbs, footers, share bars, tag lines), their
  slots filled with proper nouns and words of the paragraph;
* ``keyword_spam``: 3-6 content words of the paragraph repeated in SEO phrases ("best X", "X online", "cheap X Y",
  "X near me"), 40-120 words;
* ``shuffled``: the paragraph's words in random order;
* ``code_as_prose``: 15-40 consecutive non-empty lines of a Python file, stripped and joined into one paragraph;
* ``machine_translated``: the paragraph rewritten word by word: articles dropped (or a/an swapped), prepositions
  doubled or replaced by a wrong one, wrong inflections (is/are, was/were, has/have, -ed and plural -s dropped,
  "-ing" forms), and common words swapped for odd near-synonyms ("important" -> "importantful", "began" ->
  "did begin").

``make_junk`` draws ``per_kind`` documents of every kind, deterministic for a seed.

Junk taken from real pages, not made by rules:

* ``real_page_boilerplate``: the text lines of the HTML pages in the Common Crawl WARC samples
  (``corpus/web/sample-*.warc.gz``, dolma's) that neither main-content extractor (trafilatura nor resiliparse) keeps:
  menus, footers, buttons, bylines, link lists; each line once over all pages (a site's menu counts once), a page's
  lines in page order, cut into documents of at most ``max_lines`` lines;
* ``wiki_tables``: the tables (``{| ... |}``) of the English Wikipedia dump sample (``corpus/wiki/enwiki-*.bz2``),
  one row per line, cells separated by tabs as an HTML-to-text extractor renders them, references, templates and
  link markup removed.

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import bz2
import html
import random
import re
from collections import Counter
from pathlib import Path
from typing import Callable

from report import SHARED

WARCS = sorted((SHARED / "corpus" / "web").glob("sample-*.warc.gz"))
ENWIKI = next((SHARED / "corpus" / "wiki").glob("enwiki-*.bz2"), None)

KINDS = ("boilerplate", "keyword_spam", "shuffled", "code_as_prose", "machine_translated")

STOP = set("""a an the and or but if of to in on at by for with from as is are was were be been being has have had
do does did not no this that these those it its he she they them his her their we our you your i me my which who whom
whose what when where why how all any both each few more most other some such than too very can will just also into
over after before about between through during while against under again further then once there here would could
should may might must shall upon one two three first new""".split())

BOILERPLATE = [
    "We use cookies to give you the best experience on our website.",
    "By continuing to browse the site you are agreeing to our use of cookies. Learn more",
    "Accept all cookies Manage preferences Reject",
    "This website uses cookies to improve your experience. We'll assume you're ok with this, but you can opt-out "
    "if you wish. Accept Read More",
    "Home | News | {T1} | {T2} | About Us | Contact",
    "Home » {T1} » {T2}",
    "Skip to main content",
    "Search for: Search",
    "Log in | Register | My Account | Cart (0)",
    "© {YEAR} {SITE}. All rights reserved.",
    "Copyright © {YEAR} {SITE} Media Group. Powered by WordPress.",
    "Privacy Policy | Terms of Use | Cookie Policy | Sitemap | Accessibility",
    "Subscribe to our newsletter for the latest {t1} news and offers!",
    "Enter your email address Subscribe",
    "Share this: Facebook Twitter Pinterest LinkedIn Email Print",
    "Posted in {T1}, {T2} | Tagged {t1}, {t2}, {t3} | Leave a comment",
    "Related posts: {T1} {t1} guide | Top 10 {t2} tips | {T2} review",
    "« Previous post Next post »",
    "Follow us on Instagram @{site}",
    "Back to top ↑",
    "Click here to read more about {t1}",
    "Advertisement",
    "Sponsored content: {T1} {t2} deals you don't want to miss",
    "Leave a Reply Cancel reply Your email address will not be published. Required fields are marked *",
    "Comment Name * Email * Website",
    "Save my name, email, and website in this browser for the next time I comment.",
    "Categories: {T1} {T2} Uncategorized",
    "Archives: January {YEAR} December {YEAR0} November {YEAR0}",
    "Free shipping on orders over $50! Shop now",
    "Add to cart | Add to wishlist | Compare",
    "Page 1 of 12 1 2 3 ... 12 Next »",
    "Contact us: info@{site}.com | Call 1-800-555-0199",
    "Terms and conditions apply. See store for details.",
    "You are here: Home / {T1} / {t1}",
    "Menu Close menu",
    "Loading...",
    "Read more » {T1}: {t1} and {t2} explained",
    "Trending now: {T1} | {T2} | {t3}",
    "Sign up for free and get 10% off your first order",
    "Powered by {SITE} CMS v3.2",
]

SPAM_PHRASES = ["best {k}", "cheap {k}", "{k} online", "buy {k}", "{k} {k2}", "{k} near me", "{k} {year}",
                "free {k}", "{k} reviews", "top 10 {k}", "{k} for sale", "discount {k}", "{k} {k2} {k3}",
                "best {k} {k2}", "{k} deals", "official {k} site", "{k} cheap {k2}", "{k} price"]
SPAM_SEPARATORS = [" ", " ", ", ", " | ", " - ", " ... "]

ODD_SYNONYMS = {
    "important": "importantful", "began": "did begin", "large": "big-sized", "small": "littlish", "city": "town-place",
    "film": "cinema picture", "played": "did play", "however": "but nevertheless", "many": "much of",
    "people": "persons peoples", "because": "by reason that", "after": "behind of", "said": "told speaking",
    "became": "got to be", "known": "knowed", "used": "utilized", "until": "till to", "several": "some several",
    "during": "in the time of", "including": "comprising of", "received": "got receiving", "released": "let out",
    "although": "albeit that", "series": "seriality", "team": "squadron", "game": "match-play",
    "season": "time of year", "war": "warfare fight", "later": "more late", "early": "earlyish",
    "government": "governance body", "built": "constructed up", "number": "quantity number", "work": "labour work",
    "album": "music disc", "song": "singing piece", "world": "earth-world", "major": "majorly",
    "often": "oftentimes frequent", "only": "solely only", "well": "good-ly", "area": "zone area", "high": "tall",
    "north": "northward side", "south": "southward side", "year": "annum", "years": "annums", "led": "leaded",
    "made": "maked", "found": "finded", "took": "taked", "went": "goed", "wrote": "writed", "left": "leaved",
    "support": "supportance", "famous": "fameful",
}
PREPOSITIONS = ["of", "to", "in", "on", "at", "for", "with", "from", "by"]
SWAPS = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have", "have": "has", "does": "do",
         "do": "does", "this": "these", "these": "this", "a": "an", "an": "a"}


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z][a-z]{3,}", text) if w.lower() not in STOP]


def _proper_nouns(text: str) -> list[str]:
    return [w for w in re.findall(r"\b[A-Z][a-z]{2,}\b", text) if w.lower() not in STOP]


def boilerplate(paragraph: str, rng: random.Random) -> str:
    words = _content_words(paragraph) or ["news"]
    names = _proper_nouns(paragraph) or [w.title() for w in words]
    year = rng.randint(2008, 2024)
    site = rng.choice(names)
    fill = {"T1": rng.choice(names), "T2": rng.choice(names), "t1": rng.choice(words).lower(),
            "t2": rng.choice(words).lower(), "t3": rng.choice(words).lower(), "YEAR": str(year),
            "YEAR0": str(year - 1), "SITE": site, "site": site.lower()}
    lines = rng.sample(BOILERPLATE, rng.randint(8, 16))
    return "\n".join(line.format(**fill) for line in lines)


def _topic_words(text: str, n: int = 8) -> list[str]:
    """The ``n`` most frequent content words of 5+ letters (not -ed/-ly forms), most frequent first."""
    words = [w.lower() for w in _content_words(text) if len(w) >= 5 and not w.endswith(("ed", "ly"))]
    return [w for w, _ in Counter(words).most_common(n)]


def keyword_spam(paragraph: str, rng: random.Random) -> str:
    pool = _topic_words(paragraph) or ["deal", "online"]
    keys = rng.sample(pool, min(len(pool), rng.randint(3, 6)))
    n, out = rng.randint(40, 120), []
    while sum(len(x.split()) for x in out) < n:
        phrase = rng.choice(SPAM_PHRASES).format(k=rng.choice(keys), k2=rng.choice(keys), k3=rng.choice(keys),
                                                 year=rng.randint(2015, 2024))
        out.append(phrase + rng.choice(SPAM_SEPARATORS))
    return "".join(out).strip(" ,|-.")


def shuffled(paragraph: str, rng: random.Random) -> str:
    words = paragraph.split()
    rng.shuffle(words)
    return " ".join(words)


def code_as_prose(source: str, rng: random.Random) -> str:
    lines = [x.strip() for x in source.splitlines() if x.strip()]
    n = min(len(lines), rng.randint(15, 40))
    start = rng.randint(0, len(lines) - n)
    return " ".join(lines[start:start + n])


def _keep_case(orig: str, new: str) -> str:
    return new[:1].upper() + new[1:] if orig[:1].isupper() else new


def _mt_word(word: str, rng: random.Random) -> list[str]:
    m = re.fullmatch(r"([A-Za-z'-]+)(\W*)", word)
    if not m:
        return [word]
    core, tail = m.group(1), m.group(2)
    low = core.lower()
    if low in ("a", "an", "the"):
        if rng.random() < 0.65:
            return [tail] if tail else []
        if low in SWAPS and rng.random() < 0.5:
            return [_keep_case(core, SWAPS[low]) + tail]
        return [word]
    if low in PREPOSITIONS:
        r = rng.random()
        if r < 0.15:
            return [core, low + tail]
        if r < 0.35:
            return [_keep_case(core, rng.choice([p for p in PREPOSITIONS if p != low])) + tail]
        return [word]
    if low in ODD_SYNONYMS and rng.random() < 0.8:
        return [_keep_case(core, ODD_SYNONYMS[low]) + tail]
    if low in SWAPS and rng.random() < 0.5:
        return [_keep_case(core, SWAPS[low]) + tail]
    if len(low) > 5 and low.endswith("ed") and rng.random() < 0.35:
        return [core[:-2] + rng.choice(["", "ing", "s"]) + tail]
    if len(low) > 4 and low.endswith("s") and not low.endswith("ss") and rng.random() < 0.3:
        return [core[:-1] + tail]
    return [word]


def machine_translated(paragraph: str, rng: random.Random) -> str:
    out: list[str] = []
    for w in paragraph.split():
        for piece in _mt_word(w, rng):
            if piece and not re.search(r"\w", piece) and out:
                out[-1] += piece
            elif piece:
                out.append(piece)
    return " ".join(out)


GENERATORS: dict[str, Callable[[str, random.Random], str]] = {
    "boilerplate": boilerplate, "keyword_spam": keyword_spam, "shuffled": shuffled, "code_as_prose": code_as_prose,
    "machine_translated": machine_translated}


def make_junk(paragraphs: list[str], code_files: list[str], per_kind: int, seed: int,
              kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """``per_kind`` documents of every kind as (kind, text), kinds in order; sources drawn without replacement
    while they last (then with), so different junk documents of a kind come from different paragraphs."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for kind in kinds:
        pool = code_files if kind == "code_as_prose" else paragraphs
        if not pool:
            raise ValueError(f"no source text for {kind}")
        order = rng.sample(range(len(pool)), len(pool))
        for i in range(per_kind):
            src = pool[order[i % len(order)]]
            out.append((kind, GENERATORS[kind](src, rng)))
    return out


# ---------------------------------------------------------------------------------------------------- real junk

def warc_html_pages(paths: list[Path] = WARCS) -> list[tuple[str, str]]:
    """(url, decoded HTML) of every HTML response in the WARC files, first occurrence of a URL only; charset from
    the page as resiliparse detects it."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from warcio.archiveiterator import ArchiveIterator

    pages: dict[str, str] = {}
    for path in paths:
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response" or "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                    continue
                url = rec.rec_headers.get_header("WARC-Target-URI")
                raw = rec.content_stream().read()
                if url not in pages:
                    pages[url] = bytes_to_str(raw, detect_encoding(raw))
    return list(pages.items())


def boilerplate_lines(page: str) -> list[str]:
    """The non-empty lines of a page's whole visible text (resiliparse, ``main_content=False``) that neither
    trafilatura nor resiliparse's main-content extraction keeps, in page order."""
    import trafilatura
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(page)
    every = [x.strip() for x in extract_plain_text(tree, main_content=False, alt_texts=False).splitlines()]
    kept = {x.strip() for x in extract_plain_text(tree, main_content=True).splitlines()}
    kept |= {x.strip() for x in (trafilatura.extract(page, include_comments=False) or "").splitlines()}
    return [x for x in every if x and x not in kept]


def real_page_boilerplate(min_lines: int = 3, max_lines: int = 15) -> list[tuple[str, str]]:
    """(url#part, text) documents of real boilerplate lines (see the module doc); every line once over all pages."""
    seen: set[str] = set()
    docs = []
    for url, page in warc_html_pages():
        lines = []
        for line in boilerplate_lines(page):
            if line not in seen:
                seen.add(line)
                lines.append(line)
        for part, i in enumerate(range(0, len(lines), max_lines)):
            chunk = lines[i:i + max_lines]
            if len(chunk) >= min_lines:
                docs.append((f"{url}#{part}", "\n".join(chunk)))
    return docs


def _strip_wiki_markup(text: str) -> str:
    text = re.sub(r"<ref[^>]*/>", "", text)
    text = re.sub(r"<ref.*?</ref>", "", text, flags=re.S)
    while True:
        t = re.sub(r"\{\{[^{}]*\}\}", "", text)
        if t == text:
            break
        text = t
    text = re.sub(r"\[\[(?:File|Image):[^\]]*\]\]", "", text)
    text = re.sub(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]", r"\1", text)
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"<br\s*/?>", " ", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("'''", "").replace("''", "")


def _cell(raw: str) -> str:
    """A cell's text: attributes before a single ``|`` dropped (``style="..." | text``)."""
    parts = re.split(r"(?<!\|)\|(?!\|)", raw, maxsplit=1)
    text = parts[1] if len(parts) == 2 and "=" in parts[0] else raw
    return re.sub(r"\s+", " ", text).strip()


def wiki_tables(min_rows: int = 3) -> list[tuple[str, str]]:
    """(table#n, text) of the Wikipedia dump's tables with at least ``min_rows`` non-empty rows (module doc)."""
    if ENWIKI is None:
        return []
    dump = html.unescape(bz2.open(ENWIKI, "rt", encoding="utf-8").read())
    docs = []
    for n, body in enumerate(re.findall(r"^\{\|.*?^\|\}", dump, flags=re.S | re.M)):
        rows: list[list[str]] = [[]]
        for line in _strip_wiki_markup(body).splitlines()[1:-1]:
            line = line.strip()
            if line.startswith("|-"):
                rows.append([])
            elif line.startswith("|+"):
                continue
            elif line[:1] in ("|", "!"):
                rows[-1] += [_cell(c) for c in re.split(r"\|\||!!", line[1:])]
            elif line and rows[-1]:
                rows[-1][-1] += " " + line
        text_rows = ["\t".join(c for c in r if c) for r in rows]
        text_rows = [r for r in text_rows if r.strip()]
        if len(text_rows) >= min_rows:
            docs.append((f"table#{n}", "\n".join(text_rows)))
    return docs
