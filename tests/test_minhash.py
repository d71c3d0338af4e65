"""`minhash_dedup`: estimates as good as datasketch's, LSH parameters as datasketch chooses them, and near
duplicates removed deterministically whatever the execution."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate import lsh
from tests.conftest import SHARED_DATA, build_corpus, kept, removed

ARTICLES = [x for x in (SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()
            if len(x.split()) > 300][:12]


def _edit(text: str, rate: float, rng: random.Random) -> str:
    words = text.split()
    return " ".join(rng.choice(["zebra", "quartz", "fjord", "plinth"]) if rng.random() < rate else w for w in words)


def _shingles(text: str, n: int = 5) -> set[str]:
    words = lsh.normalize_for_shingles(pa.array([text]))[0].as_py().split()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.mark.parametrize("threshold,num_perm", [(0.5, 128), (0.8, 128), (0.9, 256), (0.7, 64)])
def test_bands_and_rows_are_chosen_as_datasketch_chooses_them(threshold: float, num_perm: int) -> None:
    from datasketch.lsh import _optimal_param

    assert lsh.optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


@pytest.mark.parametrize("scheme", ["oph", "permutations"])
def test_jaccard_estimates_are_as_accurate_as_datasketch(scheme: str) -> None:
    from datasketch import MinHash

    rng = random.Random(0)
    ours, theirs = [], []
    a, b = lsh.permutations(128, seed=1)
    for base in ARTICLES + [" ".join(x.split()[:60]) for x in ARTICLES]:  # long documents and short ones
        for rate in (0.02, 0.05, 0.1, 0.2):
            other = _edit(base, rate, rng)
            s1, s2 = _shingles(base), _shingles(other)
            true = len(s1 & s2) / len(s1 | s2)
            h, off = lsh.shingle_hashes(pa.array([base, other]), 5)
            sig = lsh.oph_signatures(h, off, 128, 1) if scheme == "oph" else lsh.signatures(h, off, a, b)
            ours.append(abs(float((sig[0] == sig[1]).mean()) - true))
            m1, m2 = MinHash(num_perm=128, seed=1), MinHash(num_perm=128, seed=1)
            m1.update_batch([s.encode() for s in s1])
            m2.update_batch([s.encode() for s in s2])
            theirs.append(abs(m1.jaccard(m2) - true))
    # same estimator, same expected error: sqrt(J(1-J)/128) <= 0.045
    assert np.mean(ours) < 0.045 and np.mean(ours) < 1.5 * np.mean(theirs) + 0.005


def test_signatures_of_identical_shingle_sets_are_identical_and_empty_documents_have_none() -> None:
    h, off = lsh.shingle_hashes(pa.array(["One, two three four five six!", "one two three four five six", ""]), 5)
    assert list(np.diff(off)) == [2, 2, 0]
    for sig in (lsh.signatures(h, off, *lsh.permutations(64, 3)), lsh.oph_signatures(h, off, 64, 3)):
        assert (sig[0] == sig[1]).all() and (sig[2] == lsh.EMPTY).all() and (sig[0] != lsh.EMPTY).all()


def test_k_permutation_signatures_are_the_minimum_of_each_permutation() -> None:
    h, off = lsh.shingle_hashes(pa.array(ARTICLES[:20]), 5)
    a, b = lsh.permutations(32, 5)

    sig = lsh.signatures(h, off, a, b)

    with np.errstate(over="ignore"):
        for d in range(len(off) - 1):
            values = h[off[d]:off[d + 1], None] * a[None, :] + b[None, :]
            assert np.array_equal(sig[d], (values.min(axis=0) >> np.uint64(32)).astype(np.uint32))


def test_chinese_text_is_shingled_by_characters() -> None:
    h, off = lsh.shingle_hashes(pa.array(["数据清洗是训练语言模型的第一步"]), 5)
    assert np.diff(off)[0] == 15 - 5 + 1


def test_connected_components_label_every_chain_by_its_smallest_member() -> None:
    labels = lsh.connected_components(7, np.array([5, 1, 3, 6]), np.array([1, 3, 0, 4]))
    assert labels.tolist() == [0, 0, 2, 0, 4, 0, 4]


def _corpus(rng: random.Random) -> dict[str, list[str]]:
    docs = list(ARTICLES)
    # true Jaccard ~0.95: found by LSH with probability > 0.99 at threshold 0.8 (b=9, r=13)
    docs += [_edit(ARTICLES[0], 0.004, rng), _edit(ARTICLES[0], 0.006, rng), _edit(ARTICLES[3], 0.005, rng)]
    docs += [_edit(ARTICLES[5], 0.4, rng)]  # too different: stays
    return {"wiki": docs[:8], "web": docs[8:]}


def test_near_duplicates_are_removed_and_named(tmp_path: Path) -> None:
    out = build_corpus(tmp_path, _corpus(random.Random(1)), ["minhash_dedup"])
    gone = removed(out, "minhash_dedup")
    assert sorted(r["id"] for r in gone) == ["web.jsonl:5", "web.jsonl:6", "web.jsonl:7"]
    assert {r["reason"] for r in gone} == {"near_duplicate"}
    assert {r["id"]: r["dup_cluster"] for r in gone}["web.jsonl:7"] == "wiki.jsonl:4"
    rows = {r["id"]: r for r in kept(out)}
    assert rows["wiki.jsonl:1"]["dup_count"] == 3 and rows["wiki.jsonl:1"]["dup_cluster"] == "wiki.jsonl:1"
    assert rows["web.jsonl:8"]["dup_count"] == 1 and rows["web.jsonl:8"]["dup_cluster"] is None
    stats = __import__("json").loads((out / "stats" / "minhash_dedup.json").read_text())
    assert (stats["combine"]["bands"], stats["combine"]["rows"], stats["combine"]["banding"]) == (16, 6, "recall")


def test_without_verification_bands_are_datasketchs_and_with_it_they_favour_recall() -> None:
    from curate.steps.base import StepContext
    from curate.steps.minhash import MinhashDedup, MinhashParams

    ctx = StepContext(seed=0, partitions=1)
    assert (MinhashDedup(MinhashParams(verify=False), ctx).bands, MinhashDedup(MinhashParams(verify=False), ctx).rows) \
        == (9, 13)
    step = MinhashDedup(MinhashParams(), ctx)
    assert 1 - (1 - 0.8 ** step.rows) ** step.bands >= 0.99 and step.bands * step.rows <= 128


def test_bucket_pairs_are_all_pairs_in_small_buckets_and_a_star_in_large_ones() -> None:
    from curate.steps.minhash import _bucket_pairs

    members = np.array([1, 2, 3, 7, 10, 11, 12, 13, 14])
    pairs = _bucket_pairs(members, np.array([0, 3, 4]), max_all=3)
    expected = {(1, 2), (1, 3), (2, 3), (10, 11), (10, 12), (10, 13), (10, 14)}
    assert {tuple(p) for p in pairs.tolist()} == expected


def test_result_does_not_depend_on_workers_partitions_batches_or_work_codec(tmp_path: Path) -> None:
    docs = _corpus(random.Random(2))
    a = build_corpus(tmp_path, docs, ["minhash_dedup"], out_name="a", executor={"workers": 1, "partitions": 1})
    b = build_corpus(tmp_path, docs, ["minhash_dedup"], out_name="b",
                     executor={"workers": 2, "partitions": 13, "batch_size": 3, "work_compression": "zstd"})
    assert kept(a) == kept(b) and removed(a, "minhash_dedup") == removed(b, "minhash_dedup")


def test_spilling_keys_in_many_small_writes_gives_the_same_result(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from curate import tasks

    docs = _corpus(random.Random(3))
    a = build_corpus(tmp_path, docs, ["minhash_dedup"], out_name="a", executor={"batch_size": 5})
    monkeypatch.setattr(tasks, "SPILL_BUFFER_BYTES", 1)  # every batch's keys go to disk at once
    b = build_corpus(tmp_path, docs, ["minhash_dedup"], out_name="b", executor={"batch_size": 5})

    assert removed(a, "minhash_dedup") and removed(a, "minhash_dedup") == removed(b, "minhash_dedup")
    assert kept(a) == kept(b)


def test_keep_longest_keeps_the_longest_whatever_the_input_order(tmp_path: Path) -> None:
    base = ARTICLES[2]
    longer = base + " And one more closing sentence that makes this copy the longest of them all."
    docs = [base, _edit(base, 0.01, random.Random(3)), longer]
    for name, order in [("fwd", docs), ("rev", docs[::-1])]:
        out = build_corpus(tmp_path, {"web": order}, [{"minhash_dedup": {"keep": "longest"}}], out_name=name)
        assert [r["text"] for r in kept(out)] == [longer]


def test_jaccard_of_many_pairs_at_once_is_exact() -> None:
    rng = np.random.default_rng(0)
    sets = [np.unique(rng.integers(0, 2**32 - 1, n, dtype=np.uint64)).astype(np.uint32)
            for n in rng.integers(0, 300, 60)]
    sets += [sets[3][: len(sets[3]) // 2], np.array([0, 2**32 - 1], np.uint32), np.array([2**32 - 1], np.uint32)]
    pairs = [(i, j) for i in range(len(sets)) for j in range(len(sets)) if rng.random() < 0.2] + [(3, 60), (61, 62)]
    a = [sets[i] for i, _ in pairs]
    b = [sets[j] for _, j in pairs]
    got = lsh.jaccard_pairs(np.concatenate(a), np.array([len(x) for x in a]), np.concatenate(b),
                            np.array([len(x) for x in b]))
    want = [len(set(x) & set(y)) / len(set(x) | set(y)) if len(x) or len(y) else 0.0 for x, y in zip(a, b)]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_each_candidate_pair_is_verified_once_however_many_bands_it_meets_in(tmp_path: Path) -> None:
    docs = {"web": [ARTICLES[1], ARTICLES[1] + " end", ARTICLES[2]]}
    out = build_corpus(tmp_path, docs, [{"minhash_dedup": {}}], executor={"workers": 1, "partitions": 16})
    stats = json.loads((out / "stats" / "minhash_dedup.json").read_text())
    assert stats["reduce"]["bucket_pairs"] > 1  # the near-identical pair meets in bands of several partitions
    assert stats["combine"]["candidate_pairs"] == stats["combine"]["verified_pairs"] == 1


def test_verification_rejects_lsh_false_positives(tmp_path: Path) -> None:
    rng = random.Random(4)
    docs = {"web": [ARTICLES[1], _edit(ARTICLES[1], 0.12, rng)]}  # true 5-gram Jaccard well below 0.8
    loose = {"bands": 64, "rows": 2}  # almost any overlap becomes a candidate
    out = build_corpus(tmp_path, docs, [{"minhash_dedup": loose}], out_name="verified")
    assert len(kept(out)) == 2
    out = build_corpus(tmp_path, docs, [{"minhash_dedup": {**loose, "verify": False}}], out_name="unverified")
    assert len(kept(out)) == 1


def test_chinese_near_duplicates_are_found(tmp_path: Path) -> None:
    a = "数据清洗是训练大型语言模型的第一步，去除重复文档可以显著提高模型质量并减少记忆化现象。" * 3
    b = a.replace("显著", "明显", 1)
    c = "今天天气很好，我们去公园散步，看到很多人在放风筝，孩子们玩得非常开心。" * 3
    out = build_corpus(tmp_path, {"zh": [a, b, c]}, [{"minhash_dedup": {"threshold": 0.7}}])
    assert [r["id"] for r in removed(out, "minhash_dedup")] == ["zh.jsonl:2"]


def test_bands_and_rows_must_fit_in_the_signature(tmp_path: Path, write_recipe) -> None:
    from curate.recipe import load_recipe
    from mixlab.errors import ConfigError

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"minhash_dedup": {"bands": 20, "rows": 10}}]})
    with pytest.raises(ConfigError, match=r"steps\[0\].minhash_dedup: bands x rows = 200 is more than num_perm"):
        load_recipe(path)


def test_keep_best_quality_maximizes_the_named_column_and_needs_it(tmp_path: Path) -> None:
    base = ARTICLES[4]
    noisy = base + " zz ## !! zz ## !! " * 3
    docs = {"web": [noisy, base]}
    out = build_corpus(tmp_path, docs, [{"quality": {"min_words": None}},
                                        {"minhash_dedup": {"keep": "best_quality",
                                                           "quality_column": "q_alpha_words_ratio"}}])
    assert [r["text"] for r in kept(out)] == [base]


def test_keep_best_quality_without_the_column_fails_before_work(tmp_path: Path, write_recipe) -> None:
    from curate.cli import main

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "a.jsonl", "domain": "web"}],
                         "steps": [{"minhash_dedup": {"keep": "best_quality"}}]})
    assert main(["run", str(path)]) == 2
    assert not (tmp_path / "out").exists()


def test_a_corpus_dedups_against_an_earlier_corpus_index(tmp_path: Path) -> None:
    rng = random.Random(5)
    (tmp_path / "a").mkdir()
    first = build_corpus(tmp_path / "a", {"web": ARTICLES[:6]}, ["minhash_dedup"])
    assert (first / "index" / "minhash" / "params.json").exists()
    new_docs = [_edit(ARTICLES[2], 0.005, rng), ARTICLES[8], _edit(ARTICLES[8], 0.005, rng), ARTICLES[9]]
    (tmp_path / "b").mkdir()
    second = build_corpus(tmp_path / "b", {"web": new_docs}, [{"minhash_dedup": {"against": [str(first)]}}])
    gone = {r["id"]: (r["reason"], r["dup_cluster"]) for r in removed(second, "minhash_dedup")}
    assert gone == {"web.jsonl:1": ("near_duplicate_of_reference", "web.jsonl:3"),
                    "web.jsonl:3": ("near_duplicate", "web.jsonl:2")}
    stats = __import__("json").loads((second / "stats" / "minhash_dedup.json").read_text())["combine"]
    assert stats["reference_documents"] == 6 and stats["removed_as_reference_duplicates"] == 1


def test_against_an_index_built_with_other_params_fails_before_work(tmp_path: Path, write_recipe) -> None:
    from curate.recipe import load_recipe
    from curate.plan import build_plan
    from mixlab.errors import ConfigError

    (tmp_path / "a").mkdir()
    first = build_corpus(tmp_path / "a", {"web": ARTICLES[:2]}, ["minhash_dedup"])
    (tmp_path / "x.jsonl").write_text('{"text": "x"}\n')
    path = write_recipe({"sources": [{"path": "x.jsonl", "domain": "web"}],
                         "steps": [{"minhash_dedup": {"against": [str(first)], "ngram": 3}}]})
    with pytest.raises(ConfigError, match=r"against\[0\].*other params \(ngram 5 vs 3\)"):
        build_plan(load_recipe(path))
    path = write_recipe({"sources": [{"path": "x.jsonl", "domain": "web"}],
                         "steps": [{"minhash_dedup": {"against": [str(tmp_path / "nope")]}}]})
    with pytest.raises(ConfigError, match="has no MinHash index"):
        build_plan(load_recipe(path))


@pytest.mark.parametrize("threshold, num_perm, recall", [(0.8, 128, 0.99), (0.5, 64, 0.9), (0.95, 256, 0.999),
                                                           (0.3, 16, 0.99), (0.0004, 8, 0.001)])
def test_recall_bands_is_the_smallest_false_positive_area_among_bandings_that_keep_recall(
        threshold: float, num_perm: int, recall: float) -> None:
    xs = np.linspace(0.0, 1.0, 2001)
    below = xs[xs <= threshold]
    feasible = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)
                if 1.0 - (1.0 - threshold ** r) ** b >= recall]
    area = [float(np.trapezoid(1.0 - (1.0 - below ** r) ** b, below)) if len(below) > 1 else 0.0
            for b, r in feasible]

    assert lsh.recall_bands.__wrapped__(threshold, num_perm, recall) == feasible[int(np.argmin(area))]
