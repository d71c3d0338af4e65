"""How well the fastText quality classifier (`curate classifier train`) separates reference text from web text and
junk, measured on held-out documents from files it was not trained on.

What it measures:

* training: ``curate.classifier.train`` (what ``curate classifier train`` runs, default settings: 10 epochs, word
  bigrams, its own 10% held-out split) with
  - positive: WikiText-2 *validation* paragraphs and Project Gutenberg Alice + Frankenstein in chunks of ~250
    words (detokenized/unwrapped as ``benchmarks/english_text.py`` describes);
  - negative: the C4 demo documents and the dragnet web pages outside the held-out split (a stable hash of the
    document's name, ``--held-out`` 20%), and ``--train-junk`` (150) junk documents per kind of
    ``benchmarks/junk.py`` made from WikiText-2 validation paragraphs and TheAlgorithms files outside the
    held-out split;
* evaluation, on documents of at least 50 words from sources the model never saw:
  - positive: WikiText-2 *test* paragraphs and chunks of a held-out book (Dracula);
  - negative: the held-out C4 and dragnet documents, and ``--per-kind`` (60) fresh junk documents per kind made
    from WikiText-2 test paragraphs and held-out code files (another seed);
* precision, recall, F1, ROC AUC and accuracy at threshold 0.5 (``curate.classifier.evaluate``; positive =
  reference quality), and per kind: n, median score, share scored >= 0.5 (recall for a positive kind, the
  false-positive rate for a negative one) and the ROC AUC of that kind against all documents of the other class.

Prints the tables and appends them to ``benchmarks/RESULTS.md``. Generated files:
``benchmarks/.work/quality_classifier/`` (training jsonl files, the model).

Run (from the project root, with the project's virtualenv):

    python benchmarks/quality_classifier.py               # ~30 s
    python benchmarks/quality_classifier.py --no-record   # print only
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from english_text import (CODE_HELD_OUT, book_chunks, c4_docs, dragnet_docs, held_out,  # noqa: E402
                          min_words, python_files, wikitext_paragraphs)
from junk import make_junk  # noqa: E402
from report import ROOT, WORK, append_results, command_line, git_commit, header, markdown  # noqa: E402

OUT = WORK / "quality_classifier"
TRAIN_BOOKS = ("alice", "frankenstein")
HELD_OUT_BOOK = "dracula"
EVAL_MIN_WORDS = 50
THRESHOLD = 0.5


@dataclass
class EvalDoc:
    kind: str
    positive: bool
    text: str


# ---------------------------------------------------------------------------------------------------- data

def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def training_files(directory: Path, web_held_out: float, junk_per_kind: int, seed: int
                   ) -> tuple[list[Path], list[Path], dict[str, int]]:
    """Positive and negative jsonl files for training and the number of documents in each."""
    code = [src for name, src in python_files() if not held_out(name, CODE_HELD_OUT)]
    valid = wikitext_paragraphs("valid", min_words=20)
    sets = {
        "pos_wiki": valid,
        "pos_books": [c for b in TRAIN_BOOKS for c in book_chunks(b)],
        "neg_c4": [t for n, t in c4_docs() if not held_out(n, web_held_out)],
        "neg_dragnet": [t for n, t in dragnet_docs() if not held_out(n, web_held_out)],
        "neg_junk": [t for _, t in make_junk(valid, code, junk_per_kind, seed)],
    }
    paths = {k: write_jsonl(directory / f"{k}.jsonl", v) for k, v in sets.items()}
    pos = [paths["pos_wiki"], paths["pos_books"]]
    neg = [paths["neg_c4"], paths["neg_dragnet"], paths["neg_junk"]]
    return pos, neg, {k: len(v) for k, v in sets.items()}


def evaluation_docs(web_held_out: float, per_kind: int, seed: int) -> list[EvalDoc]:
    """Held-out documents of every kind, at least EVAL_MIN_WORDS words each."""
    test = wikitext_paragraphs("test", min_words=EVAL_MIN_WORDS)
    code = [src for name, src in python_files() if held_out(name, CODE_HELD_OUT)]
    docs = [EvalDoc("wiki (WikiText-2 test)", True, t) for t in test]
    docs += [EvalDoc(f"book ({HELD_OUT_BOOK})", True, t) for t in book_chunks(HELD_OUT_BOOK, min_words=EVAL_MIN_WORDS)]
    docs += [EvalDoc("web: C4", False, t) for t in
             min_words([t for n, t in c4_docs() if held_out(n, web_held_out)], EVAL_MIN_WORDS)]
    docs += [EvalDoc("web: dragnet", False, t) for t in
             min_words([t for n, t in dragnet_docs() if held_out(n, web_held_out)], EVAL_MIN_WORDS)]
    rng = random.Random(seed)
    junk_source = rng.sample(test, len(test))
    docs += [EvalDoc(f"junk: {k}", False, t) for k, t in make_junk(junk_source, code, per_kind, seed)]
    return docs


# ---------------------------------------------------------------------------------------------------- scoring

def score_docs(model_dir: Path, docs: list[EvalDoc], max_chars: int) -> np.ndarray:
    """P(reference quality) per document, as the quality_classifier step computes it."""
    import pyarrow as pa

    from curate.classifier import prepare, score
    from curate.models import load_fasttext

    model = load_fasttext(model_dir / "model.bin")
    return score(model, prepare(pa.array([d.text for d in docs], pa.string()), max_chars))


def overall_table(metrics: dict[str, float], n_pos: int, n_neg: int) -> str:
    return markdown(["held-out documents", "positive", "negative", "precision", "recall", "F1", "ROC AUC",
                     "accuracy"],
                    [[f"{n_pos + n_neg:,}", f"{n_pos:,}", f"{n_neg:,}", f"{metrics['precision']:.4f}",
                      f"{metrics['recall']:.4f}", f"{metrics['f1']:.4f}", f"{metrics['roc_auc']:.4f}",
                      f"{metrics['accuracy']:.4f}"]])


def kind_table(docs: list[EvalDoc], scores: np.ndarray) -> str:
    from curate.classifier import roc_auc

    kinds = list(dict.fromkeys(d.kind for d in docs))
    label = np.array([d.positive for d in docs])
    kind_arr = np.array([d.kind for d in docs])
    rows = []
    for k in kinds:
        sel = kind_arr == k
        positive = bool(label[sel][0])
        other = ~label if positive else label
        mask = sel | other
        share = float((scores[sel] >= THRESHOLD).mean())
        rows.append([k, "positive" if positive else "negative", str(int(sel.sum())), f"{np.median(scores[sel]):.3f}",
                     f"{share:.3f}" + (" (recall)" if positive else " (false positives)"),
                     f"{(share if positive else 1 - share):.3f}", f"{roc_auc(scores[mask], label[mask]):.4f}"])
    return markdown(["kind", "class", "n", "median score", f"share scored >= {THRESHOLD}", "accuracy",
                     "ROC AUC vs the other class"], rows, "llrrrrr")


def cli_command(pos: list[Path], neg: list[Path], model_dir: Path, seed: int) -> str:
    rel = [str(p.relative_to(ROOT)) for p in pos], [str(p.relative_to(ROOT)) for p in neg]
    return shlex.join([".venv/bin/curate", "classifier", "train", "--positive", *rel[0], "--negative", *rel[1],
                       "--out", str(model_dir.relative_to(ROOT)), "--seed", str(seed)])


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held-out", type=float, default=0.2, help="share of C4/dragnet documents held out (0.2)")
    ap.add_argument("--train-junk", type=int, default=150, help="training junk documents per kind (150)")
    ap.add_argument("--per-kind", type=int, default=60, help="held-out junk documents per kind (60)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    commit = git_commit()
    from curate import classifier
    from mixlab import logs

    logs.setup(quiet=True)
    pos, neg, counts = training_files(OUT / "train", a.held_out, a.train_junk, a.seed)
    model_dir = OUT / "model"
    card: dict[str, Any] = classifier.train(pos, neg, model_dir, seed=a.seed)
    docs = evaluation_docs(a.held_out, a.per_kind, a.seed + 100)
    scores = score_docs(model_dir, docs, card["params"]["max_chars"])
    truth = np.array([d.positive for d in docs])
    metrics = classifier.evaluate(scores, truth, THRESHOLD)
    inner = card["held_out_metrics"]
    training = (f"Training ({card['seconds']:.0f} s): `{cli_command(pos, neg, model_dir, a.seed)}`; documents: "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                + f" ({card['documents']['positive']:,} positive, {card['documents']['negative']:,} negative read). "
                f"Its own random {card['documents']['held_out']:,}-document split (same sources as training): "
                f"precision {inner['precision']:.3f}, recall {inner['recall']:.3f}, F1 {inner['f1']:.3f}, "
                f"ROC AUC {inner['roc_auc']:.3f}.")
    overall = overall_table(metrics, int(truth.sum()), int((~truth).sum()))
    kinds = kind_table(docs, scores)
    print(training, "\n")
    print(f"Held-out files, threshold {THRESHOLD}:\n")
    print(overall, "\n")
    print(kinds)
    if not a.no_record:
        entry = header("quality_classifier: fastText quality classifier on held-out files", command_line(), commit)
        entry += [f"- evaluation documents >= {EVAL_MIN_WORDS} words from files not used in training; junk from "
                  f"`benchmarks/junk.py` (seed {a.seed} for training, {a.seed + 100} held out)", "",
                  training, "", f"Held-out files, threshold {THRESHOLD}:", "", overall, "", kinds]
        append_results("\n".join(entry))
        print("\nappended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
