"""The data card of a run counts the kept documents while the finalize tasks write the shards
(`curate.card.DomainCounts`), instead of reading the shards again: the card is byte-identical to the one
`curate card OUT` writes from the shards, and a resumed run's card still gets the counts of its finished tasks."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from curate import card
from curate.cli import main
from tests.conftest import QUICKSTART, ROOT, quickstart_overrides


def _run(recipe: Path, out: Path, *overrides: str) -> Path:
    """``curate run`` without figures (the card `curate card --no-plots` rebuilds), keeping ``.work``."""
    assert main(["--quiet", "run", str(recipe), *overrides, "output.card_plots=false", "--output", str(out),
                 "--keep-work", "--workers", "2"]) == 0
    return out


def _minhash_bench_recipe(where: Path) -> Path:
    """The shape of ``benchmarks/minhash.py``'s recipe (only ``minhash_dedup`` at 0.8, ids from the input, one
    worker) on the quickstart's C4 documents and seeded near-duplicate variants of a third of them."""
    rng = random.Random(7)
    texts = [json.loads(line)["text"] for line in
             (ROOT / "recipes/data/quickstart/web/c4_demo.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [{"id": f"c4-{i}", "text": t} for i, t in enumerate(texts)]
    for i, t in enumerate(rng.sample(texts, len(texts) // 3)):
        words = t.split()
        words[rng.randrange(len(words))] = "variant"
        docs.append({"id": f"x{i:04d}", "text": " ".join(words)})
    data = where / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    recipe = {"name": "minhash-bench", "seed": 1234,
              "sources": [{"path": str(data), "format": "jsonl", "domain": "web", "id_field": "id"}],
              "steps": [{"minhash_dedup": {"threshold": 0.8}}], "output": {"dir": str(where / "out")},
              "executor": {"workers": 1}}
    path = where / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, quickstart_lm: Path) -> dict[str, Path]:
    """The quickstart, zh_en_code and minhash-benchmark recipes, each run once with ``.work`` kept."""
    tmp = tmp_path_factory.mktemp("card-counts")
    bench = tmp / "bench"
    bench.mkdir()
    return {"quickstart": _run(QUICKSTART, tmp / "quickstart", *quickstart_overrides(quickstart_lm)),
            "zh_en_code": _run(ROOT / "recipes" / "zh_en_code.yaml", tmp / "zh_en_code"),
            "minhash_bench": _run(_minhash_bench_recipe(bench), tmp / "minhash_bench")}


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _kept_counts(out: Path) -> dict[str, dict[str, Any]]:
    """domain -> the ``card`` counts its finalize task kept in its stats."""
    return {d: json.loads((out / ".work" / "stats" / "finalize" / "data" / f"{d}.json").read_text())["card"]
            for d, v in _manifest(out)["domains"].items() if v["shards"]}


@pytest.mark.parametrize("recipe", ["quickstart", "zh_en_code", "minhash_bench"])
def test_a_runs_card_is_byte_identical_to_the_card_curate_card_writes_from_the_shards(
        runs: dict[str, Path], tmp_path: Path, recipe: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(runs[recipe], out, ignore=shutil.ignore_patterns(".work"))
    written = (out / "card.md").read_bytes()
    assert main(["--quiet", "card", str(out), "--no-plots"]) == 0
    assert (out / "card.md").read_bytes() == written


@pytest.mark.parametrize("recipe", ["quickstart", "zh_en_code", "minhash_bench"])
def test_the_counts_a_finalize_task_keeps_equal_the_counts_of_its_shards(runs: dict[str, Path], recipe: str) -> None:
    out = runs[recipe]
    m = _manifest(out)
    ppl_lang = card.perplexity_lang(m["recipe"]["steps"])
    kept = _kept_counts(out)
    assert kept
    for domain, counts in kept.items():
        from_shards = card.DomainCounts(ppl_lang)
        for batch in card._batches(out, m["domains"][domain]["shards"], card.KEPT_COLUMNS):
            from_shards.add(batch)
        assert counts == from_shards.to_json()
        assert sum(counts["langs"].values()) == sum(counts["length_counts"]) == m["domains"][domain]["docs"]
        assert counts["bytes"] == m["domains"][domain]["bytes"]


@pytest.mark.parametrize(("recipe", "figures"), [("quickstart", {"length", "languages", "perplexity"}),
                                                 ("zh_en_code", {"length", "languages"}),
                                                 ("minhash_bench", {"length", "duplicates"})])
def test_the_figures_numbers_are_the_same_from_the_kept_counts_as_from_the_shards(
        runs: dict[str, Path], recipe: str, figures: set[str]) -> None:
    out = runs[recipe]
    counts = {d: card.DomainCounts.from_json(c) for d, c in _kept_counts(out).items()}
    from_counts = card.collect(out, _manifest(out), counts)
    assert from_counts == card.collect(out, _manifest(out))
    assert figures <= set(from_counts["figures"])


def test_a_card_given_the_counts_reads_no_data_shard(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(runs["zh_en_code"], out)
    counts = {d: card.DomainCounts.from_json(c) for d, c in _kept_counts(out).items()}
    shutil.rmtree(out / "data")
    card.write_card(out, _manifest(out), out / "card.md", plots=False, counts=counts)
    assert (out / "card.md").read_bytes() == (runs["zh_en_code"] / "card.md").read_bytes()


def test_a_card_reads_the_shards_of_a_domain_without_counts(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(runs["zh_en_code"], out)
    counts = {d: card.DomainCounts.from_json(c) for d, c in _kept_counts(out).items() if d != "code"}
    card.write_card(out, _manifest(out), out / "card.md", plots=False, counts=counts)
    assert (out / "card.md").read_bytes() == (runs["zh_en_code"] / "card.md").read_bytes()


def test_a_resumed_run_whose_finalize_tasks_were_done_writes_the_same_card(
        runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    shutil.copytree(runs["minhash_bench"], out)
    written = (out / "card.md").read_bytes()
    (out / "manifest.json").unlink()  # as if killed after its last task: every task has its marker
    (out / "card.md").unlink()
    monkeypatch.setenv("MIXLAB_TASK_LOG", "1")
    recipe = runs["minhash_bench"].parent / "bench" / "recipe.yaml"
    assert main(["--quiet", "run", str(recipe), "output.card_plots=false", "--output", str(out)]) == 0
    assert not (out / ".state" / "executed.log").exists()  # no task ran again
    assert (out / "card.md").read_bytes() == written


def test_the_counts_round_trip_through_json_and_do_not_grow_with_the_documents() -> None:
    counts = card.DomainCounts()
    for n in (10, 1000):
        counts.add(pa.table({"id": [f"d{i}" for i in range(n)], "text": ["word " * (i % 50 + 1) for i in range(n)],
                             "lang": ["en", None] * (n // 2), "dup_count": [1, 2] * (n // 2)}))
    data = json.loads(json.dumps(counts.to_json()))
    assert card.DomainCounts.from_json(data).to_json() == data
    assert len(data["length_counts"]) == len(card.LENGTH_EDGES) - 1
    assert data["langs"] == {"en": 505, "none": 505} and data["near"] == {"2": 505}
    assert data["example"]["id"] == "d0" and data["example"]["bytes"] == 5
