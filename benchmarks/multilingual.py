"""Gopher quality rules across languages: keep rates on real documents and removal of junk made from them, for
mixlab's `quality` step and datatrove's Gopher filters on the same documents.

Good documents (label: keep) are real text from Debian packages, fetched with ``apt-get download`` into the work
folder and never installed: the sections of the *Debian Reference* (Osamu Aoki, GPL-2+) in en, de, fr, es, it, pt,
ja and zh-cn — the same sections translated, so their keep rates compare like for like (a section is used when its
English original has >= 100 words and at least half of its paragraphs are translated; its paragraphs, without
tables and program listings, joined by blank lines) —
and Russian manual pages (manpages-ru, GPL/BSD-style per page, rendered by ``man``).

Junk (label: remove), made from each language's own good documents with a seeded RNG:

- ``boilerplate``: navigation/footer lines (the first words of 6 sentences) repeated 6 times;
- ``keyword_spam``: one sentence, then a 3-word phrase from it repeated 40 times;
- ``word_salad``: a document's whitespace words shuffled (for zh and ja, which have no spaces: its characters
  shuffled within each sentence);
- ``char_salad``: all characters of a document shuffled.

Tools, each told the true language of every document:

- ``mixlab``: the `quality` step with its default rule sets (``curate/steps/quality.py``);
- ``datatrove``: ``GopherQualityFilter`` then ``GopherRepetitionFilter`` with their defaults (Gopher's English
  thresholds and stop words) and the language's word tokenizer, in datatrove's own virtualenv (as
  ``benchmarks/minhash.py``);
- ``datatrove+fw2``: the same filters with FineWeb-2's per-language settings (thresholds and stop words from
  huggingface/fineweb-2 ``configs/{lang}_{script}.yml``; datatrove 0.10.1 does not ship them, so they are given here;
  English has no FineWeb-2 config and keeps Gopher's).

For each language and tool: keep rate of good documents, recall of removal (junk removed / junk), precision of
removal (junk removed / documents removed), and recall per junk kind.

    .venv/bin/python benchmarks/multilingual.py [--per-language 150] [--no-record]
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minhash import ensure_datatrove_venv  # noqa: E402
from report import WORK as BENCH_WORK, command_line, git_commit, markdown, print_and_record  # noqa: E402

WORK = BENCH_WORK / "multilingual"
REFERENCE_LANGS = {"en": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "ja": "ja", "zh": "zh-cn"}
PACKAGES = [f"debian-reference-{v}" for v in REFERENCE_LANGS.values()] + ["manpages-ru"]
JUNK_KINDS = ["boilerplate", "keyword_spam", "word_salad", "char_salad"]
NO_SPACES = {"zh", "ja"}
DT_EXTRA = ["jieba==0.42.1", "sudachipy==0.7.0", "sudachidict-core==20261015", "pythainlp==5.4.0"]

FW2_STOP_WORDS = {  # huggingface/fineweb-2 configs/{lang}_{script}.yml, "stopwords"
    "de": "der und die in von im den des mit das er dem als wurde für".split(),
    "fr": "de la le et à en l' des du les est d' un une il dans par au".split(),
    "es": "de la en el y a que del los se por un con una las su".split(),
    "it": "di e il la in a del che è della un per nel l' con da i una".split(),
    "pt": "de a e o em do da que um no uma com para na é foi".split(),
    "ru": "в и на с года по году из был к не от что за для его как а он также до после".split(),
    "zh": list("的年在月是和日了於·為有被人中为他與後也而由"),
    "ja": list("のにをはたてがとで年し・月れさ"),
}


def fetch_debs(dest: Path) -> Path:
    """The packages' files extracted under ``dest/root`` (``apt-get download`` + ``dpkg-deb -x``; no install)."""
    root = dest / "root"
    if (root / "usr" / "share" / "debian-reference").is_dir() and (root / "usr" / "share" / "man" / "ru").is_dir():
        return root
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=dest, check=True, capture_output=True)
    for deb in sorted(dest.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


_SECTION = re.compile(r'<h[23] class="title"[^>]*>\s*<a id="([^"]+)"')
_PARA = re.compile(r"<p>(.*?)</p>", re.S)
_DROP = re.compile(r"<(table|pre)\b.*?</\1>", re.S)


def _sections(page: str) -> dict[str, str]:
    page = _DROP.sub("", page)
    cuts = list(_SECTION.finditer(page))
    out = {}
    for i, m in enumerate(cuts):
        body = page[m.end(): cuts[i + 1].start() if i + 1 < len(cuts) else len(page)]
        paras = [" ".join(html.unescape(re.sub(r"<[^>]+>", "", p)).split()) for p in _PARA.findall(body)]
        out[m.group(1)] = "\n\n".join(p for p in paras if p)
    return out


def reference_documents(root: Path) -> dict[str, list[str]]:
    """Per language, the Debian Reference's sections whose English original has >= 100 words."""
    base = root / "usr" / "share" / "debian-reference"
    by_lang: dict[str, dict[str, str]] = {}
    for lang, suffix in REFERENCE_LANGS.items():
        secs: dict[str, str] = {}
        for page in sorted(base.glob(f"*.{suffix}.html")):
            chapter = page.name.split(".")[0]
            for sid, text in _sections(page.read_text(encoding="utf-8", errors="replace")).items():
                secs[f"{chapter}/{sid}"] = text
        by_lang[lang] = secs
    english = by_lang["en"]
    chosen = [k for k, t in english.items() if len(t.split()) >= 100]

    def translated(lang: str, key: str) -> bool:
        paras = [p for p in by_lang[lang].get(key, "").split("\n\n") if p.strip()]
        same = set(english[key].split("\n\n"))
        return lang == "en" or bool(paras) and sum(p in same for p in paras) <= len(paras) / 2

    return {lang: [secs[k] for k in chosen if secs.get(k, "").strip() and translated(lang, k)]
            for lang, secs in by_lang.items()}


def manpage_documents(root: Path) -> list[str]:
    """Russian manual pages rendered as text (``man -l``, 100 columns), one document each."""
    out = []
    for page in sorted((root / "usr" / "share" / "man" / "ru").rglob("*.gz")):
        r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                           env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        lines = [re.sub(r".\x08", "", x).strip() for x in r.stdout.splitlines()[1:-1]]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if len(text.split()) >= 100:
            out.append(text)
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*", text) if len(s.strip()) > 10]


def junk(lang: str, good: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` junk documents of each kind made from ``good`` (kind, text)."""
    out: list[tuple[str, str]] = []
    for _ in range(n):
        doc = rng.choice(good)
        sents = _sentences(doc) or [doc]
        heads = [(s[:12] if lang in NO_SPACES else " ".join(s.split()[:4]))
                 for s in rng.sample(sents, min(6, len(sents)))]
        out.append(("boilerplate", "\n".join(heads * 6)))
        s = rng.choice(sents)
        if lang in NO_SPACES:
            i = rng.randrange(max(1, len(s) - 6))
            phrase = s[i:i + 6]
        else:
            w = s.split()
            i = rng.randrange(max(1, len(w) - 3))
            phrase = " ".join(w[i:i + 3])
        out.append(("keyword_spam", s + ("" if lang in NO_SPACES else " ") +
                    ("" if lang in NO_SPACES else " ").join([phrase] * 40)))
        if lang in NO_SPACES:
            salad = "".join("".join(rng.sample(list(x), len(x))) for x in re.split(r"(?<=[。！？\n])", doc))
        else:
            w = doc.split()
            salad = " ".join(rng.sample(w, len(w)))
        out.append(("word_salad", salad))
        chars = list(doc)
        rng.shuffle(chars)
        out.append(("char_salad", "".join(chars)))
    return out


def build(per_language: int, seed: int) -> list[dict]:
    """The labelled documents: {lang, kind ("good" or a junk kind), text}."""
    root = fetch_debs(WORK / "debs")
    docs = reference_documents(root)
    docs["ru"] = manpage_documents(root)
    rng = random.Random(seed)
    rows = []
    for lang in sorted(docs):
        good = docs[lang][:per_language] if len(docs[lang]) <= per_language else rng.sample(docs[lang], per_language)
        rows += [{"lang": lang, "kind": "good", "text": t} for t in good]
        rows += [{"lang": lang, "kind": k, "text": t} for k, t in junk(lang, good, max(1, per_language // 4), rng)]
    return rows


def run_mixlab(rows: list[dict]) -> tuple[list[str | None], float]:
    """mixlab's `quality` step with its defaults; each document's reason (None: kept) and the seconds taken."""
    from curate.steps.base import StepContext
    from curate.steps.quality import Quality, QualityParams

    step = Quality(QualityParams(), StepContext(seed=0, partitions=1))
    out: list[str | None] = []
    t0 = time.perf_counter()
    for i in range(0, len(rows), 1000):
        part = rows[i:i + 1000]
        batch = step.annotate(pa.table({"text": [r["text"] for r in part], "lang": [r["lang"] for r in part]}))
        out += step.decide(batch).to_pylist()
    return out, time.perf_counter() - t0


DT_SCRIPT = r'''
import json, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
rows = [json.loads(x) for x in open(sys.argv[1], encoding="utf-8")]
settings = json.loads(open(sys.argv[2], encoding="utf-8").read())
filters = {}
out = []
t0 = time.perf_counter()
for i, r in enumerate(rows):
    lang = r["lang"]
    if lang not in filters:
        s = settings.get(lang) or {}
        filters[lang] = [GopherQualityFilter(language=lang, **s.get("quality", {})),
                         GopherRepetitionFilter(language=lang, **s.get("repetition", {}))]
    why = None
    for f in filters[lang]:
        res = f.filter(Document(text=r["text"], id=str(i)))
        if res is not True and res != (True, None):
            why = res[1] if isinstance(res, tuple) else f.name
            break
    out.append(why)
json.dump({"why": out, "seconds": time.perf_counter() - t0}, open(sys.argv[3], "w"))
'''


def fineweb2_settings() -> dict[str, dict]:
    """datatrove filter arguments from FineWeb-2's settings (the numbers mixlab's defaults carry) and stop words."""
    from curate.steps.quality import LANGUAGE_RULES

    out = {}
    for lang, stops in FW2_STOP_WORDS.items():
        r = LANGUAGE_RULES[lang] or {}
        out[lang] = {"quality": {"min_avg_word_length": r["min_mean_word_length"],
                                 "max_avg_word_length": r["max_mean_word_length"],
                                 "max_non_alpha_words_ratio": r["min_alpha_words_ratio"], "stop_words": stops},
                     "repetition": {"dup_line_frac": r["max_dup_lines_ratio"],
                                    "top_n_grams": [[n, v] for n, v in r["max_top_ngram_chars_ratio"].items()],
                                    "dup_n_grams": [[n, v] for n, v in r["max_dup_ngram_chars_ratio"].items()]}}
    return out


def run_datatrove(rows: list[dict], settings: dict) -> tuple[list[str | None], float, str]:
    python = ensure_datatrove_venv()
    if subprocess.run([str(python), "-c", "import jieba, sudachipy, sudachidict_core, pythainlp"],
                      capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DT_EXTRA], check=True)
    WORK.mkdir(parents=True, exist_ok=True)
    data, conf, result, script = (WORK / n for n in ("docs.jsonl", "settings.json", "dt_result.json", "dt.py"))
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    conf.write_text(json.dumps(settings), encoding="utf-8")
    script.write_text(DT_SCRIPT)
    with open(WORK / "datatrove.log", "w") as log:
        subprocess.run([str(python), str(script), str(data), str(conf), str(result)], check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    version = subprocess.run([str(python), "-c", "from importlib.metadata import version as v; "
                              "print(f\"datatrove {v('datatrove')}, spaCy {v('spacy')}\")"],
                             capture_output=True, text=True).stdout.strip()
    r = json.loads(result.read_text())
    return r["why"], r["seconds"], version


def scores(rows: list[dict], why: list[str | None]) -> dict[str, dict]:
    """Per language: keep rate of good documents, precision and recall of removal, recall per junk kind."""
    by: dict[str, Counter] = defaultdict(Counter)
    for r, w in zip(rows, why):
        c = by[r["lang"]]
        c[(r["kind"], w is None)] += 1
    out = {}
    for lang, c in sorted(by.items()):
        good_kept, good_removed = c[("good", True)], c[("good", False)]
        junk_removed = sum(c[(k, False)] for k in JUNK_KINDS)
        junk_all = junk_removed + sum(c[(k, True)] for k in JUNK_KINDS)
        removed = junk_removed + good_removed
        out[lang] = {"good": good_kept + good_removed, "keep": good_kept / max(1, good_kept + good_removed),
                     "recall": junk_removed / max(1, junk_all), "precision": junk_removed / removed if removed else 1.0,
                     **{k: c[(k, False)] / max(1, c[(k, False)] + c[(k, True)]) for k in JUNK_KINDS}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-language", type=int, default=150, help="good documents per language (junk: 1/4 per kind)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    commit = git_commit()
    rows = build(args.per_language, args.seed)
    per_lang = sorted(Counter(r["lang"] for r in rows).items())
    print(f"{len(rows)} documents: " + ", ".join(f"{k} {v}" for k, v in per_lang), flush=True)
    results = {}
    why, secs = run_mixlab(rows)
    results["mixlab"] = (scores(rows, why), secs, why)
    why, secs, version = run_datatrove(rows, {})
    results["datatrove"] = (scores(rows, why), secs, why)
    why, secs, _ = run_datatrove(rows, fineweb2_settings())
    results["datatrove+fw2"] = (scores(rows, why), secs, why)

    langs = sorted(results["mixlab"][0])
    head = ["lang", "good docs"] + [f"{t}: {m}" for t in results for m in ("keep", "P", "R")]
    table = [[lang, results["mixlab"][0][lang]["good"]] +
             [f"{results[t][0][lang][m]:.2f}" for t in results for m in ("keep", "precision", "recall")]
             for lang in langs]
    kinds_head = ["lang"] + [f"{t}: {k}" for t in results for k in JUNK_KINDS]
    kinds = [[lang] + [f"{results[t][0][lang][k]:.2f}" for t in results for k in JUNK_KINDS] for lang in langs]
    reasons = Counter((r["lang"], w) for r, w in zip(rows, results["mixlab"][2]) if r["kind"] == "good" and w)
    body = "\n".join([
        f"Documents: {len(rows)} ({args.per_language} good per language where available, "
        f"{max(1, args.per_language // 4)} of each junk kind); good = Debian Reference sections (ru: manual pages), "
        f"junk = {', '.join(JUNK_KINDS)} made from them. Tools: mixlab `quality` defaults; {version} Gopher quality + repetition filters with "
        "their defaults (`datatrove`) and with FineWeb-2's per-language thresholds and stop words "
        "(`datatrove+fw2`); every document carries its true language.", "",
        "Keep rate of good documents, precision (P) and recall (R) of removal:", "",
        markdown(head, table), "",
        "Recall of removal per junk kind:", "",
        markdown(kinds_head, kinds), "",
        "mixlab's reasons for removing good documents: " +
        (", ".join(f"{lang} {w} {n}" for (lang, w), n in sorted(reasons.items())) or "none"), "",
        "Seconds for all documents: " + ", ".join(f"{t} {results[t][1]:.1f}" for t in results) + "."])
    print_and_record("Gopher rules across languages (benchmarks/multilingual.py)", command_line(), commit, body,
                     not args.no_record)


if __name__ == "__main__":
    main()
