"""The real texts of ``../shared/data`` that ``dedup_data.py`` and ``pipeline_data.py`` build their corpora from,
and what both vary them with: a vocabulary, site boilerplate lines, sentence and paragraph boundaries.

Every reader returns its documents in a fixed order (sorted archive members), so corpora built from them depend only
on their seed. Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import json
import random
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

BOILERPLATE = [
    "Cookie policy | Terms of use | Privacy",
    "Share this article on Facebook",
    "Share on Twitter",
    "Subscribe to our newsletter",
    "Skip to main content",
    "Home | About us | Contact",
    "All rights reserved.",
    "Copyright © 2012 All rights reserved.",
    "Click here to read more",
    "Related posts:",
    "Leave a comment",
    "This site uses cookies to improve your experience. By continuing you accept our use of cookies.",
    "Sign in | Register",
    "Back to top",
    "Print this page | Email this page",
    "Advertisement",
]
"""site header and footer lines added to web pages"""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[A-Za-z]{3,12}")


def decode(data: bytes) -> str:
    """UTF-8, else cp1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def c4_texts(shared: Path) -> list[tuple[int, str]]:
    """(line number, text) of the C4 demo documents, blank lines skipped."""
    with open(shared / "corpus/web/c4_demo.jsonl", "rb") as f:
        return [(i, json.loads(line)["text"]) for i, line in enumerate(f) if line.strip()]


def dragnet_pages(shared: Path) -> list[tuple[str, str]]:
    """(member name, text) of the hand-cleaned dragnet pages."""
    with tarfile.open(shared / "corpus/web/dragnet_Corrected.tar.gz") as tar:
        return [(m.name, decode(tar.extractfile(m).read()))  # type: ignore[union-attr]
                for m in sorted(tar.getmembers(), key=lambda m: m.name)
                if m.isfile() and m.name.endswith(".corrected.txt")]


def wikitext_articles(path: Path) -> Iterator[tuple[str, str]]:
    """(title, text) of the articles of a WikiText-2 file, cut at top-level `` = Title = `` headings."""
    title, lines = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" = ") and not line.startswith(" = = "):
            if title and "".join(lines).strip():
                yield title, "\n".join(lines).strip("\n")
            title, lines = line.strip(" ="), [line]
        elif title:
            lines.append(line)
    if title and "".join(lines).strip():
        yield title, "\n".join(lines).strip("\n")


def strip_gutenberg(text: str) -> str:
    """The text between a Project Gutenberg book's START and END lines."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, re.M | re.I)
    end = re.search(r"^\*\*\* ?END OF.*$", text, re.M | re.I)
    return text[start.end() if start else 0: end.start() if end else len(text)].strip()


def book_texts(shared: Path) -> list[tuple[str, str]]:
    """(name, text) of the Gutenberg books (licence header and footer dropped), then tinyshakespeare."""
    texts = []
    for z in sorted((shared / "corpus/books/gutenberg").glob("*/*.zip")):
        with zipfile.ZipFile(z) as zf:
            for name in sorted(zf.namelist()):
                if name.endswith(".txt"):
                    raw = decode(zf.read(name)).lstrip("\ufeff").replace("\r\n", "\n")
                    texts.append((Path(name).stem, strip_gutenberg(raw)))
    texts.append(("tinyshakespeare", (shared / "corpus/books/tinyshakespeare.txt").read_text(encoding="utf-8")))
    return texts


def python_sources(shared: Path) -> list[tuple[str, str]]:
    """(member name, source) of every ``*.py`` file of TheAlgorithms."""
    with tarfile.open(shared / "corpus/code/TheAlgorithms-Python-py.tar.gz") as tar:
        return [(m.name, decode(tar.extractfile(m).read()))  # type: ignore[union-attr]
                for m in sorted(tar.getmembers(), key=lambda m: m.name) if m.isfile() and m.name.endswith(".py")]


def chunk_paragraphs(text: str, rng: random.Random, low: int, high: int) -> list[str]:
    """Cut ``text`` at blank lines into chunks of about ``low``-``high`` characters."""
    chunks, current, size, target = [], [], 0, rng.randint(low, high)
    for para in PARAGRAPH_BREAK.split(text):
        if not para.strip():
            continue
        current.append(para)
        size += len(para) + 2
        if size >= target:
            chunks.append("\n\n".join(current))
            current, size, target = [], 0, rng.randint(low, high)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def vocabulary(texts: Iterable[str], limit: int = 50_000) -> list[str]:
    """Distinct words (3-12 letters) of ``texts``, the first ``limit`` in order: what replaced words are drawn from."""
    seen: dict[str, None] = {}
    for text in texts:
        for w in _WORD.findall(text):
            seen.setdefault(w, None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)
