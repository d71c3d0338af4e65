"""How well CCNet-style KenLM perplexity separates real news article bodies from junk (real page boilerplate, word
salad, keyword spam, tables, rule-made junk), per junk kind, for several models and document scores; how fast it
scores.

What it measures:

* reference text: the shared Wikipedia text (``corpus/wiki/wiki_demo.txt``, ``wikitext2_valid.txt``,
  ``wikitext2_test.txt``: 3.4M characters, one paragraph or article per line), as issue 18 measured it;
* models, all by ``curate.lm.train`` (what ``curate lm train`` runs; lmplz ``-S 20%`` always):
  ``old default`` (5-gram, 16,000 pieces, no pruning: the defaults before issue 18), ``CCNet plain`` (5-gram, 8,000
  pieces, no pruning), ``auto`` (today's defaults, chosen from the text size); ``--sweep`` adds vocabulary x order
  grids on the 3.4M characters and on ``wiki_demo.txt`` alone (1.0M characters), the measurements behind
  ``curate.lm.auto_vocab_size``;
* documents: ``--good`` (300) dragnet pages of at least 100 words (``corpus/web/dragnet_Corrected.tar.gz``: news
  and blog articles of 2012, main text cleaned by hand: title, date, byline, body) against junk of these kinds:

  - ``real_boilerplate``: real page chrome, the lines of the Common Crawl WARC samples' HTML pages that no
    main-content extractor keeps (``junk.real_page_boilerplate``);
  - ``tables``: the Wikipedia dump sample's tables, a row per line, cells tab-separated (``junk.wiki_tables``);
  - ``word_salad``: other dragnet pages with the words of every line shuffled (same lines, same words);
  - ``keyword_spam``: 2-8 lines of ``junk.keyword_spam`` made from the paragraphs of other dragnet pages;
  - rule-made (``benchmarks/junk.py``): ``boilerplate`` (templated web chrome), ``code_as_prose``,
    ``machine_translated`` (every line of other dragnet pages rewritten);

  no page scored as good is used to make junk, and nothing scored is in the reference text;
* document scores: ``document`` (CCNet's perplexity, ``score: document``), ``lines`` (``score: lines``:
  ``ppl ** 0.5 * q25 ** 0.5`` with q25 the character-weighted lower quartile of the document's line perplexities,
  ``curate.lm.LineScores.line_aware_perplexity``), and what was tried on the way: the line quantile alone (q25,
  q50), and CCNet's perplexity combined with the fastText quality classifier (``curate.classifier``, positive: the
  reference text, negative: the C4 demo and rule-made junk made from WikiText-2 paragraphs: ``log10 ppl - w *
  logit(p)``);
* ROC AUC of ``-score`` (``curate.classifier.roc_auc``; good = positive) of the good pages against each junk kind,
  against the four real kinds together (``real``) and against all junk; a paired bootstrap (1,000 resamples of
  both classes) of ``lines - document`` on the auto model;
* speed: documents/s of both scores over all documents in one call (best of ``--repeat``, when the machine is
  otherwise idle, ``benchmarks/contention.py``);
* end to end: ``curate run`` of a recipe with only the ``perplexity`` step (``score: lines``) on the same
  documents, checking the step's ``ppl`` against the in-process score.

Prints the tables and appends them to ``benchmarks/RESULTS.md``. Generated files: ``benchmarks/.work/perplexity/``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/perplexity.py               # ~2 min the first time (3 models), then ~40 s
    python benchmarks/perplexity.py --sweep       # + 14 more models for the vocabulary/order rule (~4 min more)
    python benchmarks/perplexity.py --no-wait     # smoke run: time at once even if other benchmarks run; not recorded
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import timed_when_quiet  # noqa: E402
from english_text import CODE_HELD_OUT, WIKI, c4_docs, dragnet_docs, held_out, python_files  # noqa: E402
from english_text import wikitext_paragraphs  # noqa: E402
import junk  # noqa: E402
from report import (ROOT, WORK, add_no_record_no_wait, append_results, command_line, git_commit,  # noqa: E402
                    header, markdown)

OUT = WORK / "perplexity"
TARGET_AUC = 0.93
REFERENCE = [WIKI / "wiki_demo.txt", WIKI / "wikitext2_valid.txt", WIKI / "wikitext2_test.txt"]
REAL_KINDS = ("real_boilerplate", "tables", "word_salad", "keyword_spam")
RULE_KINDS = ("boilerplate", "code_as_prose", "machine_translated")
KINDS = REAL_KINDS + RULE_KINDS
LINE_QUANTILE, LINE_WEIGHT = 0.25, 0.5


@dataclass
class Doc:
    id: str
    kind: str
    """"good" or a junk kind"""
    text: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[Path, ...]
    order: int | None
    vocab_size: int | None
    prune: tuple[int, ...] | None

    @property
    def dir(self) -> Path:
        text = "ref" if len(self.inputs) == len(REFERENCE) else "demo"
        prune = "auto" if self.prune is None else "-".join(map(str, self.prune)) or "none"
        return OUT / "models" / f"{text}-o{self.order or 'auto'}-v{self.vocab_size or 'auto'}-p{prune}"


MODELS = [ModelSpec("old default (5-gram, 16k)", tuple(REFERENCE), 5, 16_000, ()),
          ModelSpec("CCNet plain (5-gram, 8k)", tuple(REFERENCE), 5, 8_000, ()),
          ModelSpec("auto (new default)", tuple(REFERENCE), None, None, None)]
SWEEP = ([ModelSpec(f"3.4M chars, {o}-gram, {v // 1000}k", tuple(REFERENCE), o, v, ())
          for o in (3, 5) for v in (2_000, 4_000, 8_000, 16_000, 32_000)]
         + [ModelSpec(f"1.0M chars, 3-gram, {v // 1000}k", (REFERENCE[0],), 3, v, ()) for v in (4_000, 8_000, 16_000)]
         + [ModelSpec("3.4M chars, 3-gram, 15k, prune 0 0 1", tuple(REFERENCE), 3, 15_000, (0, 0, 1))])


# ---------------------------------------------------------------------------------------------------- data

def _per_line(doc: str, make: Callable[[str, random.Random], str], rng: random.Random) -> str:
    return "\n".join(make(line, rng) if line.strip() else line for line in doc.split("\n"))


def evaluation_docs(n_good: int, per_kind: int, seed: int) -> list[Doc]:
    """Good dragnet pages and junk of every kind (module doc), deterministic for a seed."""
    pages = [t for _, t in dragnet_docs() if len(t.split()) >= 100]
    order = random.Random(seed).sample(range(len(pages)), len(pages))
    good, rest = [pages[i] for i in order[:n_good]], [pages[i] for i in order[n_good:]]
    docs = [Doc(f"good-{i:04d}", "good", t) for i, t in enumerate(good)]
    docs += [Doc(f"real_boilerplate-{i:04d}", "real_boilerplate", t)
             for i, (_, t) in enumerate(junk.real_page_boilerplate())]
    docs += [Doc(f"tables-{i:04d}", "tables", t) for i, (_, t) in enumerate(junk.wiki_tables())]
    rng = random.Random(seed + 2)
    src = rng.sample(rest, 3 * per_kind)
    docs += [Doc(f"word_salad-{i:04d}", "word_salad", _per_line(d, junk.shuffled, rng))
             for i, d in enumerate(src[:per_kind])]
    for i, d in enumerate(src[per_kind:2 * per_kind]):
        paras = [p for p in d.split("\n") if len(p.split()) >= 20] or [d]
        text = "\n".join(junk.keyword_spam(p, rng) for p in paras[:rng.randint(2, 8)])
        docs.append(Doc(f"keyword_spam-{i:04d}", "keyword_spam", text))
    docs += [Doc(f"machine_translated-{i:04d}", "machine_translated", _per_line(d, junk.machine_translated, rng))
             for i, d in enumerate(src[2 * per_kind:])]
    paras = [p for d in rest for p in d.split("\n") if len(p.split()) >= 50]
    code = [s for name, s in python_files() if held_out(name, CODE_HELD_OUT)]
    for kind, text in junk.make_junk(paras, code, per_kind, seed + 1, kinds=("boilerplate", "code_as_prose")):
        docs.append(Doc(f"{kind}-{sum(d.kind == kind for d in docs):04d}", kind, text))
    return docs


# ---------------------------------------------------------------------------------------------------- models

def train_model(spec: ModelSpec) -> dict[str, Any]:
    """Train (or reuse) the model of ``spec``; returns its card."""
    from curate import lm
    from mixlab import logs

    card_file = spec.dir / "model.json"
    if card_file.exists():
        return json.loads(card_file.read_text())
    logs.setup(quiet=True)
    return lm.train(list(spec.inputs), spec.dir, "en", order=spec.order, vocab_size=spec.vocab_size,
                    prune=None if spec.prune is None else list(spec.prune))


def quality_classifier(seed: int) -> Any:
    """fastText classifier: the reference text (paragraphs of >= 30 words) vs the C4 demo and rule-made junk made
    from WikiText-2 validation paragraphs and the non-held-out code files (trained once, reused)."""
    import fasttext

    from curate import classifier
    from mixlab import logs

    directory = OUT / "classifier"
    if not (directory / "model" / "model.bin").exists():
        logs.setup(quiet=True)
        directory.mkdir(parents=True, exist_ok=True)
        pos = [x for f in REFERENCE for x in f.read_text(encoding="utf-8").splitlines() if len(x.split()) >= 30]
        code = [s for name, s in python_files() if not held_out(name, CODE_HELD_OUT)]
        neg = [t for _, t in c4_docs()] + [t for _, t in junk.make_junk(wikitext_paragraphs("valid"), code, 150,
                                                                        seed + 7)]
        for name, texts in (("positive", pos), ("negative", neg)):
            (directory / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts),
                                                     encoding="utf-8")
        classifier.train([directory / "positive.jsonl"], [directory / "negative.jsonl"], directory / "model")
    return fasttext.load_model(str(directory / "model" / "model.bin"))


# ---------------------------------------------------------------------------------------------------- metrics

def auc_by_kind(docs: list[Doc], score: np.ndarray) -> dict[str, float]:
    """ROC AUC of ``-score`` (good = positive) against each kind, the real kinds together and all junk."""
    from curate.classifier import roc_auc

    kinds = np.array([d.kind for d in docs])
    good = kinds == "good"
    groups = {k: kinds == k for k in KINDS} | {"real": np.isin(kinds, REAL_KINDS), "all junk": ~good}
    return {k: roc_auc(-score[good | sel], good[good | sel]) for k, sel in groups.items()}


def auc_table(rows: list[tuple[str, str, dict[str, float]]], docs: list[Doc]) -> str:
    counts = {k: sum(d.kind == k for d in docs) for k in KINDS}
    head = ["model", "score", *(f"{k} ({counts[k]})" for k in KINDS), "real", "all junk"]
    body = [[m, s, *(f"**{v:.3f}**" if k in ("real", "all junk") else f"{v:.3f}" for k, v in a.items())]
            for m, s, a in rows]
    return markdown(head, body, "llr")


def paired_bootstrap(docs: list[Doc], a: np.ndarray, b: np.ndarray, seed: int, n: int = 1000
                     ) -> list[list[str]]:
    """Per group, AUC(b) - AUC(a) with its 5th-95th percentile over ``n`` resamples of good and junk documents."""
    from curate.classifier import roc_auc

    kinds = np.array([d.kind for d in docs])
    good = np.flatnonzero(kinds == "good")
    rng = np.random.default_rng(seed)
    rows = []
    for name, sel in [*((k, kinds == k) for k in REAL_KINDS), ("real", np.isin(kinds, REAL_KINDS)),
                      ("all junk", kinds != "good")]:
        bad = np.flatnonzero(sel)
        diffs = []
        for _ in range(n):
            i = np.r_[rng.choice(good, len(good)), rng.choice(bad, len(bad))]
            y = kinds[i] == "good"
            diffs.append(roc_auc(-b[i], y) - roc_auc(-a[i], y))
        i = np.r_[good, bad]
        d = roc_auc(-b[i], kinds[i] == "good") - roc_auc(-a[i], kinds[i] == "good")
        rows.append([name, f"{d:+.3f}", f"{np.percentile(diffs, 5):+.3f} .. {np.percentile(diffs, 95):+.3f}"])
    return rows


# ---------------------------------------------------------------------------------------------------- pipeline

def write_recipe(docs: list[Doc], model_dir: Path, directory: Path) -> Path:
    """A jsonl of the documents (with ids) and a recipe running only the perplexity step (score: lines)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "docs.jsonl"
    data.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs), encoding="utf-8")
    step = {"lang": "en", "models": {"en": str(model_dir)}, "score": "lines", "line_quantile": LINE_QUANTILE,
            "line_weight": LINE_WEIGHT}
    recipe = {"name": "bench-perplexity", "seed": 0,
              "sources": [{"path": data.name, "format": "jsonl", "domain": "web", "id_field": "id"}],
              "steps": [{"perplexity": step}], "output": {"dir": "out", "keep_removed": "all"},
              "executor": {"workers": 1}}
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def run_pipeline(recipe: Path) -> tuple[list[dict[str, Any]], float]:
    """``curate run RECIPE --fresh``; returns the kept rows and wall seconds."""
    import pyarrow.parquet as pq

    curate = Path(sys.executable).parent / "curate"
    t0 = time.perf_counter()
    subprocess.run([str(curate), "--quiet", "run", str(recipe), "--fresh"], check=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    for f in sorted((recipe.parent / "out" / "data").rglob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "ppl", "ppl_bucket"]).to_pylist()
    return rows, seconds


def step_agrees(docs: list[Doc], score: np.ndarray, rows: list[dict[str, Any]]) -> float:
    """Largest relative difference between the step's ppl and the in-process score of the same document."""
    by_id = {d.id: p for d, p in zip(docs, score)}
    return max(abs(r["ppl"] - by_id[r["id"]]) / by_id[r["id"]] for r in rows if r["ppl"] is not None)


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--good", type=int, default=300, help="good dragnet pages (default 300)")
    ap.add_argument("--per-kind", type=int, default=60, help="made junk documents per kind (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sweep", action="store_true", help="also the vocabulary x order grids (14 more models)")
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds; the best is reported (default 3)")
    add_no_record_no_wait(ap)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    commit = git_commit()
    import pyarrow as pa

    from curate.classifier import prepare, score as classifier_score
    from curate.lm import LanguageModel

    docs = evaluation_docs(a.good, a.per_kind, a.seed)
    texts = [d.text for d in docs]
    rows: list[tuple[str, str, dict[str, float]]] = []
    scores: dict[tuple[str, str], np.ndarray] = {}
    cards = {}
    for spec in MODELS:
        cards[spec.name] = train_model(spec)
        ls = LanguageModel(spec.dir).line_scores(texts)
        variants = {"document": ls.document_perplexity(),
                    f"lines (q{LINE_QUANTILE:g}, w{LINE_WEIGHT:g})": ls.line_aware_perplexity(LINE_QUANTILE,
                                                                                              LINE_WEIGHT),
                    "line quantile 0.25 alone": ls.line_quantile(0.25),
                    "line quantile 0.5 alone": ls.line_quantile(0.5)}
        for name, s in variants.items():
            scores[spec.name, name] = s
            rows.append((spec.name, name, auc_by_kind(docs, s)))
    auto = MODELS[-1]
    p = classifier_score(quality_classifier(a.seed), prepare(pa.array(texts), 10_000))
    logit = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))
    log_ppl = np.log10(scores[auto.name, "document"])
    rows.append((auto.name, "quality classifier alone", auc_by_kind(docs, -p)))
    for w in (0.05, 0.2):
        rows.append((auto.name, f"document - {w} logit(quality)", auc_by_kind(docs, log_ppl - w * logit)))
    good_p = float(np.median(p[[d.kind == "good" for d in docs]]))
    main_table = auc_table(rows, docs)
    lines_name = f"lines (q{LINE_QUANTILE:g}, w{LINE_WEIGHT:g})"
    boot = markdown(["junk", "AUC(lines) - AUC(document)", "90% interval"],
                    paired_bootstrap(docs, scores[auto.name, "document"], scores[auto.name, lines_name], a.seed))
    sweep_table = ""
    if a.sweep:
        sweep_rows = []
        for spec in SWEEP:
            card = train_model(spec)
            ls = LanguageModel(spec.dir).line_scores(texts)
            auc = auc_by_kind(docs, ls.document_perplexity())
            sweep_rows.append([spec.name, f"{card['vocab_size']:,}", f"{card['data']['tokens']:,}",
                               f"{card['size_bytes']['lm.binary'] / 1e6:.1f}",
                               *(f"{auc[k]:.3f}" for k in (*REAL_KINDS, "real", "all junk"))])
        sweep_table = markdown(["model (document score)", "pieces", "tokens", "lm.binary MB", *REAL_KINDS, "real",
                                "all junk"], sweep_rows)
    model = LanguageModel(auto.dir)
    best, load = timed_when_quiet({"document": lambda: model.perplexity(texts),
                                   "lines": lambda: model.line_scores(texts).line_aware_perplexity(
                                       LINE_QUANTILE, LINE_WEIGHT)}, a.repeat, wait=not a.no_wait)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    kept, run_seconds = run_pipeline(write_recipe(docs, auto.dir, OUT / "run"))
    card_lines = [f"- {name}: {c['order']}-gram, {c['vocab_size']:,} pieces, prune {c['prune'] or 'none'}, "
                  f"{c['data']['tokens']:,} training tokens, lm.binary {c['size_bytes']['lm.binary'] / 1e6:.1f} MB"
                  for name, c in cards.items()]
    n_kind = {k: sum(d.kind == k for d in docs) for k in ("good", *KINDS)}
    data_line = (f"Documents: {n_kind['good']} dragnet pages (good) vs " + ", ".join(f"{n_kind[k]} {k}" for k in KINDS)
                 + f" (seed {a.seed}); reference text {sum(f.stat().st_size for f in REFERENCE) / 1e6:.1f} MB of "
                 "shared Wikipedia text (wiki_demo + WikiText-2 valid + test).")
    speed = (f"Speed on these {len(docs)} documents ({mb:.2f} MB), auto model, one call: document "
             f"{len(docs) / best['document']:,.0f} docs/s, lines {len(docs) / best['lines']:,.0f} docs/s (best of "
             f"{a.repeat}, one core; other processes kept {load:.2f} cores busy meanwhile).")
    pipeline = (f"`curate run` (perplexity step only, score: lines, 1 worker) on the same documents: "
                f"{run_seconds:.1f} s wall including start-up; the step's ppl equals the in-process score to "
                f"{step_agrees(docs, scores[auto.name, lines_name], kept):.1e} (largest relative difference).")
    classifier_line = (f"The quality classifier (reference text vs C4 + rule-made junk) gives the good news pages a "
                       f"median P(reference) of {good_p:.3f}: news is not Wikipedia, so it pulls them down.")
    parts = [data_line, "\n".join(card_lines), main_table, "Paired bootstrap, auto model, 1,000 resamples:", boot,
             classifier_line]
    if sweep_table:
        parts += ["Vocabulary and order (document score):", sweep_table]
    parts += [speed, pipeline]
    print("\n\n".join(parts))
    if not (a.no_record or a.no_wait):
        entry = header("perplexity: news vs real and rule-made junk, per kind", command_line(), commit)
        entry += ["", f"Target: ROC AUC >= {TARGET_AUC} on real-page junk.", "", "\n\n".join(parts)]
        append_results("\n".join(entry))
        print("\nappended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
