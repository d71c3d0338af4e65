"""The tokenized cache: each corpus shard tokenized once per tokenizer, memory-mapped by every run and ablation.

``CORPUS/tokens/<tokenizer hash>/<domain>/part-00000.{tokens,docs.npy,ids.npy,json}``: the shard's token ids
(uint16 when the vocabulary fits, else uint32), each document followed by EOS; document start offsets; a 64-bit hash
of each document id (for the held-out split); and metadata with the shard's sha256, so a rebuilt shard is
re-tokenized. A shard is written to temporary names and renamed, so a killed build resumes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from mixlab.logs import log, progress
from train.corpus import Corpus, Shard
from train.tokenizer import load_tokenizer, tokenizer_hash

PROBES = ("Plain text.", " a leading space", "   a leading run", "\tindented\r\nCRLF ", "你好 🙂")
"""texts on which SentencePiece must give the transformers tokenizer's ids before it is used in its place"""


@dataclass
class ShardTokens:
    domain: str
    tokens: np.ndarray  # memory-mapped
    doc_starts: np.ndarray  # len = docs + 1
    id_hashes: np.ndarray

    @property
    def docs(self) -> int:
        return len(self.doc_starts) - 1


class _Encoder:
    """Token ids of a tokenizer directory, always those `transformers.AutoTokenizer` gives (what SFT, generation and
    serving use): SentencePiece directly (batched in C++) when the directory has its model and it gives the same ids
    on :data:`PROBES`, else the transformers tokenizer."""

    def __init__(self, directory: Path) -> None:
        self.hf = load_tokenizer(directory)
        self.eos = self.hf.eos_token_id
        self.sp = None
        if (directory / "tokenizer.model").exists():
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
            if sp.encode(list(PROBES)) == self.hf(list(PROBES), add_special_tokens=False)["input_ids"]:
                self.sp = sp

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.sp is not None:
            return self.sp.encode(texts)
        return self.hf(texts, add_special_tokens=False)["input_ids"]


_enc: _Encoder | None = None


def _init(tokenizer_dir: Path) -> None:
    global _enc
    _enc = _Encoder(tokenizer_dir)


def _tokenize_shard(args: tuple[Corpus, Shard, Path]) -> str:
    corpus, shard, target = args
    assert _enc is not None
    dtype = np.uint16 if _enc.vocab_size <= 65535 else np.uint32
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    starts, ids, n = [0], [], 0
    with open(tmp.with_suffix(".tokens"), "wb") as f:
        for batch in corpus.batches(shard):
            for doc_id, toks in zip(batch.column(0).to_pylist(), _enc.encode(batch.column(1).to_pylist())):
                arr = np.asarray(toks + [_enc.eos], dtype=dtype)
                f.write(arr.tobytes())
                n += len(arr)
                starts.append(n)
                ids.append(xxhash.xxh3_64_intdigest(doc_id.encode()))
    np.save(tmp.with_suffix(".docs.npy"), np.asarray(starts, dtype=np.int64))
    np.save(tmp.with_suffix(".ids.npy"), np.asarray(ids, dtype=np.uint64))
    for suffix in (".tokens", ".docs.npy", ".ids.npy"):
        os.replace(tmp.with_suffix(suffix), target.with_suffix(suffix))
    meta = {"sha256": shard.sha256, "tokens": n, "docs": len(ids), "dtype": np.dtype(dtype).name}
    target.with_suffix(".json").write_text(json.dumps(meta) + "\n")  # written last: the shard is complete
    return shard.domain


def cache_dir(corpus: Corpus, tokenizer_dir: Path) -> Path:
    return corpus.root / "tokens" / tokenizer_hash(tokenizer_dir)


def _target(root: Path, shard: Shard) -> Path:
    return root / shard.domain / shard.path.stem


def _is_current(target: Path, shard: Shard) -> bool:
    meta = target.with_suffix(".json")
    return meta.exists() and json.loads(meta.read_text())["sha256"] == shard.sha256


def build(corpus: Corpus, tokenizer_dir: Path, domains: list[str], workers: int = 1) -> Path:
    """Tokenize every shard of ``domains`` that is not cached yet; returns the cache directory."""
    root = cache_dir(corpus, tokenizer_dir)
    todo = [(corpus, s, _target(root, s)) for d in domains for s in corpus.shards(d)]
    todo = [t for t in todo if not _is_current(t[2], t[1])]
    if not todo:
        return root
    log.info(f"tokenizing {len(todo)} shards into {root}")
    if workers > 1 and len(todo) > 1:
        with mp.get_context("fork").Pool(min(workers, len(todo)), initializer=_init, initargs=(tokenizer_dir,)) as pool:
            for _ in progress(pool.imap_unordered(_tokenize_shard, todo), total=len(todo), desc="tokenize",
                              unit="shard"):
                pass
    else:
        _init(tokenizer_dir)
        for t in progress(todo, desc="tokenize", unit="shard"):
            _tokenize_shard(t)
    return root


def load(corpus: Corpus, tokenizer_dir: Path, domain: str) -> list[ShardTokens]:
    """Memory-map the cached shards of one domain, in shard order."""
    root = cache_dir(corpus, tokenizer_dir)
    out = []
    for shard in corpus.shards(domain):
        target = _target(root, shard)
        meta: dict[str, Any] = json.loads(target.with_suffix(".json").read_text())
        tokens = np.memmap(target.with_suffix(".tokens"), dtype=meta["dtype"], mode="r") if meta["tokens"] else \
            np.zeros(0, dtype=meta["dtype"])
        out.append(ShardTokens(domain, tokens, np.load(target.with_suffix(".docs.npy"), allow_pickle=False),
                               np.load(target.with_suffix(".ids.npy"), allow_pickle=False)))
    return out
