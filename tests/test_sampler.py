"""The mixture sampler: exact proportions, repetition cap, determinism, held-out documents kept out."""

from __future__ import annotations

import numpy as np
import pytest

from mixlab.errors import ConfigError
from train.data import document_positions
from train.sampler import DomainStream, MixtureSampler, allocate, is_heldout
from train.token_cache import ShardTokens

EOS = 0


def _shard(domain: str, docs: list[list[int]]) -> ShardTokens:
    tokens = np.concatenate([np.array(d + [EOS], dtype=np.uint16) for d in docs])
    starts = np.concatenate([[0], np.cumsum([len(d) + 1 for d in docs])]).astype(np.int64)
    return ShardTokens(domain, tokens, starts, np.arange(len(docs), dtype=np.uint64) * 7919)


def _stream(domain: str, n_docs: int, doc_len: int, base: int) -> DomainStream:
    shards = [_shard(domain, [[base + i] * doc_len for i in range(k, k + n_docs // 2)]) for k in (0, n_docs // 2)]
    return DomainStream.from_shards(domain, shards, [np.ones(s.docs, bool) for s in shards])


def test_allocation_is_exact_and_proportional() -> None:
    counts = allocate({"a": 0.5, "b": 0.3, "c": 0.2}, 1001)
    assert sum(counts.values()) == 1001 and counts == {"a": 501, "b": 300, "c": 200}


def test_tokens_drawn_per_domain_match_the_weights_within_one_percent() -> None:
    streams = {"a": _stream("a", 400, 50, 1000), "b": _stream("b", 400, 50, 2000), "c": _stream("c", 400, 50, 3000)}
    weights = {"a": 0.6, "b": 0.3, "c": 0.1}
    s = MixtureSampler(streams, weights, total_sequences=3000, seq_len=16, max_repetition=4, seed=1)
    drawn: dict[str, int] = {}
    for start in range(0, len(s), 100):
        _, names = s.batch(start, 100)
        for n in names:
            drawn[n] = drawn.get(n, 0) + 16
    total = sum(drawn.values())
    for d, w in weights.items():
        assert abs(drawn[d] / total - w) < 0.01
    # proportions hold locally too: every window of 300 sequences is within 5 points of the weights
    for start in range(0, 3000, 300):
        _, names = s.batch(start, 300)
        assert abs(names.count("a") / 300 - 0.6) < 0.05


def test_the_repetition_cap_is_enforced_with_a_table() -> None:
    streams = {"big": _stream("big", 400, 50, 1000), "small": _stream("small", 10, 20, 2000)}
    with pytest.raises(ConfigError) as e:
        MixtureSampler(streams, {"big": 0.5, "small": 0.5}, total_sequences=200, seq_len=16, max_repetition=2, seed=0)
    msg = str(e.value)
    assert "max_repetition 2" in msg and "small" in msg and "too small" in msg and "tokens needed" in msg
    ok = MixtureSampler(streams, {"big": 0.5, "small": 0.5}, total_sequences=20, seq_len=16, max_repetition=2, seed=0)
    assert ok.counts["small"] <= 2 * ok.available["small"]


def test_one_epoch_reads_every_window_of_a_domain_exactly_once() -> None:
    streams = {"a": _stream("a", 40, 15, 1000)}
    s = MixtureSampler(streams, {"a": 1.0}, total_sequences=streams["a"].sequences(8), seq_len=8,
                       max_repetition=1, seed=3)
    batch, _ = s.batch(0, len(s))
    starts = sorted(int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(
        streams["a"].read(0, streams["a"].tokens), 9) == row, axis=1))[0]) for row in batch)
    assert starts == list(range(0, 8 * len(s), 8))


def test_same_seed_same_order_other_seed_other_order() -> None:
    streams = {"a": _stream("a", 100, 30, 1000), "b": _stream("b", 100, 30, 2000)}
    make = lambda seed: MixtureSampler(streams, {"a": 0.5, "b": 0.5}, 100, 16, 4, seed)  # noqa: E731
    assert np.array_equal(make(1).batch(10, 20)[0], make(1).batch(10, 20)[0])
    assert not np.array_equal(make(1).batch(10, 20)[0], make(2).batch(10, 20)[0])


def test_heldout_documents_never_reach_the_training_stream() -> None:
    shard = _shard("a", [[100 + i] * 12 for i in range(200)])
    held = is_heldout(shard.id_hashes, 0.1, seed=5)
    assert 5 < held.sum() < 40
    train = DomainStream.from_shards("a", [shard], [~held])
    tokens = set(train.read(0, train.tokens).tolist())
    assert not tokens & {100 + i for i in np.flatnonzero(held)}
    assert {100 + i for i in np.flatnonzero(~held)} <= tokens


def test_document_positions_restart_after_each_eos() -> None:
    pos, doc = document_positions(np.array([[5, 6, EOS, 7, 8, 9, EOS, 4]]), EOS)
    assert pos.tolist() == [[0, 1, 2, 0, 1, 2, 3, 0]] and doc.tolist() == [[0, 0, 0, 1, 1, 1, 1, 2]]
