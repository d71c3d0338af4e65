"""curate.tokens: the byte histogram behind the token estimate, counted two bytes at a time, equals a plain count."""

import numpy as np
import pyarrow as pa

from curate.tokens import _WEIGHTS, estimate_tokens


def _reference(texts: list[str]) -> float:
    data = np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8)
    return float(np.bincount(data, minlength=256) @ _WEIGHTS)


def test_estimate_tokens_counts_every_byte_of_odd_length_and_sliced_texts():
    texts = ["a", "héllo wörld", "日本語のテキスト", "x" * 1001, "😀 emoji", "", "tab\tand\nnewline"]
    arr = pa.array(texts)
    assert estimate_tokens(arr) == _reference(texts)
    assert estimate_tokens(arr.slice(1, 3)) == _reference(texts[1:4])
    assert estimate_tokens(pa.chunked_array([arr.slice(0, 1), arr.slice(2)])) == _reference(texts[:1] + texts[2:])
