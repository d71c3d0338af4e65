"""`curate lm train` and the `perplexity` step: CCNet's recipe and formula, buckets, filters, clear errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from curate.lm import LanguageModel, normalize_for_lm
from tests.conftest import SHARED_DATA, build_corpus, kept, removed

WIKI = [x for x in (SHARED_DATA / "corpus" / "wiki" / "wikitext2_test.txt").read_text(encoding="utf-8").split("\n")
        if len(x.split()) > 60][:60]


def _shuffled(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def test_lm_train_writes_the_model_and_its_card(english_lm: Path) -> None:
    card = json.loads((english_lm / "model.json").read_text())
    assert (english_lm / "lm.binary").is_file() and (english_lm / "sp.model").is_file()
    assert card["order"] == 4 and card["data"]["tokens"] > 100_000 and card["lang"] == "en"
    assert "4-gram" in (english_lm / "README.md").read_text()


def test_ccnet_normalization() -> None:
    import pyarrow as pa

    assert normalize_for_lm(pa.array(["  Ça coûte 1.234 €，ok？ "])).to_pylist() == ["ca coute 0.000 €,ok?"]
    assert normalize_for_lm(pa.array(["Année ١٢٣ ２０２４"])).to_pylist() == ["annee 000 0000"]


def test_document_perplexity_is_ccnets_formula(english_lm: Path) -> None:
    m = LanguageModel(english_lm)
    lines = ["The river flows into the sea .", "It was built in 1990 ."]
    total, length = 0.0, 0
    for line in lines:
        pieces = m.sp.encode(normalize_for_lm(__import__("pyarrow").array([line])).to_pylist()[0], out_type=str)
        total += m.lm.score(" ".join(pieces), bos=True, eos=True)
        length += len(pieces) + 1
    assert m.perplexity(["\n".join(lines)])[0] == pytest.approx(10 ** (-total / length))
    assert np.isnan(m.perplexity(["\n \n"])[0])


def test_real_text_scores_lower_than_the_same_words_shuffled(english_lm: Path) -> None:
    m = LanguageModel(english_lm)
    real = m.perplexity(WIKI[:20])
    junk = m.perplexity([_shuffled(t, i) for i, t in enumerate(WIKI[:20])])
    assert (real < junk).all()


def test_buckets_come_from_corpus_percentiles(tmp_path: Path, english_lm: Path) -> None:
    docs = WIKI[:30] + [_shuffled(t, i) for i, t in enumerate(WIKI[30:60])]
    out = build_corpus(tmp_path, {"web": docs}, [{"perplexity": {"lang": "en", "models": {"en": str(english_lm)}}}])
    rows = kept(out)
    buckets = [r["ppl_bucket"] for r in rows]
    assert (buckets.count("head"), buckets.count("middle"), buckets.count("tail")) == (18, 18, 24)
    tail = [i for i, b in enumerate(buckets) if b == "tail"]
    assert sum(i >= 30 for i in tail) >= 18  # the tail is mostly the shuffled text
    stats = json.loads((out / "stats" / "perplexity.json").read_text())["combine"]
    head = stats["cutoffs"]["en"]["head_max"]
    assert head == pytest.approx(np.percentile([r["ppl"] for r in rows], 30))


def test_keep_buckets_and_max_ppl_remove_with_reasons(tmp_path: Path, english_lm: Path) -> None:
    docs = WIKI[:10] + [_shuffled(t, i) for i, t in enumerate(WIKI[10:20])]
    step = {"perplexity": {"lang": "en", "models": {"en": str(english_lm)}, "keep_buckets": ["head", "middle"],
                           "max_ppl": 1e9}}
    out = build_corpus(tmp_path, {"web": docs}, [step], out_name="a")
    assert {r["reason"] for r in removed(out, "perplexity")} == {"ppl_bucket_tail"} and len(kept(out)) == 12
    step["perplexity"].update(keep_buckets=None, max_ppl=10.0)
    out = build_corpus(tmp_path, {"web": docs}, [step], out_name="b")
    assert len(kept(out)) == 0 and {r["reason"] for r in removed(out, "perplexity")} == {"ppl_above_max"}


def test_given_cutoffs_are_used_as_they_are(tmp_path: Path, english_lm: Path) -> None:
    step = {"perplexity": {"lang": "en", "models": {"en": str(english_lm)}, "cutoffs": {"en": [1.0, 2.0]}}}
    out = build_corpus(tmp_path, {"web": WIKI[:5]}, [step])
    assert {r["ppl_bucket"] for r in kept(out)} == {"tail"}


def test_documents_in_a_language_without_model_are_kept_unscored(tmp_path: Path, english_lm: Path) -> None:
    docs = {"web": [WIKI[0], "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist "
                             "Verpflichtung aller staatlichen Gewalt."]}
    steps = [{"langid": {"threshold": 0.0}},
             {"perplexity": {"models": {"en": str(english_lm)}, "keep_buckets": ["head"]}}]
    out = build_corpus(tmp_path, docs, steps)
    de = [r for r in kept(out) if r["lang"] == "de"][0]
    assert de["ppl"] is None and de["ppl_bucket"] is None


def test_perplexity_needs_a_language(tmp_path: Path, english_lm: Path, write_recipe) -> None:
    from curate.plan import build_plan
    from curate.recipe import load_recipe
    from mixlab.errors import ConfigError

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"perplexity": {"models": {"en": str(english_lm)}}}]})
    with pytest.raises(ConfigError, match="no `lang` column: put langid before this step"):
        build_plan(load_recipe(path))


def test_a_missing_model_directory_fails_before_any_work(tmp_path: Path, write_recipe) -> None:
    from curate.cli import main

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"perplexity": {"lang": "en", "models": {"en": "models/en"}}}]})
    assert main(["run", str(path)]) == 2 and not (tmp_path / "out").exists()


def test_lm_train_without_lmplz_names_the_make_target(tmp_path: Path, monkeypatch, capsys) -> None:
    from curate.cli import main

    monkeypatch.setenv("MIXLAB_KENLM_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.prefix", str(tmp_path))
    assert main(["lm", "train", "--input", str(SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt"), "--lang", "en",
                 "--out", str(tmp_path / "m")]) == 1
    assert "make kenlm" in capsys.readouterr().err
