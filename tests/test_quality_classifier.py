"""`curate classifier train` and the `quality_classifier` step (LLaMA/DCLM-style fastText quality model)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from curate.classifier import roc_auc
from tests.conftest import SHARED_DATA, build_corpus, kept, removed

WIKI = SHARED_DATA / "corpus" / "wiki" / "wikitext2_valid.txt"
WEB = SHARED_DATA / "corpus" / "web" / "c4_demo.jsonl"


def _spam(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["cheap", "best", "online", "free", "casino", "deal", "click", "buy", "now", "viagra", "loans", "win"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(30, 120))) for _ in range(n)]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.cli import main

    d = tmp_path_factory.mktemp("clf")
    neg = d / "negative.jsonl"
    neg.write_text("".join(json.dumps({"text": t}) + "\n" for t in _spam(400, 0)), encoding="utf-8")
    out = d / "model"
    assert main(["--quiet", "classifier", "train", "--positive", str(WIKI), "--negative", str(neg), str(WEB),
                 "--out", str(out)]) == 0
    return out


def test_training_reports_held_out_precision_and_recall(classifier: Path) -> None:
    card = json.loads((classifier / "model.json").read_text())
    m = card["held_out_metrics"]
    assert card["documents"]["held_out"] > 100
    assert m["precision"] > 0.8 and m["recall"] > 0.8 and m["roc_auc"] > 0.9


def test_the_step_scores_and_removes_below_threshold(tmp_path: Path, classifier: Path) -> None:
    wiki = [x for x in WIKI.read_text(encoding="utf-8").splitlines() if len(x.split()) > 80][:5]
    out = build_corpus(tmp_path, {"web": wiki + _spam(5, 1)},
                       [{"quality_classifier": {"model": str(classifier), "threshold": 0.5}}])
    assert len(kept(out)) == 5 and all(r["quality_score"] >= 0.5 for r in kept(out))
    assert {r["reason"] for r in removed(out, "quality_classifier")} == {"low_quality_score"}


def test_scores_feed_minhash_keep_best_quality(tmp_path: Path, classifier: Path) -> None:
    article = [x for x in WIKI.read_text(encoding="utf-8").splitlines() if len(x.split()) > 300][0]
    spammy = article + " " + " ".join(_spam(1, 2)[0].split()[:25])
    steps = [{"quality_classifier": {"model": str(classifier), "threshold": None}},
             {"minhash_dedup": {"keep": "best_quality", "threshold": 0.7}}]
    out = build_corpus(tmp_path, {"web": [spammy, article]}, steps)
    assert [r["text"] for r in kept(out)] == [article]


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False])) == pytest.approx(0.875)
    assert roc_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])) == 1.0  # 0/1 labels work too
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(np.array([np.nan, 0.1]), np.array([True, False]))
