"""Deterministic benchmark corpus for ``benchmarks/pipeline.py``: real text from ``../shared/data``, replicated to a
target size with realistic, seeded variation.

Base documents (one replica's worth, ~20 MB):

* web   = ``corpus/web/c4_demo.jsonl`` (300 C4 docs) + the 1,381 hand-cleaned pages of ``dragnet_Corrected.tar.gz``
* wiki  = ``corpus/wiki/wiki_demo.txt`` (one article per line) + WikiText-2 valid/test cut into articles at
          top-level `` = Title = `` headings
* books = the Gutenberg zips (licence header/footer dropped) and ``tinyshakespeare.txt``, cut at blank lines into
          chunks of 5-20 KB
* code  = every ``*.py`` file of the TheAlgorithms tarball

Every domain is replicated until it holds its natural share of the target size. Replica 0 is the originals; in later
replicas a fraction ``exact_fraction`` of the documents is an exact copy of the original (work for ``exact_dedup``)
and the rest are varied: sentences (code: lines) are dropped or swapped and most lines get a few words replaced, so
they are near duplicates, not byte copies. Web documents carry seeded site boilerplate lines ("Cookie policy | Terms
of use", ...), the same in every replica of a page, so ``line_dedup`` has work. Documents are spread over several
``jsonl.zst`` files of about ``file_mb`` MB per domain (``{"id", "text"}`` per line) in a seeded order.

Everything depends only on the seed and the parameters; a built corpus is reused when its ``corpus.json`` matches.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import orjson
import xxhash
import zstandard

from source_texts import (BOILERPLATE, SENTENCE_END, book_texts, c4_texts, chunk_paragraphs, dragnet_pages,
                          python_sources, vocabulary, wikitext_articles)

BUILDER_VERSION = 3
DOMAINS = ("web", "wiki", "books", "code")
MB = 1_000_000


@dataclass(frozen=True)
class BaseDoc:
    id: str
    text: str


@dataclass(frozen=True)
class Variation:
    """How replicas differ from the originals."""

    exact_fraction: float = 0.10
    """fraction of documents in replicas >= 1 that are exact copies of their original"""
    drop_prob: float = 0.03
    """per sentence (code: per line): dropped"""
    swap_prob: float = 0.2
    """per line with 2+ sentences (code: per document): one adjacent pair swapped"""
    line_edit_prob: float = 0.85
    """per prose line of 4+ words: 1-3 words replaced (code: 0.1 per line, one word)"""
    boilerplate_prob: float = 0.6
    """per web page: gets 0-2 header and 1-3 footer boilerplate lines"""


@dataclass
class DomainStats:
    base_docs: int = 0
    base_mb: float = 0.0
    docs: int = 0
    mb: float = 0.0
    files: int = 0
    replicas: float = 0.0
    exact_copies: int = 0
    """documents written as exact copies of their original (replicas >= 1)"""
    duplicates: int = 0
    """documents whose lowercased, whitespace-folded text was already seen: what exact_dedup should remove"""
    boilerplate_lines: int = 0


@dataclass
class CorpusInfo:
    dir: Path
    size_mb: int
    seed: int
    domains: dict[str, DomainStats] = field(default_factory=dict)

    @property
    def docs(self) -> int:
        return sum(d.docs for d in self.domains.values())

    @property
    def mb(self) -> float:
        return sum(d.mb for d in self.domains.values())

    @property
    def recipe(self) -> Path:
        return self.dir / "recipe.yaml"


# ---------------------------------------------------------------------------------------------------- base documents

def load_web(shared: Path) -> list[BaseDoc]:
    return ([BaseDoc(f"c4/{i}", text) for i, text in c4_texts(shared)]
            + [BaseDoc(f"dragnet/{Path(name).name.split('.')[0]}", text) for name, text in dragnet_pages(shared)
               if text.strip()])


def load_wiki(shared: Path) -> list[BaseDoc]:
    docs = []
    for i, line in enumerate((shared / "corpus/wiki/wiki_demo.txt").read_text(encoding="utf-8").splitlines()):
        if line.strip():
            docs.append(BaseDoc(f"wiki_demo/{i}", line))
    for name in ("wikitext2_valid", "wikitext2_test"):
        for k, (_, text) in enumerate(wikitext_articles(shared / f"corpus/wiki/{name}.txt")):
            docs.append(BaseDoc(f"{name}/{k}", text))
    return docs


def load_books(shared: Path, seed: int) -> list[BaseDoc]:
    """The books cut at blank lines into chunks of ~5-20 KB."""
    rng = random.Random(f"{seed}/books/chunks")
    return [BaseDoc(f"{book}/{k}", chunk) for book, text in book_texts(shared)
            for k, chunk in enumerate(chunk_paragraphs(text, rng, 5_000, 20_000))]


def load_code(shared: Path) -> list[BaseDoc]:
    return [BaseDoc(f"algorithms/{name}", text) for name, text in python_sources(shared) if text.strip()]


def load_base(shared: Path, seed: int) -> dict[str, list[BaseDoc]]:
    return {"web": load_web(shared), "wiki": load_wiki(shared), "books": load_books(shared, seed),
            "code": load_code(shared)}


# ---------------------------------------------------------------------------------------------------- variation

def _replace_words(line: str, rng: random.Random, vocab: list[str], count: int) -> str:
    words = line.split(" ")
    slots = [i for i, w in enumerate(words) if w.isalpha()]
    for i in rng.sample(slots, min(count, len(slots))):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def vary_prose(text: str, rng: random.Random, vocab: list[str], v: Variation) -> str:
    out = []
    for line in text.split("\n"):
        if not line.strip():
            out.append(line)
            continue
        sentences = SENTENCE_END.split(line)
        kept = [s for s in sentences if rng.random() >= v.drop_prob] or sentences[:1]
        if len(kept) > 1 and rng.random() < v.swap_prob:
            i = rng.randrange(len(kept) - 1)
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
        line = " ".join(kept)
        if line.count(" ") >= 3 and rng.random() < v.line_edit_prob:
            line = _replace_words(line, rng, vocab, rng.randint(1, 3))
        out.append(line)
    return "\n".join(out)


def vary_code(text: str, rng: random.Random, vocab: list[str], v: Variation) -> str:
    lines = [ln for ln in text.split("\n") if not ln.strip() or rng.random() >= v.drop_prob / 3]
    if len(lines) > 1 and rng.random() < v.swap_prob:
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return "\n".join(_replace_words(ln, rng, vocab, 1) if ln.strip() and rng.random() < v.line_edit_prob / 8 else ln
                     for ln in lines)


def boilerplate_for(doc: BaseDoc, seed: int, v: Variation) -> tuple[list[str], list[str]]:
    """The site template of one web page: header and footer lines, the same in every replica."""
    rng = random.Random(f"{seed}/boilerplate/{doc.id}")
    if rng.random() >= v.boilerplate_prob:
        return [], []
    n_head, n_foot = rng.randint(0, 2), rng.randint(1, 3)
    lines = rng.sample(BOILERPLATE, n_head + n_foot)
    return lines[:n_head], lines[n_head:]


# ---------------------------------------------------------------------------------------------------- replication

@dataclass(frozen=True)
class GeneratedDoc:
    id: str
    text: str
    exact_copy: bool
    boilerplate_lines: int


def replicate(domain: str, docs: list[BaseDoc], target_bytes: int, seed: int, v: Variation
              ) -> Iterator[GeneratedDoc]:
    """Replica 0 (originals), then varied replicas, in a seeded order per replica, until ``target_bytes``."""
    vocab = vocabulary((d.text for d in docs), 20_000)
    vary = vary_code if domain == "code" else vary_prose
    written, replica = 0, 0
    while True:
        order = list(range(len(docs)))
        random.Random(f"{seed}/{domain}/order/{replica}").shuffle(order)
        for i in order:
            doc = docs[i]
            rng = random.Random(f"{seed}/{domain}/{replica}/{doc.id}")
            exact = replica == 0 or rng.random() < v.exact_fraction
            body = doc.text if exact else vary(doc.text, rng, vocab, v)
            head, foot = boilerplate_for(doc, seed, v) if domain == "web" else ([], [])
            text = "\n".join([*head, body, *foot])
            yield GeneratedDoc(f"{domain}/{doc.id}/r{replica}", text, exact and replica > 0, len(head) + len(foot))
            written += len(text.encode("utf-8"))
            if written >= target_bytes:
                return
        replica += 1


def dedup_key(text: str) -> int:
    """What exact_dedup compares (lowercased, whitespace folded), hashed."""
    return xxhash.xxh3_128_intdigest(" ".join(text.lower().split()).encode("utf-8"))


def write_domain(out: Path, domain: str, docs: list[BaseDoc], target_bytes: int, n_files: int, seed: int,
                 v: Variation) -> DomainStats:
    """Write one domain's replicated documents into ``n_files`` jsonl.zst files, each document to a seeded file."""
    stats = DomainStats(base_docs=len(docs), base_mb=sum(len(d.text.encode()) for d in docs) / MB, files=n_files)
    (out / domain).mkdir(parents=True, exist_ok=True)
    handles = [open(out / domain / f"part-{k:03d}.jsonl.zst", "wb") for k in range(n_files)]
    writers = [zstandard.ZstdCompressor(level=3).stream_writer(h) for h in handles]  # one context per stream
    pick = random.Random(f"{seed}/{domain}/files")
    seen: set[int] = set()
    try:
        for g in replicate(domain, docs, target_bytes, seed, v):
            writers[pick.randrange(n_files)].write(orjson.dumps({"id": g.id, "text": g.text}) + b"\n")
            stats.docs += 1
            stats.mb += len(g.text.encode("utf-8")) / MB
            stats.exact_copies += g.exact_copy
            stats.boilerplate_lines += g.boilerplate_lines
            key = dedup_key(g.text)
            stats.duplicates += key in seen
            seen.add(key)
    finally:
        for w in writers:
            w.close()
        for h in handles:
            h.close()
    stats.replicas = stats.mb / stats.base_mb
    return stats


# ---------------------------------------------------------------------------------------------------- the corpus

def recipe_yaml(name: str, seed: int) -> str:
    """The quickstart's steps, mixture and removed-document policy, over the benchmark corpus."""
    sources = "".join(f"  - path: {d}/*.jsonl.zst\n    format: jsonl.zst\n    domain: {d}\n    id_field: id\n"
                      for d in DOMAINS)
    return (f"# written by benchmarks/pipeline_data.py: the quickstart's steps over the benchmark corpus\n"
            f"name: {name}\nseed: {seed}\n\nsources:\n{sources}\n"
            "steps:\n  - normalize: {}\n  - exact_dedup: {}\n"
            "  - line_dedup:\n      domains: [web]\n      min_count: 2\n      min_words: 50\n"
            "  - quality:\n      domains: [web, wiki]\n\n"
            "mixture:\n  method: temperature\n  tau: 2.0\n\n"
            "output:\n  dir: out\n  keep_removed: all\n")


def _params(size_mb: int, seed: int, file_mb: int, v: Variation) -> dict:
    return {"builder_version": BUILDER_VERSION, "size_mb": size_mb, "seed": seed, "file_mb": file_mb,
            "variation": asdict(v)}


def _load_info(path: Path, params: dict) -> CorpusInfo | None:
    meta = path / "corpus.json"
    if not meta.exists():
        return None
    data = json.loads(meta.read_text())
    if data.get("params") != params:
        return None
    return CorpusInfo(path, params["size_mb"], params["seed"],
                      {d: DomainStats(**s) for d, s in data["domains"].items()})


def build_corpus(work: Path, shared: Path, size_mb: int, seed: int = 1234, file_mb: int = 8,
                 v: Variation = Variation()) -> CorpusInfo:
    """Build (or reuse) the corpus of ``size_mb`` MB of text under ``work/data-<size>mb-f<file_mb>-s<seed>``, each
    domain in files of about ``file_mb`` MB: the same file size at every corpus size, so batches are alike."""
    params = _params(size_mb, seed, file_mb, v)
    out = work / f"data-{size_mb}mb-f{file_mb}-s{seed}"
    if (info := _load_info(out, params)) is not None:
        return info
    if out.exists():
        import shutil
        shutil.rmtree(out)
    out.mkdir(parents=True)
    base = load_base(shared, seed)
    base_bytes = {d: sum(len(x.text.encode()) for x in docs) for d, docs in base.items()}
    total = sum(base_bytes.values())
    info = CorpusInfo(out, size_mb, seed)
    for d in DOMAINS:
        target = round(size_mb * MB * base_bytes[d] / total)
        n_files = max(1, round(target / (file_mb * MB)))
        info.domains[d] = write_domain(out, d, base[d], target, n_files, seed, v)
    info.recipe.write_text(recipe_yaml(f"bench-{size_mb}mb", seed), encoding="utf-8")
    (out / "corpus.json").write_text(json.dumps(
        {"params": params, "domains": {d: asdict(s) for d, s in info.domains.items()}}, indent=2) + "\n")
    return info


def mix_table(info: CorpusInfo) -> str:
    """The corpus mix as a Markdown table."""
    rows = ["| domain | files | base docs | base MB | replicas | docs | MB | exact copies | expected exact dups "
            "| boilerplate lines |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for d, s in info.domains.items():
        rows.append(f"| {d} | {s.files} | {s.base_docs:,} | {s.base_mb:.1f} | {s.replicas:.2f} | {s.docs:,} | "
                    f"{s.mb:.1f} | {s.exact_copies:,} | {s.duplicates:,} | {s.boilerplate_lines:,} |")
    t = list(info.domains.values())
    rows.append(f"| **all** | {sum(s.files for s in t)} | {sum(s.base_docs for s in t):,} | "
                f"{sum(s.base_mb for s in t):.1f} | | {info.docs:,} | {info.mb:.1f} | "
                f"{sum(s.exact_copies for s in t):,} | {sum(s.duplicates for s in t):,} | "
                f"{sum(s.boilerplate_lines for s in t):,} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Build the benchmark corpus only.")
    ap.add_argument("--size", type=int, default=5, help="MB of text")
    ap.add_argument("--seed", type=int, default=1234)
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--shared", type=Path, default=root.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=root / "benchmarks" / ".work")
    a = ap.parse_args()
    print(mix_table(build_corpus(a.work, a.shared, a.size, a.seed)))
