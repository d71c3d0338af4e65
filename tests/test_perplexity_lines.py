"""Issue 18: `curate lm train` defaults chosen from the amount of text, and the `perplexity` step's per-line score
(`score: lines`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curate.lm import LanguageModel, LineScores, auto_order, auto_vocab_size
from tests.conftest import SHARED_DATA, build_corpus, kept

WIKI = [x for x in (SHARED_DATA / "corpus" / "wiki" / "wikitext2_test.txt").read_text(encoding="utf-8").split("\n")
        if len(x.split()) > 60][:40]


def _scores(line_ppl: list[float], chars: list[int], offsets: list[int]) -> LineScores:
    """LineScores whose lines have the given perplexities (2 tokens each) and lengths; ppl 0 = an empty line."""
    tokens = np.array([2 if p else 0 for p in line_ppl], dtype=np.int64)
    log10_prob = np.array([-2 * np.log10(p) if p else 0.0 for p in line_ppl])
    return LineScores(log10_prob, tokens, np.array(chars, dtype=np.int64), np.array(offsets, dtype=np.int64))


def test_line_quantile_is_weighted_by_characters() -> None:
    s = _scores([10.0, 100.0, 1000.0], [10, 30, 60], [0, 3])
    got = [s.line_quantile(q)[0] for q in (0.1, 0.11, 0.4, 0.41, 1.0)]
    assert got == pytest.approx([10.0, 100.0, 100.0, 1000.0, 1000.0])


def test_line_quantile_skips_empty_lines_and_is_nan_for_a_document_without_text() -> None:
    s = _scores([0.0, 50.0, 0.0, 0.0, 7.0], [0, 5, 0, 0, 3], [0, 3, 4, 5])
    q = s.line_quantile(0.5)
    assert q[0] == pytest.approx(50.0) and np.isnan(q[1]) and q[2] == pytest.approx(7.0)


def test_line_aware_perplexity_is_the_weighted_geometric_mean_of_document_and_quantile() -> None:
    s = _scores([10.0, 1000.0], [50, 50], [0, 2])
    doc = s.document_perplexity()[0]
    assert doc == pytest.approx(100.0)
    assert s.line_aware_perplexity(0.25, 0.5)[0] == pytest.approx(np.sqrt(doc * 10.0))
    assert s.line_aware_perplexity(0.75, 1.0)[0] == pytest.approx(1000.0)


def test_line_scores_add_up_to_the_ccnet_document_perplexity(english_lm: Path) -> None:
    m = LanguageModel(english_lm)
    texts = ["\n".join(WIKI[:3]), WIKI[3], "\n \n"]
    s = m.line_scores(texts)
    assert np.allclose(s.document_perplexity()[:2], m.perplexity(texts)[:2]) and np.isnan(m.perplexity(texts)[2])
    assert len(s.offsets) == 4 and s.tokens[s.offsets[2]:].sum() == 0


def test_score_lines_puts_the_line_aware_score_in_ppl(tmp_path: Path, english_lm: Path) -> None:
    docs = ["\n".join(WIKI[i:i + 3]) for i in range(0, 30, 3)]
    step = {"perplexity": {"lang": "en", "models": {"en": str(english_lm)}, "score": "lines",
                           "line_quantile": 0.5, "line_weight": 0.7}}
    out = build_corpus(tmp_path, {"web": docs}, [step])
    got = sorted(r["ppl"] for r in kept(out))
    want = sorted(LanguageModel(english_lm).line_scores(docs).line_aware_perplexity(0.5, 0.7))
    assert np.allclose(got, want, rtol=1e-6)
    stats = json.loads((out / "stats" / "perplexity.json").read_text())["combine"]
    assert stats["score"] == {"method": "lines", "line_quantile": 0.5, "line_weight": 0.7}


def test_the_default_score_leaves_the_step_params_as_they_were_hashed_before() -> None:
    from curate.steps.perplexity import PerplexityParams

    assert set(PerplexityParams(models={"en": "m"}).model_dump(mode="json")) == {
        "domains", "models", "lang", "percentiles", "cutoffs", "keep_buckets", "max_ppl"}
    assert PerplexityParams(models={"en": "m"}, score="lines").model_dump()["line_quantile"] == 0.25


def test_line_params_without_score_lines_are_refused_naming_the_key(tmp_path: Path, english_lm: Path, write_recipe,
                                                                 capsys) -> None:
    from curate.cli import main

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"perplexity": {"lang": "en", "models": {"en": str(english_lm)},
                                                   "line_weight": 0.3}}]})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "steps[0].perplexity: line_weight: only used with score: lines" in err and "Traceback" not in err


def test_auto_vocabulary_grows_with_the_square_root_of_the_text_within_bounds() -> None:
    assert auto_vocab_size(1_026_534) == 8_000
    assert auto_vocab_size(3_380_914) == 15_000
    assert auto_vocab_size(20_000) == 1_000
    assert auto_vocab_size(10**11) == 65_536


def test_auto_order_is_a_trigram_below_twenty_million_characters() -> None:
    assert auto_order(3_400_000) == 3 and auto_order(20_000_000) == 5


def test_lm_train_without_settings_chooses_them_from_the_text(tmp_path: Path) -> None:
    from curate import lm

    text = tmp_path / "wiki.txt"
    text.write_text("\n".join(WIKI * 3) + "\n", encoding="utf-8")
    card = lm.train([text], tmp_path / "m", "en")
    n = card["data"]["characters"]
    assert card["order"] == 3 and card["prune"] == [0, 0, 1]
    assert card["requested_vocab_size"] == auto_vocab_size(n)
    assert card["settings"] == {"order": "auto", "vocab_size": "auto", "prune": "auto"}
    assert "Chosen from the amount of text" in (tmp_path / "m" / "README.md").read_text()


def test_auto_vocabulary_rises_to_what_the_characters_need(tmp_path: Path) -> None:
    from curate import lm

    rows = json.loads((SHARED_DATA / "sft" / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    text = tmp_path / "zh.txt"
    text.write_text("\n".join(r["output"].replace("\n", " ") for r in rows[:150]) + "\n", encoding="utf-8")
    card = lm.train([text], tmp_path / "m", "zh", prune=[])
    assert card["requested_vocab_size"] > auto_vocab_size(card["data"]["characters"])
    assert card["prune"] == [] and card["settings"]["prune"] == "given"


def test_more_prune_thresholds_than_the_automatic_order_need_an_order(tmp_path: Path, capsys) -> None:
    from curate.cli import main

    assert main(["lm", "train", "--input", str(SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt"), "--lang", "en",
                 "--prune", "0", "0", "1", "1", "--out", str(tmp_path / "m")]) == 2
    assert "need --order 4 or more" in capsys.readouterr().err and not (tmp_path / "m").exists()
