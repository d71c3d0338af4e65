"""The mixture sampler: a deterministic global order of packed sequences drawn from domains by weight.

Each domain's training documents (each followed by EOS) form one token stream; sequence ``j`` of a domain is the
window ``[j*L, j*L + L + 1)`` of it (inputs and next-token targets), so every training token is a target exactly
once per epoch. Domain ``d`` contributes ``n_d`` sequences (weights x total, rounded so they sum exactly); they are
taken epoch by epoch, each epoch in its own seeded permutation, and at most ``max_repetition`` epochs are allowed.
The global order interleaves the domains by a seeded permutation. Everything is a function of (seed, weights,
streams, total), so the sampler's whole state is one integer: the number of sequences consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xxhash

from mixlab.errors import ConfigError
from train.token_cache import ShardTokens

HELDOUT_BUCKETS = 10_000


def is_heldout(id_hashes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Deterministic per-document held-out choice: a seeded hash of the document id below ``fraction``."""
    with np.errstate(over="ignore"):
        h = (id_hashes ^ np.uint64(xxhash.xxh3_64_intdigest(str(seed).encode()))) * np.uint64(0x9E3779B97F4A7C15)
    return (h >> np.uint64(40)) % np.uint64(HELDOUT_BUCKETS) < np.uint64(round(fraction * HELDOUT_BUCKETS))


@dataclass
class DomainStream:
    """A virtual token stream made of document spans in memory-mapped shards."""

    name: str
    shards: list[np.ndarray]
    span_shard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    span_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    span_cum: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    @classmethod
    def from_shards(cls, name: str, shards: list[ShardTokens], select: list[np.ndarray]) -> "DomainStream":
        """Spans of the documents selected (per shard boolean masks), consecutive documents merged."""
        sh, st, ln = [], [], []
        for k, (s, mask) in enumerate(zip(shards, select)):
            if not mask.any():
                continue
            edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
            run_start, run_end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            a, b = s.doc_starts[run_start], s.doc_starts[run_end]
            sh.append(np.full(len(a), k)), st.append(a), ln.append(b - a)
        stream = cls(name, [s.tokens for s in shards])
        if sh:
            stream.span_shard, stream.span_start = np.concatenate(sh), np.concatenate(st)
            stream.span_cum = np.concatenate([[0], np.cumsum(np.concatenate(ln))])
        return stream

    @property
    def tokens(self) -> int:
        return int(self.span_cum[-1])

    def sequences(self, seq_len: int) -> int:
        return max(0, (self.tokens - 1) // seq_len)

    def read(self, start: int, length: int) -> np.ndarray:
        """``length`` tokens of the stream from ``start``."""
        out = np.empty(length, dtype=np.int64)
        filled = 0
        i = int(np.searchsorted(self.span_cum, start, side="right") - 1)
        pos = start
        while filled < length:
            offset = pos - self.span_cum[i]
            take = min(length - filled, int(self.span_cum[i + 1] - pos))
            src = self.shards[self.span_shard[i]]
            a = int(self.span_start[i] + offset)
            out[filled:filled + take] = src[a:a + take]
            filled += take
            pos += take
            i += 1
        return out


def allocate(weights: dict[str, float], total: int) -> dict[str, int]:
    """Sequences per domain: ``weights x total`` by largest remainder, summing exactly to ``total``."""
    names = sorted(weights)
    w = np.array([weights[n] for n in names], dtype=np.float64)
    w = w / w.sum()
    raw = w * total
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return dict(zip(names, base.tolist()))


def epoch_sequences(available: dict[str, int], weights: dict[str, float]) -> int:
    """One epoch of a mixture, in sequences: how many the mixture draws (by ``weights``, normalized over the domains
    with a positive weight) before its first domain has used each of its ``available`` sequences once. With the
    corpus's natural weights this is every training sequence; with others, the most drawn domain sets it."""
    active = {d: w for d, w in weights.items() if w > 0}
    total = sum(active.values())
    return int(min(available.get(d, 0) * total / w for d, w in active.items())) if active else 0


class MixtureSampler:
    def __init__(self, streams: dict[str, DomainStream], weights: dict[str, float], total_sequences: int,
                 seq_len: int, max_repetition: float, seed: int) -> None:
        self.streams, self.seq_len, self.seed = streams, seq_len, seed
        active = {d: w for d, w in weights.items() if w > 0}
        self.weights = active
        self.counts = allocate(active, total_sequences)
        self.available = {d: streams[d].sequences(seq_len) for d in active}
        self.max_repetition = max_repetition
        short = {d: n for d, n in self.counts.items() if n > max_repetition * self.available[d]}
        if short:
            raise ConfigError("the mixture cannot be drawn under max_repetition "
                              f"{max_repetition:g}:\n" + self.table(highlight=set(short)))
        self.domains = sorted(self.counts)
        rng = np.random.default_rng([seed, 0x5A3])
        labels = np.repeat(np.arange(len(self.domains), dtype=np.int32), [self.counts[d] for d in self.domains])
        self.order = rng.permutation(labels)
        self.within = np.empty(len(self.order), dtype=np.int64)
        for i, _ in enumerate(self.domains):
            where = np.flatnonzero(self.order == i)
            self.within[where] = np.arange(len(where))
        self._perm: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.order)

    def extend(self, total_sequences: int) -> None:
        """Append ``total_sequences`` positions drawn by the same weights (a run whose ``optim.max_steps`` grew on
        resume): the positions planned before keep their sequences, and each domain goes on through its epochs
        where it stopped. Raises ConfigError when the longer draw breaks ``max_repetition``."""
        more = allocate(self.weights, total_sequences)
        labels = np.repeat(np.arange(len(self.domains), dtype=np.int32), [more[d] for d in self.domains])
        order = np.random.default_rng([self.seed, 0x5A3, len(self.order)]).permutation(labels)
        within = np.empty(len(order), dtype=np.int64)
        for i, d in enumerate(self.domains):
            where = np.flatnonzero(order == i)
            within[where] = self.counts[d] + np.arange(len(where))
        counts = {d: self.counts[d] + more[d] for d in self.domains}
        short = {d for d, n in counts.items() if n > self.max_repetition * self.available[d]}
        self.counts = counts
        if short:
            raise ConfigError(f"optim.max_steps: the longer run cannot be drawn under max_repetition "
                              f"{self.max_repetition:g}:\n" + self.table(highlight=short))
        self.order, self.within = np.concatenate([self.order, order]), np.concatenate([self.within, within])

    def table(self, highlight: set[str] = frozenset()) -> str:  # type: ignore[assignment]
        L = self.seq_len
        rows = [f"{'domain':<16}{'weight':>8}{'tokens needed':>16}{'available':>14}{'epochs':>8}"]
        total = sum(self.counts.values()) or 1
        for d in sorted(self.counts):
            need, have = self.counts[d] * L, self.available[d] * L
            epochs = need / have if have else float("inf")
            mark = "  <- too small" if d in highlight else ""
            rows.append(f"{d:<16}{self.counts[d] / total:>8.3f}{need:>16,}{have:>14,}{epochs:>8.2f}{mark}")
        return "\n".join(rows)

    def _block(self, d: int, k: int) -> int:
        s = self.available[self.domains[d]]
        epoch, i = divmod(k, s)
        key = (d, epoch)
        if key not in self._perm:
            if len(self._perm) > 64:
                self._perm.clear()
            self._perm[key] = np.random.default_rng([self.seed, d, epoch, 0xB10C]).permutation(s)
        return int(self._perm[key][i])

    def sequence(self, position: int) -> tuple[str, np.ndarray]:
        """The domain and the ``seq_len + 1`` tokens of global position ``position``."""
        d = int(self.order[position])
        block = self._block(d, int(self.within[position]))
        name = self.domains[d]
        return name, self.streams[name].read(block * self.seq_len, self.seq_len + 1)

    def batch(self, start: int, size: int) -> tuple[np.ndarray, list[str]]:
        """Sequences ``[start, start + size)`` of the global order as a (size, seq_len + 1) array."""
        out = np.empty((size, self.seq_len + 1), dtype=np.int64)
        names = []
        for j in range(size):
            name, out[j] = self.sequence(start + j)
            names.append(name)
        return out, names
