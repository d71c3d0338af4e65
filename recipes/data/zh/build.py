"""Rebuild the Chinese text of `recipes/zh_en_code.yaml` (this folder) from its public-domain sources.

    python recipes/data/zh/build.py [SHARED_DATA_DIR] [FORTUNES_ZH_DEB]

SHARED_DATA_DIR (default ../shared/data from the project root) holds nltk_data's `langid/udhr2.zip`;
FORTUNES_ZH_DEB is Debian's fortunes-zh 2.98 package (`apt-get download fortunes-zh`; downloaded into a temporary
folder when not given). Standard library and `dpkg-deb` only. Writes udhr_zh.jsonl, tang300.jsonl, song100.jsonl.
"""

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # recipes/data/zh -> project root
POEMS_PER_DOC = 8
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def udhr(shared: Path) -> list[dict[str, str]]:
    """The Universal Declaration of Human Rights in Simplified Chinese: the preamble, then 10 articles a document."""
    with zipfile.ZipFile(shared / "langid" / "udhr2.zip") as z:
        lines = [l.strip() for l in z.read("udhr2/cmn_hans.txt").decode("utf-8").splitlines()]
    text = "\n".join(lines)
    parts = re.split(r"\n(?=第[一二三四五六七八九十]+条\n)", text)
    preamble, articles = parts[0], parts[1:]
    docs = [preamble] + ["\n\n".join(articles[i:i + 10]) for i in range(0, len(articles), 10)]
    return [{"id": f"udhr-zh-{i:02d}", "text": re.sub(r"\n{3,}", "\n\n", d).strip()} for i, d in enumerate(docs)]


def poems(path: Path, name: str) -> list[dict[str, str]]:
    """A fortune file's poems (title, author, verses), ``POEMS_PER_DOC`` to a document, colour codes removed."""
    text = ANSI.sub("", path.read_text(encoding="utf-8"))
    items = [re.sub(r"\n{3,}", "\n\n", "\n".join(l.strip() for l in p.strip().splitlines())).strip()
             for p in text.split("\n%\n")]
    items = [p for p in items if p]
    return [{"id": f"{name}-{i // POEMS_PER_DOC:03d}", "text": "\n\n".join(items[i:i + POEMS_PER_DOC])}
            for i in range(0, len(items), POEMS_PER_DOC)]


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        deb = Path(sys.argv[2]) if len(sys.argv) > 2 else None
        if deb is None:
            subprocess.run(["apt-get", "download", "fortunes-zh=2.98"], cwd=tmp, check=True)
            deb = next(Path(tmp).glob("fortunes-zh_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"], check=True)
        fortunes = Path(tmp) / "x" / "usr" / "share" / "games" / "fortunes"
        outputs = {"udhr_zh.jsonl": udhr(shared), "tang300.jsonl": poems(fortunes / "tang300", "tang300"),
                   "song100.jsonl": poems(fortunes / "song100", "song100")}
    for name, docs in outputs.items():
        (HERE / name).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        print(f"{name}: {len(docs)} documents, {(HERE / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
