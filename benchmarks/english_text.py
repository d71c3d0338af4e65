"""Real English text from ``../shared/data`` as documents, for the perplexity and quality-classifier benchmarks.

* WikiText-2 (``corpus/wiki/wikitext2_{valid,test}.txt``): paragraphs (one per line, headings skipped),
  detokenized (`` @-@ `` -> ``-``, `` , `` -> ``, ``, ...) and with WikiText's ``<unk>`` tokens removed, so that
  neither a language model nor a classifier can tell wiki text from web text by WikiText's tokenization. Only
  paragraphs of at least ``min_words`` words with at most ``max_unk`` of their tokens ``<unk>`` are kept.
* Project Gutenberg books (``corpus/books/gutenberg/english/*.zip``): the text between the START and END markers,
  hard-wrapped lines joined into paragraphs, paragraphs grouped into chunks of about ``words`` words.
* C4 (``corpus/web/c4_demo.jsonl``) and dragnet (``corpus/web/dragnet_Corrected.tar.gz``, read with tarfile;
  UTF-8, else cp1252) web pages.
* Python files of TheAlgorithms (``corpus/code/TheAlgorithms-Python-py.tar.gz``).

Held-out splits are by file (a hash of the file name), never by chance per run, so every script agrees on them.

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile

import xxhash

from report import SHARED

WIKI = SHARED / "corpus" / "wiki"
BOOKS = SHARED / "corpus" / "books" / "gutenberg" / "english"
C4 = SHARED / "corpus" / "web" / "c4_demo.jsonl"
DRAGNET = SHARED / "corpus" / "web" / "dragnet_Corrected.tar.gz"
CODE = SHARED / "corpus" / "code" / "TheAlgorithms-Python-py.tar.gz"

CODE_HELD_OUT = 0.5
"""share of TheAlgorithms' files (by name hash) held out: evaluation junk is made from them, training junk from
the others"""

_DETOK = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" 's ", "'s "), (" n't ", "n't "), (" 're ", "'re "),
          (" 've ", "'ve "), (" 'll ", "'ll "), (" 'd ", "'d "), (" 'm ", "'m "), ("( ", "("), (" )", ")"),
          ("[ ", "["), (" ]", "]")]


def detokenize_wikitext(line: str) -> str:
    """WikiText-2's tokenized text back to ordinary text, ``<unk>`` removed."""
    t = " " + line.strip() + " "
    t = re.sub(r" ?<unk> ?", " ", t)
    for a, b in _DETOK:
        t = t.replace(a, b)
    t = re.sub(r' " (.*?) " ', r' "\1" ', t)
    t = re.sub(r" ([,.;:!?%])(?= |$)", r"\1", t)
    t = re.sub(r"\$ (?=\d)", "$", t)
    return re.sub(r"\s+", " ", t).strip()


def wikitext_paragraphs(split: str, min_words: int = 50, max_unk: float = 0.05) -> list[str]:
    """Detokenized paragraphs of ``wikitext2_{split}.txt`` (``valid`` or ``test``), in file order."""
    out = []
    for line in (WIKI / f"wikitext2_{split}.txt").read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s.startswith("="):
            continue
        words = s.split()
        if len(words) >= min_words and s.count("<unk>") <= max_unk * len(words):
            out.append(detokenize_wikitext(s))
    return out


def gutenberg_text(name: str) -> str:
    """The body of ``en-{name}.zip`` (alice, dracula, frankenstein) between the Gutenberg START/END markers."""
    with zipfile.ZipFile(BOOKS / f"en-{name}.zip") as z:
        text = z.read(z.namelist()[0]).decode("utf-8-sig")
    start = re.search(r"^\*\*\* ?START OF .*$", text, re.M)
    end = re.search(r"^\s*\*\*\* ?END OF .*$", text, re.M)
    return text[start.end() if start else 0:end.start() if end else len(text)]


def book_chunks(name: str, words: int = 250, min_words: int = 50) -> list[str]:
    """Paragraphs of a book (wrapped lines joined), grouped into documents of about ``words`` words; paragraphs
    joined by newlines."""
    paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", gutenberg_text(name))]
    paras = [p for p in paras if p and re.search(r"[a-z]", p)]
    docs, cur, n = [], [], 0
    for p in paras:
        cur.append(p)
        n += len(p.split())
        if n >= words:
            docs.append("\n".join(cur))
            cur, n = [], 0
    if n >= min_words:
        docs.append("\n".join(cur))
    return [d for d in docs if len(d.split()) >= min_words]


def held_out(name: str, fraction: float, salt: str = "mixlab-bench") -> bool:
    """Whether a file belongs to the held-out part: a stable hash of its name, not a random draw."""
    return xxhash.xxh3_64_intdigest(f"{salt}:{name}".encode()) / 2**64 < fraction


def c4_docs() -> list[tuple[str, str]]:
    """(name, text) of the C4 demo documents; name is ``c4:<line>``."""
    lines = C4.read_text(encoding="utf-8").splitlines()
    return [(f"c4:{i}", json.loads(x)["text"]) for i, x in enumerate(lines) if x.strip()]


def dragnet_docs() -> list[tuple[str, str]]:
    """(file name, text) of the dragnet pages, ``\\r\\n`` -> ``\\n``, decoded as UTF-8 or else cp1252."""
    out = []
    with tarfile.open(DRAGNET) as t:
        for m in t.getmembers():
            if not m.isfile() or not m.name.endswith(".txt"):
                continue
            raw = t.extractfile(m).read()  # type: ignore[union-attr]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252", errors="replace")
            out.append((m.name, text.replace("\r\n", "\n").replace("\r", "\n").strip()))
    return out


def python_files() -> list[tuple[str, str]]:
    """(path, source) of every ``*.py`` file in TheAlgorithms' tarball with at least 10 non-empty lines."""
    out = []
    with tarfile.open(CODE) as t:
        for m in t.getmembers():
            if m.isfile() and m.name.endswith(".py"):
                src = t.extractfile(m).read().decode("utf-8", errors="replace")  # type: ignore[union-attr]
                if sum(1 for x in src.splitlines() if x.strip()) >= 10:
                    out.append((m.name, src))
    return out


def min_words(docs: list[str], n: int) -> list[str]:
    return [d for d in docs if len(d.split()) >= n]
