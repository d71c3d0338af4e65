"""A fastText quality classifier, as LLaMA and DCLM build one: a linear model separating reference-quality text
(e.g. Wikipedia, books) from random web text. `curate classifier train` trains and evaluates it on held-out
documents; the `quality_classifier` step scores documents with it."""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.lm import check_inputs, check_out_dir
from curate.readers import input_texts
from mixlab.errors import ConfigError, RunError
from mixlab.logs import log

POSITIVE, NEGATIVE = "__label__hq", "__label__lq"


def prepare(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> list[str]:
    """What the classifier sees: the first ``max_chars`` characters, lowercased, on one line."""
    t = pc.utf8_slice_codeunits(texts, 0, max_chars)
    t = pc.utf8_lower(t)
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(t, r"\s+", " ")).to_pylist()


def _docs(paths: list[Path], max_docs: int, max_chars: int) -> list[str]:
    out: list[str] = []
    for batch in input_texts(paths):
        out += [t for t in prepare(batch, max_chars) if t]
        if len(out) >= max_docs:
            break
    return out[:max_docs]


def train(positive: list[Path], negative: list[Path], out: Path, held_out: float = 0.1, seed: int = 0,
          epochs: int = 10, word_ngrams: int = 2, max_docs: int = 200_000, max_chars: int = 10_000,
          threshold: float = 0.5) -> dict[str, Any]:
    """Train a fastText classifier of ``positive`` vs ``negative`` documents (files or corpus directories, at most
    ``max_docs`` of each) into ``out`` (``model.bin``, ``model.json``), evaluated on a ``held_out`` fraction;
    returns the model card data. Each class is held out in the same fraction (stratified), and the smaller class
    is repeated for training so both weigh the same (:func:`balanced`); a held-out precision or recall of 0 is
    logged as a warning and listed in the card's ``warnings``.

    Raises ConfigError, before any work, for ``held_out`` outside (0, 1), ``epochs`` < 1, ``threshold`` outside
    [0, 1], ``max_docs`` < 20, a missing input, an ``out`` that cannot be a directory, or too few documents on
    either side of the split; RunError when fastText fails."""
    import fasttext

    if not 0 < held_out < 1:
        raise ConfigError(f"--held-out {held_out}: the fraction of documents held out for evaluation must be "
                          "between 0 and 1 (exclusive), e.g. 0.1")
    if epochs < 1:
        raise ConfigError(f"--epochs {epochs}: must be at least 1")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"--threshold {threshold}: a probability, between 0 and 1")
    if max_docs < 20:
        raise ConfigError(f"--max-docs {max_docs}: must be at least 20 (documents per class)")
    check_out_dir(out)
    check_inputs(positive, flag="--positive")
    check_inputs(negative, flag="--negative")
    started = time.time()
    pos, neg = _docs(positive, max_docs, max_chars), _docs(negative, max_docs, max_chars)
    if len(pos) < 20 or len(neg) < 20:
        raise ConfigError(f"need at least 20 positive and 20 negative documents (got {len(pos)} and {len(neg)})")
    rng = random.Random(seed)
    test, by_class = _split(pos, neg, held_out, rng)
    train_set = balanced(by_class, rng)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=True, encoding="utf-8") as f:
        f.writelines(f"{label} {text}\n" for label, text in train_set)
        f.flush()
        log.info(f"classifier train: {len(by_class[POSITIVE]):,} positive and {len(by_class[NEGATIVE]):,} negative "
                 f"documents after the {held_out:.0%} held-out split, the smaller class repeated to "
                 f"{len(train_set):,} training examples")
        try:
            model = fasttext.train_supervised(input=f.name, epoch=epochs, wordNgrams=word_ngrams, seed=seed,
                                              thread=1, verbose=0, lr=0.5, dim=64, minCount=2)
        except (RuntimeError, ValueError) as e:
            raise RunError(f"fastText training failed on {len(train_set):,} documents: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}") from None
    model.save_model(str(out / "model.bin"))
    scores = score(model, [t for _, t in test])
    truth = np.array([label == POSITIVE for label, _ in test])
    metrics = evaluate(scores, truth, threshold)
    warnings = metric_warnings(metrics, threshold)
    for w in warnings:
        log.warning(f"classifier train: {w}")
    card = {"positive": [str(p) for p in positive], "negative": [str(p) for p in negative],
            "documents": {"positive": len(pos), "negative": len(neg), "train": len(train_set), "held_out": len(test),
                          "train_positive": len(by_class[POSITIVE]), "train_negative": len(by_class[NEGATIVE]),
                          "held_out_positive": int(truth.sum()), "held_out_negative": int((~truth).sum())},
            "balance": "the smaller class's training documents repeated (each as often, give or take one) to the "
                       "larger class's count, so both classes weigh the same",
            "params": {"epochs": epochs, "word_ngrams": word_ngrams, "dim": 64, "lr": 0.5, "max_chars": max_chars,
                       "seed": seed},
            "held_out_metrics": metrics, "threshold": threshold, "warnings": warnings,
            "seconds": round(time.time() - started, 1)}
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _split(pos: list[str], neg: list[str], held_out: float,
           rng: random.Random) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Hold out ``held_out`` of each class (stratified, at least 5 documents of each) after a seeded shuffle; return
    the held-out ``(label, text)`` pairs and the training texts per label. ConfigError when a class keeps fewer than
    10 training documents."""
    test: list[tuple[str, str]] = []
    by_class: dict[str, list[str]] = {}
    total = len(pos) + len(neg)
    for label, name, docs in ((POSITIVE, "positive", pos), (NEGATIVE, "negative", neg)):
        docs = list(docs)
        rng.shuffle(docs)
        n_test = max(5, round(len(docs) * held_out))
        if len(docs) - n_test < 10:
            raise ConfigError(f"--held-out {held_out}: leaves fewer than 10 {name} documents to train on (of "
                              f"{total:,}); hold out less or give more documents")
        test += [(label, t) for t in docs[:n_test]]
        by_class[label] = docs[n_test:]
    rng.shuffle(test)
    return test, by_class


def balanced(by_class: dict[str, list[str]], rng: random.Random) -> list[tuple[str, str]]:
    """Training examples ``(label, text)`` in which every class has as many as the largest: a smaller class's
    documents are each repeated ``largest // n`` times and a seeded choice of ``largest % n`` of them once more
    (oversampling, which for fastText's loss is the same as weighting the class by ``largest / n``). Shuffled."""
    largest = max(len(docs) for docs in by_class.values())
    out: list[tuple[str, str]] = []
    for label, docs in by_class.items():
        extra = rng.sample(docs, largest % len(docs))
        out += [(label, t) for t in docs * (largest // len(docs)) + extra]
    rng.shuffle(out)
    return out


def metric_warnings(metrics: dict[str, float], threshold: float) -> list[str]:
    """One line for each held-out precision or recall of 0: the classifier is useless at ``threshold``."""
    out = []
    if metrics["recall"] == 0:
        out.append(f"held-out recall is 0: no held-out positive document scores >= the threshold {threshold}; the "
                   "step would remove every document (check the inputs, give more or more distinct documents, or "
                   "lower --threshold)")
    if metrics["precision"] == 0:
        out.append(f"held-out precision is 0: no held-out document scored >= the threshold {threshold} is positive "
                   "(check that --positive and --negative are not swapped, or give more documents)")
    return out


def score(model: Any, texts: list[str]) -> np.ndarray:
    """P(positive) per text."""
    if not texts:
        return np.zeros(0)
    labels, probs = model.predict(texts, k=2)
    return np.array([dict(zip(lab, pr)).get(POSITIVE, 0.0) for lab, pr in zip(labels, probs)], dtype=np.float64)


def evaluate(scores: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, float]:
    truth = np.asarray(truth).astype(bool)
    pred = scores >= threshold
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "roc_auc": round(roc_auc(scores, truth), 4), "accuracy": round(float((pred == truth).mean()), 4)}


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outranks a negative (ties count half)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth).astype(bool)
    if np.isnan(scores).any():
        raise ValueError("roc_auc: scores contain NaN")
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
