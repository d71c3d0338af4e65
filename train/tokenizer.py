"""`train tokenizer`: SentencePiece BPE with byte fallback on a weight-respecting sample of a corpus, saved as a
directory `transformers.AutoTokenizer` loads.

Lossless by construction: no normalization rule, whitespace kept as is, every byte representable (byte fallback),
digits split. The sample takes from each domain in proportion to the mixture weight (the corpus's `mixture.json`
unless weights are given), spreading its picks evenly over the domain's documents.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from mixlab.errors import ConfigError
from mixlab.logs import log
from train.corpus import Corpus

SPECIAL = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}


def sample_corpus(corpus: Corpus, weights: dict[str, float], total_chars: int, path: Path) -> dict[str, int]:
    """Write up to ``total_chars`` characters of documents (one paragraph per line) to ``path``, each domain
    contributing its weight's share; returns characters written per domain."""
    written: dict[str, int] = {}
    with open(path, "w", encoding="utf-8") as f:
        for domain in corpus.domains:
            budget = int(total_chars * weights.get(domain, 0.0))
            if budget <= 0:
                continue
            stride = max(1, math.floor(corpus.text_bytes(domain) / max(budget, 1)))
            n = 0
            for phase in range(stride):  # every stride-th document, then the ones after them, until the budget
                index = 0
                for shard in corpus.shards(domain):
                    for batch in corpus.batches(shard, ("text",)):
                        for text in batch.column(0).to_pylist():
                            if index % stride == phase and n < budget:
                                for line in text.split("\n"):
                                    if line.strip():
                                        f.write(line + "\n")
                                        n += len(line) + 1
                            index += 1
                if n >= budget:
                    break
            written[domain] = n
    return written


def train_tokenizer(corpus_dir: Path, out: Path, vocab_size: int = 32_000, sample_chars: int = 200_000_000,
                    weights: dict[str, float] | None = None, seed: int = 0) -> dict[str, Any]:
    import sentencepiece as spm
    from transformers import AutoTokenizer, LlamaTokenizer

    corpus = Corpus(corpus_dir)
    w = weights or corpus.mixture or {d: 1.0 / len(corpus.domains) for d in corpus.domains}
    unknown = sorted(set(w) - set(corpus.domains))
    if unknown:
        raise ConfigError(f"weights name domains the corpus does not have: {', '.join(unknown)}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tok-") as tmp:
        text = Path(tmp) / "sample.txt"
        per_domain = sample_corpus(corpus, w, sample_chars, text)
        if sum(per_domain.values()) < 10_000:
            raise ConfigError(f"{corpus_dir}: only {sum(per_domain.values())} characters to train a tokenizer on")
        log.info(f"train tokenizer: {sum(per_domain.values()) / 1e6:.1f} M characters sampled "
                 + ", ".join(f"{d} {n / 1e6:.1f}M" for d, n in per_domain.items()))
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            input=str(text), model_prefix=str(Path(tmp) / "tokenizer"), model_type="bpe", vocab_size=vocab_size,
            byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True, character_coverage=0.9995, max_sentence_length=1 << 16,
            input_sentence_size=5_000_000, shuffle_input_sentence=True, seed_sentencepiece_size=1_000_000,
            unk_id=SPECIAL["unk"], bos_id=SPECIAL["bos"], eos_id=SPECIAL["eos"], pad_id=SPECIAL["pad"],
            hard_vocab_limit=False, num_threads=os.cpu_count() or 1, minloglevel=2)
        os.replace(Path(tmp) / "tokenizer.model", out / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(out), legacy=False, add_bos_token=False, add_eos_token=False)
    tok.pad_token = "<pad>"
    tok.save_pretrained(str(out))
    loaded = AutoTokenizer.from_pretrained(str(out))
    info = {"corpus": str(corpus_dir), "corpus_sha256": corpus.manifest["corpus_sha256"], "vocab_size": len(loaded),
            "requested_vocab_size": vocab_size, "sample_chars": per_domain, "weights": w,
            "model": "sentencepiece bpe, byte_fallback, identity normalization, split digits",
            "special_tokens": {k: loaded.convert_ids_to_tokens(v) for k, v in SPECIAL.items()},
            "hash": tokenizer_hash(out)}
    (out / "mixlab_tokenizer.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def tokenizer_hash(directory: Path) -> str:
    """Identity of a tokenizer for the token cache: hash of its files that define the mapping."""
    h = hashlib.sha256()
    for name in ("tokenizer.model", "tokenizer.json"):
        p = directory / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
