"""Curation details: script-aware token estimates, the tokenizer sample's shares, source encodings, JSON array
sources, routed domains in a manual mixture, and a balanced quality classifier."""

from __future__ import annotations

import json
import logging
import random
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import ROOT, SHARED_DATA, build_corpus, kept

DATA = ROOT / "recipes" / "data"


def _run(tmp_path: Path, sources: list[dict[str, Any]], steps: list[Any] | None = None, **recipe: Any) -> int:
    from curate.cli import main

    spec = {"name": "t", "sources": sources, "steps": steps or [], "output": {"dir": str(tmp_path / "out")},
            "executor": {"workers": 1}, **recipe}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return main(["--quiet", "run", str(path)])


def _errors(out: Path) -> list[dict[str, Any]]:
    return [r for f in sorted((out / "errors").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


# -- token estimates ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zh_en_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's English web, Wikipedia and code text with the Chinese of recipes/data/zh, normalized."""
    d = tmp_path_factory.mktemp("zh_en")
    q = DATA / "quickstart"
    sources = [{"path": str(q / "web" / "c4_demo.jsonl"), "format": "jsonl", "domain": "web"},
               {"path": str(q / "wiki" / "wiki_demo.txt"), "format": "lines", "domain": "wiki"},
               {"path": str(q / "code" / "**" / "*.py"), "format": "txt", "domain": "code"},
               {"path": str(DATA / "zh" / "*.jsonl"), "format": "jsonl", "domain": "zh", "id_field": "id"}]
    assert _run(d, sources, ["normalize"]) == 0
    return d / "out"


def _measured_tokens(corpus: Path, tokenizer: Path, domain: str) -> int:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer / "tokenizer.model"))
    texts = [t for f in sorted((corpus / "data" / domain).glob("*.parquet"))
             for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
    return sum(len(ids) for ids in sp.encode(texts))


@pytest.fixture(scope="module")
def zh_en_tokenizer(zh_en_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32,000-token `train tokenizer` of ``zh_en_corpus``, each domain's text once (as curate/tokens.py's weights
    were fitted)."""
    from train.corpus import Corpus
    from train.tokenizer import available_chars, train_tokenizer

    corpus = Corpus(zh_en_corpus)
    out = tmp_path_factory.mktemp("zh_en_tok")
    train_tokenizer(zh_en_corpus, out, vocab_size=32_000,
                    weights={d: float(available_chars(corpus, d)) for d in corpus.domains})
    return out


def test_chinese_and_english_token_estimates_are_within_15_percent_of_a_trained_tokenizer(
        zh_en_corpus: Path, zh_en_tokenizer: Path) -> None:
    domains = json.loads((zh_en_corpus / "manifest.json").read_text())["domains"]
    for domain in ("zh", "web", "wiki"):
        measured = _measured_tokens(zh_en_corpus, zh_en_tokenizer, domain)
        assert domains[domain]["est_tokens"] == pytest.approx(measured, rel=0.15), domain


def test_the_token_cache_reports_counted_tokens_beside_the_estimate(zh_en_corpus: Path, zh_en_tokenizer: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from train import token_cache
    from train.corpus import Corpus

    corpus = Corpus(zh_en_corpus)
    with caplog.at_level(logging.INFO, logger="mixlab"):
        token_cache.build(corpus, zh_en_tokenizer, ["zh", "web"])
    zh = token_cache.counted_tokens(corpus, zh_en_tokenizer, "zh")
    info = json.loads((zh_en_corpus / "manifest.json").read_text())["domains"]["zh"]
    assert zh == _measured_tokens(zh_en_corpus, zh_en_tokenizer, "zh") + info["docs"]  # an EOS after each document
    est = info["est_tokens"]
    assert f"zh {zh:,} ({est:,}, {est / zh - 1:+.1%})" in caplog.text


def test_chinese_costs_about_one_token_a_character_and_english_about_a_quarter() -> None:
    from curate.tokens import estimate_tokens

    zh = json.loads((DATA / "zh" / "udhr_zh.jsonl").read_text(encoding="utf-8").splitlines()[1])["text"]
    en = "The quick brown fox jumps over the lazy dog while the children watch from the garden. " * 20
    assert estimate_tokens(pa.array([zh])) == pytest.approx(len(zh), rel=0.1)
    assert estimate_tokens(pa.array([en])) == pytest.approx(len(en) / 4, rel=0.25)


def test_the_estimate_of_a_slice_counts_only_its_rows() -> None:
    from curate.tokens import estimate_tokens

    texts = pa.array(["你好世界" * 10, "hello world " * 10, "12345"])
    whole = [estimate_tokens(texts.slice(i, 1)) for i in range(3)]
    assert sum(whole) == pytest.approx(estimate_tokens(texts))
    assert estimate_tokens(texts.slice(1, 1)) == pytest.approx(estimate_tokens(pa.array(["hello world " * 10])))
    assert estimate_tokens(pa.chunked_array([texts.slice(0, 2), texts.slice(2)]).cast(pa.large_string())) == \
        pytest.approx(estimate_tokens(texts))


def test_manifest_and_mixture_tokens_are_the_sum_of_the_shards_estimates(zh_en_corpus: Path) -> None:
    manifest = json.loads((zh_en_corpus / "manifest.json").read_text())
    mixture = json.loads((zh_en_corpus / "mixture.json").read_text())
    for d, v in manifest["domains"].items():
        assert v["est_tokens"] == round(sum(s["est_tokens"] for s in v["shards"])) == mixture["tokens"][d]
    zh = manifest["domains"]["zh"]
    assert zh["bytes"] / zh["est_tokens"] < 3.2 < manifest["domains"]["wiki"]["bytes"] / \
        manifest["domains"]["wiki"]["est_tokens"]
    assert "script-aware" in manifest["token_estimate"]


# -- the tokenizer sample -----------------------------------------------------------------------------------------

def _shares(written: dict[str, int]) -> dict[str, float]:
    total = sum(written.values())
    return {d: n / total for d, n in written.items()}


def test_tokenizer_sample_follows_the_weights_on_a_corpus_smaller_than_the_sample(zh_en_corpus: Path,
                                                                                 tmp_path: Path) -> None:
    from train.corpus import Corpus
    from train.tokenizer import sample_corpus

    weights = {"code": 0.2, "web": 0.5, "wiki": 0.2, "zh": 0.1}
    written = sample_corpus(Corpus(zh_en_corpus), weights, 200_000_000, tmp_path / "s.txt")
    for d, share in _shares(written).items():
        assert share == pytest.approx(weights[d], abs=0.005), d


def test_a_domain_short_of_its_share_is_repeated_at_most_four_times_and_said(zh_en_corpus: Path, tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    from train.corpus import Corpus
    from train.tokenizer import MAX_REPEATS, available_chars, sample_corpus

    corpus = Corpus(zh_en_corpus)
    weights = {"code": 0.0, "web": 0.5, "wiki": 0.0, "zh": 0.5}
    with caplog.at_level(logging.INFO, logger="mixlab"):
        written = sample_corpus(corpus, weights, 200_000_000, tmp_path / "s.txt")
    zh = available_chars(corpus, "zh")
    assert written["zh"] == pytest.approx(MAX_REPEATS * zh, rel=0.01)
    assert _shares(written)["web"] == pytest.approx(0.5, abs=0.005)
    assert f"domain 'zh' has {zh:,} characters, fewer than its share (50.0%)" in caplog.text
    assert "repeated 4.00 times" in caplog.text and "domain 'zh' repeated 4 times reaches its share" in caplog.text


# -- encodings ----------------------------------------------------------------------------------------------------

def test_a_cp1252_source_is_read_in_its_encoding(tmp_path: Path) -> None:
    text = "Café “déjà vu” – naïve façade €5"
    (tmp_path / "a.jsonl").write_bytes(json.dumps({"text": text}, ensure_ascii=False).encode("cp1252") + b"\n")
    assert _run(tmp_path, [{"path": "a.jsonl", "domain": "web", "encoding": "cp1252"}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == [text]


def test_bytes_the_encoding_does_not_define_are_bad_records_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "caf\xe9"}\n{"text": "x\x81y"}\n{"text": "ok"}\n')
    assert _run(tmp_path, [{"path": "a.jsonl", "domain": "web", "encoding": "cp1252"}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == ["café", "ok"]
    [err] = _errors(tmp_path / "out")
    assert (err["source"], err["location"], err["kind"]) == ("a.jsonl", "line 2", "bad_encoding")
    assert err["error"] == "not valid cp1252 at byte 11"


def test_detect_reads_utf8_and_cp1252_files_alike(tmp_path: Path) -> None:
    (tmp_path / "u.txt").write_bytes("naïve café\n".encode("utf-8"))
    (tmp_path / "w.txt").write_bytes("naïve café\n".encode("cp1252"))
    assert _run(tmp_path, [{"path": ["u.txt", "w.txt"], "format": "lines", "domain": "web",
                            "encoding": "detect"}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == ["naïve café", "naïve café"]


@pytest.mark.parametrize("encoding,says", [
    ("klingon", "unknown encoding 'klingon'"),
    ("utf-16", "does not write ASCII as ASCII"),
])
def test_an_encoding_that_cannot_work_is_refused_before_any_work(tmp_path: Path, encoding: str, says: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    assert _run(tmp_path, [{"path": "a.jsonl", "domain": "web", "encoding": encoding}]) == 2
    err = capsys.readouterr().err
    assert "sources[0]" in err and says in err
    assert not (tmp_path / "out").exists()


# -- JSON array sources -------------------------------------------------------------------------------------------

def test_a_json_array_file_is_a_source(tmp_path: Path) -> None:
    items = [{"text": "first document"}, {"text": ""}, 7, {"body": "no text"}, {"text": "last, 中文"}]
    (tmp_path / "a.json").write_text(json.dumps(items, indent=2, ensure_ascii=False), encoding="utf-8")
    assert _run(tmp_path, [{"path": "a.json", "format": "json", "domain": "web"}]) == 0
    assert [(r["id"], r["text"]) for r in kept(tmp_path / "out")] == [("a.json:0", "first document"),
                                                                      ("a.json:4", "last, 中文")]
    assert [(e["location"], e["kind"]) for e in _errors(tmp_path / "out")] == [
        ("item 1", "empty_text"), ("item 2", "bad_json"), ("item 3", "missing_field")]


def test_a_json_file_is_read_as_an_array_or_as_lines_by_its_first_character(tmp_path: Path) -> None:
    from curate.recipe import infer_format

    (tmp_path / "array.json").write_text('\ufeff  \n[{"text": "a"}]', encoding="utf-8")
    (tmp_path / "lines.json").write_text('{"text": "a"}\n', encoding="utf-8")
    assert infer_format(tmp_path / "array.json") == "json"
    assert infer_format(tmp_path / "lines.json") == "jsonl"


def test_a_malformed_json_array_is_one_error_naming_the_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[\n  {"text": "kept"},\n  {"text": "b"} {"text": "c"}\n]', encoding="utf-8")
    assert _run(tmp_path, [{"path": "a.json", "format": "json", "domain": "web"}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == ["kept", "b"]
    [err] = _errors(tmp_path / "out")
    assert (err["source"], err["location"], err["kind"]) == ("a.json", "file", "bad_json")
    assert "line 3, column 17" in err["error"] and "expected ',' or ']' after item 1" in err["error"]


def test_a_json_array_that_is_not_an_array_fails_under_on_error_fail(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.json").write_text('{"text": "one object"}', encoding="utf-8")
    assert _run(tmp_path, [{"path": "a.json", "format": "json", "domain": "web", "on_error": "fail"}]) == 1
    assert "a.json: not a JSON array" in capsys.readouterr().err


def test_a_json_item_over_the_read_limit_is_not_held(tmp_path: Path) -> None:
    from curate.readers import record_limit

    big = "x" * (3 * record_limit(1000))
    (tmp_path / "a.json").write_text(json.dumps([{"text": "small"}, {"text": big}, {"text": "after"}]),
                                     encoding="utf-8")
    assert _run(tmp_path, [{"path": "a.json", "format": "json", "domain": "web", "max_doc_bytes": 1000}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == ["small"]
    [err] = _errors(tmp_path / "out")
    assert err["kind"] == "record_too_large" and "item 1 at line 1" in err["error"]


def test_a_json_array_in_latin_1_is_read_in_its_encoding(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(json.dumps([{"text": "déjà"}], ensure_ascii=False).encode("latin-1"))
    assert _run(tmp_path, [{"path": "a.json", "format": "json", "domain": "web", "encoding": "latin-1"}]) == 0
    assert [r["text"] for r in kept(tmp_path / "out")] == ["déjà"]


# -- routed domains in a manual mixture ---------------------------------------------------------------------------

def _udhr(code: str, paragraphs: int = 3) -> str:
    with zipfile.ZipFile(SHARED_DATA / "langid" / "udhr2.zip") as z:
        lines = [x.strip() for x in z.read(f"udhr2/{code}.txt").decode("utf-8").splitlines() if len(x.strip()) > 40]
    return "\n".join(lines[5:5 + paragraphs])


ROUTE = [{"langid": {"languages": ["en", "fr"], "route": "{domain}/{lang}"}}]


def test_routed_domains_that_stay_empty_need_no_manual_weight(tmp_path: Path) -> None:
    out = build_corpus(tmp_path, {"web": [_udhr("eng")], "wiki": [_udhr("eng")]}, ROUTE,
                       mixture={"method": "manual", "weights": {"web/en": 3, "wiki/en": 1}})
    mixture = json.loads((out / "mixture.json").read_text())
    assert mixture["weights"] == {"web/en": 0.75, "web/fr": 0.0, "wiki/en": 0.25, "wiki/fr": 0.0}
    assert mixture["warnings"] == []


def test_a_routed_domain_with_documents_and_no_weight_gets_0_and_a_warning(tmp_path: Path) -> None:
    out = build_corpus(tmp_path, {"web": [_udhr("eng"), _udhr("fra")]}, ROUTE,
                       mixture={"method": "manual", "weights": {"web/en": 1}})
    mixture = json.loads((out / "mixture.json").read_text())
    assert mixture["weights"] == {"web/en": 1.0, "web/fr": 0.0}
    [warning] = mixture["warnings"]
    assert "'web/fr'" in warning and "no weight in mixture.weights: it gets weight 0" in warning


def test_a_source_domain_without_a_manual_weight_is_still_refused(tmp_path: Path) -> None:
    from curate.plan import build_plan
    from curate.recipe import load_recipe
    from mixlab.errors import ConfigError

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "y"}\n', encoding="utf-8")
    spec = {"name": "t", "sources": [{"path": "a.jsonl", "domain": "web"}, {"path": "b.jsonl", "domain": "books"}],
            "steps": [{"langid": {"languages": ["en"], "route": "{domain}/{lang}", "domains": ["web"]}}],
            "mixture": {"method": "manual", "weights": {"web/en": 1}}, "output": {"dir": str(tmp_path / "out")}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ConfigError, match="no weight for domain 'books'"):
        build_plan(load_recipe(tmp_path / "r.yaml"))


# -- the quality classifier ---------------------------------------------------------------------------------------

def _spam(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["cheap", "best", "online", "free", "casino", "deal", "click", "buy", "now", "pills", "loans", "win"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(30, 120))) for _ in range(n)]


def test_the_smaller_class_is_repeated_to_the_size_of_the_larger() -> None:
    from curate.classifier import NEGATIVE, POSITIVE, balanced

    examples = balanced({POSITIVE: [f"p{i}" for i in range(7)], NEGATIVE: [f"n{i}" for i in range(30)]},
                        random.Random(0))
    positives = [t for label, t in examples if label == POSITIVE]
    assert len(positives) == sum(label == NEGATIVE for label, _ in examples) == 30
    assert set(positives) == {f"p{i}" for i in range(7)}
    assert max(positives.count(t) for t in positives) - min(positives.count(t) for t in positives) == 1


def test_an_imbalanced_classifier_is_trained_balanced_and_held_out_by_class(tmp_path: Path) -> None:
    from curate.classifier import train

    wiki = [x for x in (SHARED_DATA / "corpus" / "wiki" / "wikitext2_valid.txt").read_text(
        encoding="utf-8").splitlines() if len(x.split()) > 40][:60]
    (tmp_path / "pos.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in wiki), encoding="utf-8")
    (tmp_path / "neg.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in _spam(600, 1)),
                                        encoding="utf-8")
    card = train([tmp_path / "pos.jsonl"], [tmp_path / "neg.jsonl"], tmp_path / "model", held_out=0.2)
    docs = card["documents"]
    assert (docs["held_out_positive"], docs["held_out_negative"]) == (12, 120)
    assert docs["train"] == 2 * docs["train_negative"] == 2 * 480
    assert card["held_out_metrics"]["recall"] > 0.5 and card["warnings"] == []


def test_held_out_precision_or_recall_of_0_is_a_warning() -> None:
    from curate.classifier import metric_warnings

    assert metric_warnings({"precision": 0.9, "recall": 0.8}, 0.5) == []
    [recall] = metric_warnings({"precision": 1.0, "recall": 0.0}, 0.5)
    assert recall.startswith("held-out recall is 0")
    [precision] = metric_warnings({"precision": 0.0, "recall": 0.3}, 0.5)
    assert precision.startswith("held-out precision is 0")
