"""Rebuild the mixlab quickstart dataset (this folder) from the shared data copy.

    python recipes/data/quickstart/build.py [SHARED_DATA_DIR]

SHARED_DATA_DIR defaults to ../shared/data relative to the project root.
Standard library only. Writes web/, wiki/, books/, code/ and README.md next to this script.
"""

import gzip
import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # recipes/data/quickstart -> project root

COPIES = {  # output path: source path under the shared data dir
    "web/c4_demo.jsonl": "corpus/web/c4_demo.jsonl",
    "web/cc_en_head-0091.jsonl.gz": "corpus/web/cc_en_head-0091.jsonl.gz",
    "web/cc_en_head-0174.jsonl.gz": "corpus/web/cc_en_head-0174.jsonl.gz",
    "wiki/wiki_demo.txt": "corpus/wiki/wiki_demo.txt",
}

# name: (zip under corpus/books/gutenberg/, chapter-heading regex matched against whole lines)
BOOKS = {
    "en-alice": ("english/en-alice.zip", r"CHAPTER [IVXL]+\."),
    "en-frankenstein": ("english/en-frankenstein.zip", r"(Letter|Chapter) \d+"),
    "fr-alice": ("french/fr-alice.zip", r"CHAPITRE (PREMIER|[IVXL]+)\."),
    "de-alice": ("german/de-alice.zip", r"\w+tes Kapitel\.?"),
    "it-alice": ("italian/it-alice.zip", r"CAPITOLO [IVXL]+\."),
}
# Not book text: the Project Gutenberg licence header/footer and the transcribers' notes some zips carry.
HEADER_END = re.compile(r"\*\*\* ?START OF THE PROJECT GUTENBERG.*")  # drop up to and including this line
FOOTER = re.compile(r"\s*\*\*\* ?END OF THE PROJECT GUTENBERG.*|  Liste des modifications:|Nota del Trascrittore")
FRONT_NOTE = (re.compile(r"  Au lecteur"), re.compile(r"  AVENTURES D'ALICE"))  # fr-alice: drop [from, to)
SEPARATOR = re.compile(r"\s*(\*\s+)+\*\s*")  # "*   *   *" scene break, trimmed from chunk ends

CODE_TAR = "corpus/code/TheAlgorithms-Python-py.tar.gz"
CODE_TARGET, CODE_MAX = 700_000, 900_000  # bytes of .py text


def book_lines(zpath: Path) -> list[str]:
    with zipfile.ZipFile(zpath) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".txt")]
        raw = z.read(name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [l.rstrip() for l in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    start = next((i + 1 for i, l in enumerate(lines) if HEADER_END.fullmatch(l)), 0)
    end = next((i for i, l in enumerate(lines) if FOOTER.fullmatch(l)), len(lines))
    lines = lines[start:end]
    note = next((i for i, l in enumerate(lines) if FRONT_NOTE[0].fullmatch(l)), None)
    if note is not None:
        title = next(i for i in range(note, len(lines)) if FRONT_NOTE[1].fullmatch(lines[i]))
        del lines[note:title]
    return lines


def clean(chunk: list[str]) -> str:
    while chunk and (not chunk[-1].strip() or SEPARATOR.fullmatch(chunk[-1])):
        chunk = chunk[:-1]
    return "\n".join(chunk).strip("\n") + "\n"


def split_book(name: str, zpath: Path, heading: str, out: Path) -> int:
    lines = book_lines(zpath)
    starts = [i for i, l in enumerate(lines) if re.fullmatch(heading, l)]
    assert starts, f"{name}: no chapter headings"
    chunks = [lines[: starts[0]]] + [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
    n = 0
    for i, chunk in enumerate(chunks):
        text = clean(chunk)
        if i == 0 and not text.strip():
            continue  # no front matter left after removing the licence header
        assert text.strip(), f"{name}: empty chapter {i}"
        (out / name).mkdir(parents=True, exist_ok=True)
        (out / name / f"ch-{i:03d}.txt").write_text(text, encoding="utf-8")
        n += 1
    return n


def copy_code(tar_path: Path, out: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        py = [m for m in members if m.name.endswith(".py") and "/" in m.name and m.size > 0]
        dirs = {}
        for m in py:
            dirs.setdefault(m.name.split("/")[0], []).append(m)
        chosen, skipped, total = [], [], 0
        for d in sorted(dirs):
            size = sum(m.size for m in dirs[d])
            if total + size > CODE_MAX:
                skipped.append(d)  # too big for the budget: skip it, keep walking
                continue
            chosen.append(d)
            total += size
            if total >= CODE_TARGET:
                break
        for m in [m for d in chosen for m in dirs[d]] + [tar.getmember("LICENSE.md")]:
            assert ".." not in m.name.split("/") and not m.name.startswith("/")
            dest = out / m.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(m).read())
    return chosen, skipped


def count_docs(path: Path) -> int:
    if path.suffix == ".gz":
        return len(gzip.decompress(path.read_bytes()).splitlines())
    return sum(1 for l in path.read_text(encoding="utf-8").splitlines() if l.strip())


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "../shared/data"
    src = src.resolve()
    for d in ("web", "wiki", "books", "code"):
        shutil.rmtree(HERE / d, ignore_errors=True)

    for dst, s in COPIES.items():
        (HERE / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / s, HERE / dst)
    for name, (zp, heading) in BOOKS.items():
        split_book(name, src / "corpus/books/gutenberg" / zp, heading, HERE / "books")
    code_dirs, code_skipped = copy_code(src / CODE_TAR, HERE / "code")

    # sanity: every text file decodes as UTF-8 and is non-empty
    for p in HERE.rglob("*"):
        if p.is_file() and p.suffix in {".txt", ".py", ".jsonl"}:
            assert p.read_text(encoding="utf-8").strip(), p

    rows = []  # domain, path, origin, licence, docs, bytes
    for dst in COPIES:
        p = HERE / dst
        dom = dst.split("/")[0]
        origin, lic = ORIGINS[dst]
        rows.append((dom, f"`{dst}`", origin, lic, count_docs(p), p.stat().st_size))
    for name in BOOKS:
        files = sorted((HERE / "books" / name).glob("*.txt"))
        rows.append(("books", f"`books/{name}/ch-*.txt`", GUTENBERG, "public domain (repo MIT)",
                     len(files), sum(f.stat().st_size for f in files)))
    py = sorted((HERE / "code").rglob("*.py"))
    rows.append(("code", "`code/**/*.py`", "TheAlgorithms/Python @ f5988cc, all `*.py`", "MIT",
                 len(py), sum(f.stat().st_size for f in py)))

    table = "\n".join("| " + " | ".join(f"{c:,}" if isinstance(c, int) else c for c in r) + " |"
                      for r in rows)
    heads = "\n".join(f"- `{n}`: `^{h}$`" for n, (_, h) in BOOKS.items())
    (HERE / "README.md").write_text(README.format(table=table, heads=heads, dirs=", ".join(
        f"`{d}/`" for d in code_dirs), skipped=", ".join(f"`{d}/`" for d in code_skipped),
        target=f"{CODE_TARGET:,}", cap=f"{CODE_MAX:,}"), encoding="utf-8")

    for r in rows:
        print(f"{r[1]:36} {r[4]:5} docs {r[5]:9,} bytes")
    files = [p for p in HERE.rglob("*") if p.is_file()]
    print(f"total: {len(files)} files, {sum(p.stat().st_size for p in files):,} bytes in {HERE}")


GUTENBERG = "andrejacobs/datasets-text @ 476066e `corpora/gutenberg.org/`"
ORIGINS = {
    "web/c4_demo.jsonl": ("hiyouga/LLaMA-Factory @ ff6d4d1 `data/c4_demo.jsonl`", "ODC-BY (C4)"),
    "web/cc_en_head-0091.jsonl.gz": ("allenai/dolma @ 669f534 `tests/data/multiple_files/`",
                                     "Apache-2.0; Common Crawl terms"),
    "web/cc_en_head-0174.jsonl.gz": ("allenai/dolma @ 669f534 `tests/data/multiple_files/`",
                                     "Apache-2.0; Common Crawl terms"),
    "wiki/wiki_demo.txt": ("hiyouga/LLaMA-Factory @ ff6d4d1", "CC BY-SA"),
}

README = """# mixlab quickstart dataset

A small, real, multi-domain corpus for the quickstart recipe. Generated by `build.py` in this folder
(`python recipes/data/quickstart/build.py [path/to/shared/data]`); do not edit by hand.

| domain | path | origin (repo @ commit, path) | licence | documents | bytes |
|---|---|---|---|---:|---:|
{table}

Documents: JSONL = lines; `wiki_demo.txt` = non-empty lines (one article per line); books and code = files.
`code/LICENSE.md` is the MIT licence of TheAlgorithms/Python, copied from the same tarball.

**Web text is deliberately unclean.** `web/` holds real Common Crawl (CCNet, via dolma) and C4 text, unchanged.
It may contain boilerplate (navigation, cookie notices, ads) and near duplicates on purpose: the quickstart
pipeline is expected to remove them.

**How the books were split.** Each Project Gutenberg zip is decoded as UTF-8 (byte-order mark removed; latin-1
would be the fallback, but none of these zips needed it) and line endings are normalised to `\\n`. The Project
Gutenberg licence header and footer (`*** START/END OF THE PROJECT GUTENBERG EBOOK ... ***`) and the
transcribers' notes (French "Au lecteur" / "Liste des modifications", Italian "Nota del Trascrittore") are
dropped. The text is then cut at every line that is exactly a chapter heading; each file starts with its
heading, and `ch-001.txt` is the first chapter. Text before the first heading (title page, dedication poem,
table of contents) is real book text and is kept as `ch-000.txt`. Frankenstein's four opening letters count
as chapters (`ch-001`..`ch-004` = Letter 1-4, `ch-005`.. = Chapter 1..). Heading patterns (whole line):

{heads}

**How the code was chosen.** Non-empty `*.py` files of TheAlgorithms/Python, keeping their paths. Top-level
directories are taken whole in sorted order, skipping any that would push the total past {cap} bytes
(skipped: {skipped}), until the total reaches {target} bytes. Chosen: {dirs}.
Empty files (mostly `__init__.py`) are left out. LICENSE.md is copied too.
"""

if __name__ == "__main__":
    main()
