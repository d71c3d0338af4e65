"""`exact_dedup` and `line_dedup`: corpus-wide global steps, deterministic whatever the partitioning."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import build_corpus, kept, removed

LONG = " ".join(f"word{i}" for i in range(60))


def test_exact_dedup_keeps_the_earliest_copy_and_names_it_in_the_removed_one(tmp_path: Path) -> None:
    docs = {"a": ["unique one " + LONG, "Same  TEXT " + LONG], "b": ["same text " + LONG, "other " + LONG]}
    out = build_corpus(tmp_path, docs, ["exact_dedup"])
    gone = removed(out, "exact_dedup")
    assert [(r["id"], r["reason"], r["duplicate_of"]) for r in gone] == [("b.jsonl:1", "exact_duplicate", "a.jsonl:2")]
    survivor = [r for r in kept(out) if r["id"] == "a.jsonl:2"][0]
    assert survivor["exact_copies"] == 2 and survivor["duplicate_of"] is None


def test_exact_dedup_result_does_not_depend_on_partitions_or_workers(tmp_path: Path) -> None:
    texts = [f"doc {i % 37} " + LONG for i in range(300)]
    a = build_corpus(tmp_path, {"x": texts[:150], "y": texts[150:]}, ["exact_dedup"], out_name="a",
                     executor={"workers": 1, "partitions": 1})
    b = build_corpus(tmp_path, {"x": texts[:150], "y": texts[150:]}, ["exact_dedup"], out_name="b",
                     executor={"workers": 2, "partitions": 7, "batch_size": 16})
    assert [r["id"] for r in kept(a, ["id"])] == [r["id"] for r in kept(b, ["id"])]
    assert len(kept(a, ["id"])) == 37


def test_line_dedup_drops_lines_repeated_across_documents(tmp_path: Path) -> None:
    banner = "Accept cookies | Privacy policy"
    topics = ["whales", "volcanoes", "bridges"]
    docs = [f"An article about {t}.\n{banner}\nMore on {t}." for t in topics]
    out = build_corpus(tmp_path, {"web": docs}, [{"line_dedup": {"min_count": 3, "min_words": 1}}])
    texts = [r["text"] for r in kept(out)]
    assert all(banner not in t for t in texts)
    assert texts[0] == "An article about whales.\nMore on whales."
    assert [r["dup_lines_removed"] for r in kept(out)] == [1, 1, 1]


def test_line_dedup_matches_lines_after_ccnet_normalization(tmp_path: Path) -> None:
    docs = ["Copyright 2019 ACME, Inc.\nbody one is here", "copyright 2021 acme inc\nbody two is here"]
    out = build_corpus(tmp_path, {"web": docs}, [{"line_dedup": {"min_words": 1}}])
    assert [r["text"] for r in kept(out)] == ["body one is here", "body two is here"]


def test_line_dedup_counts_documents_not_occurrences(tmp_path: Path) -> None:
    docs = ["chorus line\nverse a\nchorus line", "other text entirely"]
    out = build_corpus(tmp_path, {"web": docs}, [{"line_dedup": {"min_words": 1}}])
    assert kept(out)[0]["text"] == docs[0]


def test_line_dedup_removes_documents_left_too_short(tmp_path: Path) -> None:
    nav = "Home | About | Contact | Login | Register"
    docs = [f"{nav}\nshort {i}" for i in range(2)] + [f"{nav}\n" + LONG]
    out = build_corpus(tmp_path, {"web": docs}, [{"line_dedup": {"min_words": 10}}])
    assert [r["reason"] for r in removed(out, "line_dedup")] == ["too_short_after_line_dedup"] * 2
    assert kept(out)[0]["text"] == LONG


def test_a_step_limited_to_domains_leaves_other_domains_untouched(tmp_path: Path) -> None:
    line = "import numpy as np"
    docs = {"web": [f"{line}\nweb text {w}" for w in ("one", "two")], "code": [f"{line}\nx = {i}" for i in range(2)]}
    out = build_corpus(tmp_path, docs, [{"line_dedup": {"domains": ["web"], "min_words": 1}}])
    rows = {r["id"]: r for r in kept(out)}
    assert rows["code.jsonl:1"]["text"] == f"{line}\nx = 0" and rows["code.jsonl:1"]["dup_lines_removed"] is None
    assert rows["web.jsonl:1"]["text"] == "web text one"
