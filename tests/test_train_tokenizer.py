"""`train tokenizer`: a lossless SentencePiece BPE that transformers loads, trained on a weighted sample."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from train.corpus import Corpus
from train.tokenizer import sample_corpus


def test_autotokenizer_loads_it_with_special_tokens(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert len(tok) == 1000
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == ("<unk>", "<s>", "</s>", "<pad>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 3)


def test_round_trip_is_lossless_on_every_domain(tokenizer_dir: Path, quickstart_out: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    for f in sorted((quickstart_out / "data").rglob("*.parquet")):
        for text in pq.read_table(f, columns=["text"])["text"].to_pylist()[:15]:
            assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    odd = "tabs\tand  spaces\n\n  indented\r\nCRLF ÇA 你好 🙂 \u200b 12345"
    assert tok.decode(tok.encode(odd, add_special_tokens=False)) == odd


def test_the_sample_follows_the_weights(quickstart_out: Path, tmp_path: Path) -> None:
    corpus = Corpus(quickstart_out)
    weights = {"books": 0.5, "code": 0.25, "web": 0.25, "wiki": 0.0}
    got = sample_corpus(corpus, weights, 200_000, tmp_path / "s.txt")
    assert "wiki" not in got
    for d, w in weights.items():
        if w:
            assert got[d] == pytest.approx(w * 200_000, rel=0.1)


def test_metadata_records_hash_and_sample(tokenizer_dir: Path) -> None:
    info = json.loads((tokenizer_dir / "mixlab_tokenizer.json").read_text())
    assert len(info["hash"]) == 16 and set(info["sample_chars"]) == {"books", "code", "web", "wiki"}
