"""`langid`: fastText lid.176 on real multilingual text; thresholds, routing, odd input, missing models."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from curate.steps.base import StepContext
from curate.steps.langid import Langid, LangidParams
from tests.conftest import SHARED_DATA, build_corpus, kept, removed


def _udhr(code: str, paragraphs: int = 3) -> str:
    with zipfile.ZipFile(SHARED_DATA / "langid" / "udhr2.zip") as z:
        lines = [x.strip() for x in z.read(f"udhr2/{code}.txt").decode("utf-8").splitlines() if len(x.strip()) > 40]
    return "\n".join(lines[5:5 + paragraphs])


def _step(**params) -> Langid:
    step = Langid(LangidParams(**params), StepContext(seed=0, partitions=1))
    step.setup()
    return step


def _annotate(texts: list[str], **params) -> pa.Table:
    return _step(**params).annotate(pa.table({"text": texts, "domain": ["web"] * len(texts)}))


def test_real_text_in_several_languages_is_identified() -> None:
    codes = {"eng": "en", "fra": "fr", "deu": "de", "rus": "ru", "cmn_hans": "zh", "spa": "es", "jpn": "ja"}
    out = _annotate([_udhr(c) for c in codes])
    assert out["lang"].to_pylist() == list(codes.values())
    assert min(out["lang_score"].to_pylist()) > 0.8


def test_empty_whitespace_and_symbol_only_documents_are_unknown_not_errors() -> None:
    out = _annotate(["", "   \n\t ", "!!! --- ???"])
    assert out["lang"].to_pylist() == ["unknown"] * 3 and out["lang_score"].to_pylist() == [0.0] * 3
    step = _step(languages=["en"])
    assert step.decide(out).to_pylist() == ["lang_low_confidence"] * 3


def test_threshold_is_inclusive_and_applies_to_the_top_score() -> None:
    step = _step(threshold=0.5)
    batch = pa.table({"lang": ["en", "en", "en"], "lang_score": pa.array([0.4999, 0.5, 0.9], pa.float32())})
    assert step.decide(batch).to_pylist() == ["lang_low_confidence", None, None]


def test_unwanted_languages_are_removed_with_their_own_reason() -> None:
    step = _step(languages=["en", "de"])
    batch = pa.table({"lang": ["en", "fr", "de"], "lang_score": pa.array([0.9, 0.95, 0.3], pa.float32())})
    assert step.decide(batch).to_pylist() == [None, "lang_not_wanted", "lang_low_confidence"]


def test_top_k_annotates_the_best_languages_with_scores() -> None:
    out = _annotate([_udhr("eng")], top_k=3)
    topk = out["lang_topk"][0].as_py()
    assert len(topk) == 3 and topk[0].startswith("en:")


def test_a_script_the_model_barely_knows_gets_a_low_score_not_a_crash() -> None:
    cherokee = "ᏂᎦᏓ ᎠᏂᏴᏫ ᏂᎨᎫᏓᎸᎾ ᎠᎴ ᎤᏂᏠᏱ ᎤᎾᏕᎿ ᏚᏳᎧᏛ ᎨᏒᎢ. ᎨᏥᏁᎳ ᎤᎾᏓᏅᏖᏗ ᎠᎴ ᎤᏃᏟᏍᏗ"
    out = _annotate([cherokee])
    assert out["lang"][0].as_py() != "unknown" and out["lang_score"][0].as_py() < 0.65


def test_a_long_document_is_identified_from_a_bounded_sample() -> None:
    text = _udhr("fra", 50) + "\n" + ("zzz " * 5_000_000)
    assert _annotate([text], max_chars=2000)["lang"][0].as_py() == "fr"


def test_documents_are_routed_into_per_language_domains(tmp_path: Path) -> None:
    docs = {"web": [_udhr("eng"), _udhr("fra"), _udhr("deu"), _udhr("rus")]}
    out = build_corpus(tmp_path, docs, [{"langid": {"languages": ["en", "fr", "de"], "route": "{domain}/{lang}"}}])
    assert sorted(p.relative_to(out / "data").as_posix() for p in (out / "data").rglob("*.parquet")) == \
        ["web/de/part-00000.parquet", "web/en/part-00000.parquet", "web/fr/part-00000.parquet"]
    assert {r["domain"] for r in kept(out)} == {"web/en", "web/fr", "web/de"}
    assert [(r["lang"], r["reason"]) for r in removed(out, "langid")] == [("ru", "lang_not_wanted")]
    import datasets

    assert len(datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train")) == 3


def test_manual_mixture_weights_name_routed_domains(tmp_path: Path) -> None:
    docs = {"web": [_udhr("eng"), _udhr("fra")]}
    out = build_corpus(tmp_path, docs, [{"langid": {"languages": ["en", "fr"], "route": "{domain}/{lang}"}}],
                       mixture={"method": "manual", "weights": {"web/en": 3, "web/fr": 1}})
    import json

    assert json.loads((out / "mixture.json").read_text())["weights"] == {"web/en": 0.75, "web/fr": 0.25}


def test_routing_needs_a_language_list(tmp_path: Path, write_recipe) -> None:
    from curate.plan import build_plan
    from curate.recipe import load_recipe
    from mixlab.errors import ConfigError

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"langid": {"route": "{domain}/{lang}"}}]})
    with pytest.raises(ConfigError, match=r"steps\[0\].langid: route needs languages"):
        build_plan(load_recipe(path))


def test_a_missing_model_file_fails_before_any_work(tmp_path: Path, write_recipe, capsys) -> None:
    from curate.cli import main

    (tmp_path / "a.jsonl").write_text('{"text": "hello there"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"langid": {"model": "models/lid.176.bin"}}]})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "steps[0].langid: model:" in err and "lid.176.bin does not exist" in err
    assert not (tmp_path / "out").exists()
