"""How well CCNet-style KenLM perplexity separates held-out wiki text from rule-made junk, and how fast it scores.

What it measures:

* model: ``curate.lm.train`` (what ``curate lm train`` runs) on WikiText-2 *validation* paragraphs plus two Project
  Gutenberg English books (Alice, Frankenstein), detokenized/unwrapped as ``benchmarks/english_text.py`` describes;
  order ``--order`` (5), ``--vocab-size`` (8000) SentencePiece pieces;
* documents: ``--good`` (300) held-out WikiText-2 *test* paragraphs (>= 50 words, seeded sample) and
  ``--per-kind`` (60) junk documents of each of the five kinds of ``benchmarks/junk.py`` (boilerplate, keyword spam,
  shuffled words, code as prose, machine-translated-looking), made from *other* test paragraphs and from
  TheAlgorithms' Python files, so nothing scored was seen in training;
* ROC AUC of ``score = -ppl`` (``curate.classifier.roc_auc``; good = positive) over all documents and per junk kind
  (good vs that kind), against the target of 0.95; median perplexity per kind;
* speed: documents/s (and MB/s) of ``LanguageModel.perplexity`` over all documents in one call, best of
  ``--repeat`` (3), after waiting until no other benchmark (pipeline/minhash/dedup) runs and the machine is
  otherwise idle (see ``benchmarks/contention.py``: ``timed_when_quiet``);
* end to end: ``curate run`` of a recipe with only ``perplexity: {lang: en, models: {en: MODEL}}`` on the same
  documents (a jsonl with ids; 1 worker), and how the head/middle/tail buckets (CCNet's 30th/60th percentile
  cutoffs of the corpus itself) split good and junk; the step's ``ppl`` is checked against the in-process scores.

Prints the tables and appends them to ``benchmarks/RESULTS.md``. Generated files: ``benchmarks/.work/perplexity/``.

Run (from the project root, with the project's virtualenv):

    python benchmarks/perplexity.py               # ~1 min (the model is trained once, then reused)
    python benchmarks/perplexity.py --retrain     # train the model again
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
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contention import timed_when_quiet  # noqa: E402
from english_text import CODE_HELD_OUT, book_chunks, held_out, python_files, wikitext_paragraphs  # noqa: E402
from junk import KINDS, make_junk  # noqa: E402
from report import (ROOT, WORK, add_no_record_no_wait, append_results, command_line, git_commit,  # noqa: E402
                    header, markdown)

OUT = WORK / "perplexity"
TARGET_AUC = 0.95
TRAIN_BOOKS = ("alice", "frankenstein")


@dataclass
class Doc:
    id: str
    kind: str
    """"good" or a junk kind"""
    text: str


# ---------------------------------------------------------------------------------------------------- data

def write_training_text(directory: Path) -> list[Path]:
    """WikiText-2 validation paragraphs and the training books, one paragraph per line, as text files."""
    directory.mkdir(parents=True, exist_ok=True)
    wiki = directory / "wikitext2_valid.txt"
    wiki.write_text("\n".join(wikitext_paragraphs("valid", min_words=1, max_unk=1.0)) + "\n", encoding="utf-8")
    books = directory / "gutenberg_en.txt"
    books.write_text("\n".join(c for b in TRAIN_BOOKS for c in book_chunks(b)) + "\n", encoding="utf-8")
    return [wiki, books]


def evaluation_docs(n_good: int, per_kind: int, seed: int) -> list[Doc]:
    """Held-out good paragraphs and junk made from the other held-out paragraphs and held-out code files."""
    paras = wikitext_paragraphs("test")
    order = random.Random(seed).sample(range(len(paras)), len(paras))
    good = [paras[i] for i in order[:n_good]]
    rest = [paras[i] for i in order[n_good:]]
    code = [src for name, src in python_files() if held_out(name, CODE_HELD_OUT)]
    docs = [Doc(f"good-{i:04d}", "good", t) for i, t in enumerate(good)]
    counts: dict[str, int] = {}
    for kind, text in make_junk(rest, code, per_kind, seed + 1):
        counts[kind] = counts.get(kind, 0) + 1
        docs.append(Doc(f"{kind}-{counts[kind] - 1:04d}", kind, text))
    return docs


# ---------------------------------------------------------------------------------------------------- model

def train_model(model_dir: Path, order: int, vocab_size: int, retrain: bool) -> dict[str, Any]:
    """Train (or reuse) the English model; returns its card."""
    from curate import lm
    from mixlab import logs

    card_file = model_dir / "model.json"
    if card_file.exists() and not retrain:
        card = json.loads(card_file.read_text())
        if card["order"] == order and card["requested_vocab_size"] == vocab_size:
            return card
    logs.setup(quiet=True)
    inputs = write_training_text(OUT / "train")
    return lm.train(inputs, model_dir, "en", order=order, vocab_size=vocab_size)


# ---------------------------------------------------------------------------------------------------- metrics

def auc_rows(docs: list[Doc], ppl: np.ndarray) -> list[list[str]]:
    """ROC AUC of -ppl, all junk and per junk kind, with median perplexity and counts."""
    from curate.classifier import roc_auc

    kinds = np.array([d.kind for d in docs])
    good = kinds == "good"
    rows = [["good (held-out wiki)", f"{good.sum()}", f"{np.median(ppl[good]):,.0f}", "-", "-"]]
    for kind in [*KINDS, "all junk"]:
        sel = ~good if kind == "all junk" else kinds == kind
        mask = good | sel
        auc = roc_auc(-ppl[mask], good[mask])
        rows.append([kind, f"{sel.sum()}", f"{np.median(ppl[sel]):,.0f}", f"{auc:.4f}",
                     "yes" if auc >= TARGET_AUC else "**no**"])
    return rows


def auc_table(rows: list[list[str]]) -> str:
    return markdown(["documents", "n", "median ppl", "ROC AUC (good vs these, score = -ppl)",
                     f">= {TARGET_AUC}"], rows)


def time_scoring(model: Any, texts: list[str], repeat: int, wait: bool) -> tuple[float, float]:
    """Best wall seconds of one ``perplexity`` call on all texts, and the other load (cores) meanwhile."""
    best, load = timed_when_quiet({"ppl": lambda: model.perplexity(texts)}, repeat, wait=wait)
    return best["ppl"], load


# ---------------------------------------------------------------------------------------------------- pipeline

def write_recipe(docs: list[Doc], model_dir: Path, directory: Path) -> Path:
    """A jsonl of the documents (with ids) and a recipe running only the perplexity step on them."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "docs.jsonl"
    data.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs), encoding="utf-8")
    recipe = {"name": "bench-perplexity", "seed": 0,
              "sources": [{"path": data.name, "format": "jsonl", "domain": "web", "id_field": "id"}],
              "steps": [{"perplexity": {"lang": "en", "models": {"en": str(model_dir)}}}],
              "output": {"dir": "out", "keep_removed": "all"}, "executor": {"workers": 1}}
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def run_pipeline(recipe: Path) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    """``curate run RECIPE --fresh``; returns the kept rows, wall seconds and the step's stats."""
    import pyarrow.parquet as pq

    curate = Path(sys.executable).parent / "curate"
    t0 = time.perf_counter()
    subprocess.run([str(curate), "--quiet", "run", str(recipe), "--fresh"], check=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    out = recipe.parent / "out"
    rows: list[dict[str, Any]] = []
    for f in sorted((out / "data").rglob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "ppl", "ppl_bucket"]).to_pylist()
    stats = json.loads((out / "stats" / "perplexity.json").read_text())
    return rows, seconds, stats


def bucket_table(docs: list[Doc], rows: list[dict[str, Any]]) -> str:
    """Documents of each kind per bucket (count and share of the kind)."""
    kind_of = {d.id: d.kind for d in docs}
    kinds = ["good", *KINDS]
    counts = {k: {b: 0 for b in ("head", "middle", "tail", None)} for k in kinds}
    for r in rows:
        counts[kind_of[r["id"]]][r["ppl_bucket"]] += 1
    table = []
    for k in kinds + ["all junk"]:
        c = ({b: sum(counts[j][b] for j in KINDS) for b in ("head", "middle", "tail", None)} if k == "all junk"
             else counts[k])
        n = sum(c.values())
        table.append([k, str(n)] + [f"{c[b]} ({c[b] / n:.0%})" for b in ("head", "middle", "tail")]
                     + ([str(c[None])] if any(counts[j][None] for j in kinds) else []))
    head = ["documents", "n", "head", "middle", "tail"]
    if any(counts[j][None] for j in kinds):
        head.append("no bucket")
    return markdown(head, table)


def step_agrees(docs: list[Doc], ppl: np.ndarray, rows: list[dict[str, Any]]) -> float:
    """Largest relative difference between the step's ppl and the in-process score of the same document."""
    by_id = {d.id: p for d, p in zip(docs, ppl)}
    return max(abs(r["ppl"] - by_id[r["id"]]) / by_id[r["id"]] for r in rows if r["ppl"] is not None)


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--good", type=int, default=300, help="held-out wiki paragraphs (default 300)")
    ap.add_argument("--per-kind", type=int, default=60, help="junk documents per kind (default 60)")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds; the best is reported (default 3)")
    ap.add_argument("--retrain", action="store_true", help="train the model even if one with these settings exists")
    add_no_record_no_wait(ap)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    commit = git_commit()
    from curate.lm import LanguageModel

    model_dir = OUT / f"model-o{a.order}-v{a.vocab_size}"
    card = train_model(model_dir, a.order, a.vocab_size, a.retrain)
    docs = evaluation_docs(a.good, a.per_kind, a.seed)
    texts = [d.text for d in docs]
    model = LanguageModel(model_dir)
    ppl = model.perplexity(texts)
    rows = auc_rows(docs, ppl)
    seconds, load = time_scoring(model, texts, a.repeat, wait=not a.no_wait)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    kept, run_seconds, stats = run_pipeline(write_recipe(docs, model_dir, OUT / "run"))
    cut = stats["combine"]["cutoffs"]["en"]
    d = card["data"]
    model_line = (f"Model: `curate.lm.train` {card['order']}-gram, {card['vocab_size']} pieces, trained on "
                  f"{d['lines']:,} lines / {d['tokens']:,} tokens (WikiText-2 valid paragraphs + Gutenberg "
                  f"{', '.join(TRAIN_BOOKS)}), lm.binary {card['size_bytes']['lm.binary'] / 1e6:.1f} MB, "
                  f"trained in {card['seconds']:.0f} s; in `{model_dir.relative_to(ROOT)}`.")
    speed = (f"Speed of `LanguageModel.perplexity` on these {len(docs)} documents ({mb:.2f} MB) in one call: "
             f"{len(docs) / seconds:,.0f} docs/s, {mb / seconds:.2f} MB/s (best of {a.repeat}, one core; other "
             f"processes kept {load:.2f} cores busy meanwhile).")
    pipeline = (f"`curate run` (perplexity step only, lang: en, 1 worker) on the same {len(docs)} documents: "
                f"{run_seconds:.1f} s wall including start-up; cutoffs from the corpus's 30th/60th percentiles: "
                f"head <= {cut['head_max']:,.1f}, middle <= {cut['middle_max']:,.1f}; the step's ppl equals the "
                f"in-process score to {step_agrees(docs, ppl, kept):.1e} (largest relative difference).")
    auc = auc_table(rows)
    buckets = bucket_table(docs, kept)
    print(model_line, "\n")
    print(auc, "\n")
    print(speed, "\n")
    print(pipeline, "\n")
    print(buckets)
    if not (a.no_record or a.no_wait):
        entry = header("perplexity: KenLM ppl, held-out wiki vs rule-made junk", command_line(), commit)
        entry += [f"- {a.good} held-out WikiText-2 test paragraphs vs {a.per_kind} junk documents per kind "
                  f"(`benchmarks/junk.py`, seed {a.seed}); target ROC AUC >= {TARGET_AUC}", "",
                  model_line, "", auc, "", speed, "", pipeline, "", buckets]
        append_results("\n".join(entry))
        print("\nappended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
