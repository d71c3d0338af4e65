"""Recipe validation beyond single keys, and output policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.plan import build_plan
from curate.recipe import load_recipe
from mixlab.errors import ConfigError
from tests.conftest import build_corpus, kept, removed

LONG = " ".join(["the quick brown fox jumps over the lazy dog and then it runs away"] * 5)


def _recipe(tmp_path: Path, write_recipe, **extra) -> Path:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    return write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}], **extra})


def test_format_is_inferred_from_the_extension(tmp_path: Path, write_recipe) -> None:
    assert load_recipe(_recipe(tmp_path, write_recipe)).model.sources[0].format == "jsonl"


def test_a_step_limited_to_an_unknown_domain_is_rejected(tmp_path: Path, write_recipe) -> None:
    with pytest.raises(ConfigError, match=r"steps\[0\].quality.domains: unknown domain 'wbe', did you mean 'web'"):
        build_plan(load_recipe(_recipe(tmp_path, write_recipe, steps=[{"quality": {"domains": ["wbe"]}}])))


def test_manual_mixture_must_weigh_exactly_the_recipe_domains(tmp_path: Path, write_recipe) -> None:
    recipe = load_recipe(_recipe(tmp_path, write_recipe,
                                 mixture={"method": "manual", "weights": {"web": 1, "code": 1}}))
    with pytest.raises(ConfigError, match="mixture.weights.code: unknown domain"):
        build_plan(recipe)


def test_a_step_listed_twice_is_rejected(tmp_path: Path, write_recipe) -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        load_recipe(_recipe(tmp_path, write_recipe, steps=["normalize", "normalize"]))


def test_quality_ngram_thresholds_only_for_computed_n(tmp_path: Path, write_recipe) -> None:
    with pytest.raises(ConfigError, match=r"steps\[0\].quality.max_top_ngram_chars_ratio: n must be one of"):
        load_recipe(_recipe(tmp_path, write_recipe, steps=[{"quality": {"max_top_ngram_chars_ratio": {7: 0.1}}}]))


def test_overrides_reach_step_params(tmp_path: Path, write_recipe) -> None:
    r = load_recipe(_recipe(tmp_path, write_recipe, steps=[{"quality": {}}]), ["steps[0].quality.min_words=7"])
    assert r.steps[0].params.min_words == 7


def test_recipe_hash_ignores_workers_work_codec_and_output_dir(tmp_path: Path, write_recipe) -> None:
    path = _recipe(tmp_path, write_recipe)
    base = load_recipe(path).hash()
    assert load_recipe(path, ["executor.workers=7", "executor.work_compression=lz4", "output.dir=elsewhere"]
                       ).hash() == base
    assert load_recipe(path, ["seed=3"]).hash() != base


def test_keep_removed_none_writes_no_removed_documents_but_still_counts_them(tmp_path: Path) -> None:
    out = build_corpus(tmp_path, {"web": ["short", LONG]}, [{"quality": {"max_dup_ngram_chars_ratio": None,
                                                                        "max_top_ngram_chars_ratio": None,
                                                                        "max_dup_lines_ratio": None}}],
                       output={"dir": str(tmp_path / "out"), "keep_removed": "none"})
    assert removed(out, "quality") == [] and len(kept(out)) == 1


def test_keep_removed_sample_keeps_the_same_n_whatever_the_batching(tmp_path: Path) -> None:
    docs = {"web": [f"tiny {i}" for i in range(200)]}
    runs = []
    for name, execu in [("a", {"workers": 1, "batch_size": 1000}), ("b", {"workers": 2, "batch_size": 7})]:
        out = build_corpus(tmp_path, docs, [{"quality": {}}], out_name=name, executor=execu,
                           output={"dir": str(tmp_path / name), "keep_removed": "sample 10"})
        runs.append([r["id"] for r in removed(out, "quality")])
    assert len(runs[0]) == 10 and runs[0] == runs[1]
