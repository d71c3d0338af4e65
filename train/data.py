"""From a corpus and a tokenizer to what training reads: the token cache, the train/held-out streams per domain,
the mixture sampler, and evaluation sequences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import token_cache
from train.config import DataConfig
from train.corpus import Corpus
from train.sampler import DomainStream, MixtureSampler, is_heldout


@dataclass
class Data:
    corpus: Corpus
    weights: dict[str, float]
    train: dict[str, DomainStream]
    heldout: dict[str, DomainStream]


HELDOUT_SALT = 0
"""salts the hash that picks held-out documents: the split depends on the document id only (never on ``seed``), so
every run on a corpus (each seed, each stage of a continued pretraining) holds out the same documents; 0 is the
split that runs with the default seed 0 made when the seed salted it"""


def prepare(corpus_dir: Path, tokenizer_dir: Path, cfg: DataConfig, salt: int = HELDOUT_SALT) -> Data:
    """Token cache, train and held-out streams of each domain with a positive weight (``data.weights``, else the
    corpus's mixture.json). A document is held out by its id and ``salt`` alone (default :data:`HELDOUT_SALT`;
    never the run's seed); a domain too small to get one by chance holds out its last document. Domains of the
    corpus that ``data.weights`` leaves out get 0, said in one log line. Raises ConfigError naming ``data.weights``
    when there are no weights or a weighted domain has no documents in the corpus."""
    corpus = Corpus(corpus_dir)
    weights = cfg.weights if cfg.weights is not None else corpus.mixture
    if not weights:
        raise ConfigError("data.weights: the corpus has no mixture.json; give weights per domain")
    unknown = sorted(d for d, w in weights.items() if w > 0 and d not in corpus.domains)
    if unknown:
        raise ConfigError(f"data.weights: the corpus has no documents in {', '.join(unknown)} "
                          f"(domains: {', '.join(corpus.domains)})")
    unweighted = [d for d in corpus.domains if d not in weights]
    if cfg.weights is not None and unweighted:
        log.info(f"data.weights: no weight for the domain(s) {', '.join(unweighted)}; each gets weight 0 (not "
                 "trained on, not evaluated)")
    domains = sorted(d for d, w in weights.items() if w > 0)
    token_cache.build(corpus, tokenizer_dir, domains, cfg.workers)
    train, held = {}, {}
    for d in domains:
        shards = token_cache.load(corpus, tokenizer_dir, d)
        masks = [is_heldout(s.id_hashes, cfg.heldout_fraction, salt) for s in shards]
        if cfg.heldout_fraction > 0 and not any(m.any() for m in masks):
            masks = _at_least_one(shards, masks)
        train[d] = DomainStream.from_shards(d, shards, [~m for m in masks])
        held[d] = DomainStream.from_shards(d, shards, masks)
    return Data(corpus, {d: weights[d] for d in domains}, train, held)


def _at_least_one(shards: list, masks: list[np.ndarray]) -> list[np.ndarray]:
    """A small domain still gets one held-out document: the last one."""
    for k in range(len(shards) - 1, -1, -1):
        if shards[k].docs:
            masks[k] = masks[k].copy()
            masks[k][-1] = True
            break
    return masks


def sampler(data: Data, cfg: DataConfig, total_sequences: int, seed: int) -> MixtureSampler:
    return MixtureSampler(data.train, data.weights, total_sequences, cfg.seq_len, cfg.max_repetition, seed)


def eval_sequences(stream: DomainStream, seq_len: int, max_tokens: int) -> np.ndarray:
    """Consecutive windows of a held-out stream, up to ``max_tokens`` targets: (n, seq_len + 1)."""
    n = min(stream.sequences(seq_len), max(1, max_tokens // seq_len))
    if n == 0:
        return np.zeros((0, seq_len + 1), dtype=np.int64)
    return np.stack([stream.read(i * seq_len, seq_len + 1) for i in range(n)])


def document_positions(tokens: np.ndarray, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: position ids restarting after each EOS, and a document id per token (for a block-causal mask)."""
    is_eos = tokens == eos
    doc = np.concatenate([np.zeros((tokens.shape[0], 1), np.int64), np.cumsum(is_eos, axis=1)[:, :-1]], axis=1)
    idx = np.broadcast_to(np.arange(tokens.shape[1]), tokens.shape)
    start = np.zeros_like(doc)
    for r in range(tokens.shape[0]):
        first = np.concatenate([[0], np.flatnonzero(np.diff(doc[r])) + 1])
        start[r] = first[doc[r] - doc[r, 0]]
    return idx - start, doc
