"""The shipped quickstart, end to end: the corpus contract of DESIGN.md holds on real data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from curate.cli import main
from tests.conftest import QUICKSTART, quickstart_overrides


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_accounting_adds_up_exactly(quickstart_out: Path) -> None:
    acc = _manifest(quickstart_out)["accounting"]
    removed = sum(n for reasons in acc["removed"].values() for n in reasons.values())
    assert acc["read"] == acc["kept"] + removed + acc["errored"]
    assert acc["balanced"] and acc["read"] > 600


def test_kept_count_matches_the_rows_in_the_shards(quickstart_out: Path) -> None:
    m = _manifest(quickstart_out)
    rows = sum(pq.read_metadata(p).num_rows for p in (quickstart_out / "data").rglob("*.parquet"))
    assert rows == m["accounting"]["kept"] == sum(d["docs"] for d in m["domains"].values())


def test_removed_documents_are_kept_with_their_reason(quickstart_out: Path) -> None:
    m = _manifest(quickstart_out)
    for step, reasons in m["accounting"]["removed"].items():
        files = sorted((quickstart_out / "removed" / step).glob("*.parquet"))
        got: dict[str, int] = {}
        for f in files:
            for r in pq.read_table(f, columns=["reason"])["reason"].to_pylist():
                got[r] = got.get(r, 0) + 1
        assert got == reasons, step


def test_every_domain_has_zstd_shards_with_the_recorded_sha256(quickstart_out: Path) -> None:
    m = _manifest(quickstart_out)
    assert set(m["domains"]) == {"web", "wiki", "books", "code"}
    for domain, info in m["domains"].items():
        assert info["docs"] > 0
        for shard in info["shards"]:
            path = quickstart_out / shard["path"]
            assert path.parent == quickstart_out / "data" / domain
            assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
            assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"


def test_documents_carry_contract_columns_and_annotations(quickstart_out: Path) -> None:
    t = pq.read_table(next((quickstart_out / "data" / "web").glob("*.parquet")))
    for col in ["id", "text", "domain", "source", "normalized_chars_delta", "exact_copies", "dup_lines_removed",
                "q_words", "q_dup_5gram_ratio", "dup_cluster", "dup_count"]:
        assert col in t.column_names
    assert not any(c.startswith("_") for c in t.column_names)
    assert t["id"].to_pylist()[0].startswith("data/quickstart/web/")


def test_datasets_loads_the_output(quickstart_out: Path) -> None:
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(quickstart_out / "data"), split="train")
    assert len(ds) == _manifest(quickstart_out)["accounting"]["kept"]
    assert set(ds.unique("domain")) == {"web", "wiki", "books", "code"}


def test_mixture_weights_sum_to_one_and_follow_the_method(quickstart_out: Path) -> None:
    mix = json.loads((quickstart_out / "mixture.json").read_text())
    assert mix["method"] == "temperature" and abs(sum(mix["weights"].values()) - 1) < 1e-9
    tokens = mix["tokens"]
    biggest, smallest = max(tokens, key=tokens.get), min(tokens, key=tokens.get)
    share = tokens[biggest] / sum(tokens.values())
    assert mix["weights"][biggest] < share  # temperature flattens the natural distribution
    assert mix["weights"][smallest] > tokens[smallest] / sum(tokens.values())


def test_card_reports_funnel_reasons_and_domains(quickstart_out: Path) -> None:
    card = (quickstart_out / "card.md").read_text()
    m = _manifest(quickstart_out)
    assert f"Documents read **{m['accounting']['read']:,}**" in card
    for step in ["normalize", "exact_dedup", "line_dedup", "quality", "minhash_dedup"]:
        assert f"| {step} |" in card
    assert "| books |" in card and "est. tokens" in card


def test_stats_files_hold_counters_and_histograms(quickstart_out: Path) -> None:
    q = json.loads((quickstart_out / "stats" / "quality.json").read_text())
    assert q["documents_in"] == q["kept"] + q["removed"]
    hist = q["histograms"]["q_words"]
    assert sum(hist["counts"]) == q["documents_in"] and len(hist["counts"]) == len(hist["edges"]) + 1
    assert "distinct_lines" in json.loads((quickstart_out / "stats" / "line_dedup.json").read_text())["reduce"]


def test_same_recipe_and_seed_give_identical_shards_whatever_the_worker_count(quickstart_out: Path, tmp_path: Path,
                                                                              quickstart_lm: Path) -> None:
    out = tmp_path / "again"
    assert main(["--quiet", "run", str(QUICKSTART), *quickstart_overrides(quickstart_lm), "--output", str(out),
                 "--workers", "1"]) == 0
    a, b = _manifest(quickstart_out), _manifest(out)
    assert a["corpus_sha256"] == b["corpus_sha256"]
    assert [s["sha256"] for d in a["domains"].values() for s in d["shards"]] == \
        [s["sha256"] for d in b["domains"].values() for s in d["shards"]]
    assert a["removed"] == b["removed"]


def test_running_a_complete_corpus_again_does_nothing(quickstart_out: Path, capsys, quickstart_lm: Path) -> None:
    before = (quickstart_out / "manifest.json").read_bytes()
    assert main(["run", str(QUICKSTART), *quickstart_overrides(quickstart_lm), "--output", str(quickstart_out)]) == 0
    assert "already complete" in capsys.readouterr().err
    assert (quickstart_out / "manifest.json").read_bytes() == before


def test_inspect_prints_domains_and_accounting(quickstart_out: Path, capsys) -> None:
    assert main(["inspect", str(quickstart_out)]) == 0
    out = capsys.readouterr().out
    assert "accounting: read" in out and "balanced" in out and "books" in out


def test_removed_shards_have_the_columns_up_to_their_step_and_a_reason(quickstart_out: Path) -> None:
    names = pq.read_schema(next((quickstart_out / "removed" / "quality").glob("*.parquet"))).names
    assert len(names) == len(set(names))
    assert names[:4] == ["id", "text", "domain", "source"] and names[-1] == "reason"
    assert "q_words" in names and not any(n.startswith("_") for n in names)
