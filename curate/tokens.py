"""Token estimates without a tokenizer: tokens ~ a weighted count of a text's characters by kind, read off its UTF-8
bytes (ASCII letters, digits, whitespace and punctuation; the lead bytes of 2-, 3- and 4-byte characters).

The weights (tokens per character, :data:`TOKENS_PER_CHAR`) are a least-squares fit (non-negative, each domain
weighted equally) of the token counts a 32,000-token `train tokenizer` (SentencePiece BPE, byte fallback, split
digits) gives every document of a corpus of the quickstart's English web and Wikipedia text, en/fr/de/it books,
Python code and the Chinese of ``recipes/data/zh``, trained on that corpus (`benchmarks/token_estimate.py`, entry
in benchmarks/RESULTS.md). Against those counts the estimate is off by +2.3% on Chinese, -0.6% on English web,
+1.9% on Wikipedia, +4.0% on code and -10.1% on the books; bytes / 4, the estimate before, was off by -26%
(Chinese), +8% (web), +11% (Wikipedia), -26% (code), -3.5% (books). Measured characters per token: Chinese 1.04
(2.95 bytes), English web 4.3, Wikipedia 4.4, books 3.8, code 3.0. The 2-byte (accented Latin, Cyrillic, Greek,
Arabic, Hebrew) and 4-byte (emoji, rare CJK) weights are priors, not fitted: the corpus has too few such
characters.

A tokenizer with a smaller vocabulary gives more tokens (8,000 tokens: the estimate is 7.5% under on Chinese, 21%
under on English web), and one trained without a script gives far more on it (byte fallback: 2 to 4 tokens a
character). Where a tokenizer exists, `train` counts real tokens (the token cache, ``curate mix --tokenizer``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

TOKENS_PER_CHAR = {"ascii_letter": 0.14, "ascii_digit": 1.08, "ascii_space": 0.54, "ascii_other": 0.57,
                   "2_byte": 0.5, "3_byte": 1.02, "4_byte": 2.0}
"""estimated tokens per character of each kind (see the module docstring for where they come from)"""
METHOD = ("script-aware: tokens per character of each kind (" +
          ", ".join(f"{k} {v:g}" for k, v in TOKENS_PER_CHAR.items()) +
          "), fitted to a 32,000-token SentencePiece BPE (curate/tokens.py)")
"""how the manifest's ``est_tokens`` are estimated, in words"""
_CHUNK = 16 * 2**20


def _byte_weights() -> np.ndarray:
    w = np.zeros(256, dtype=np.float64)
    for b in range(128):
        c = chr(b)
        kind = "letter" if c.isalpha() else "digit" if c.isdigit() else "space" if c.isspace() else "other"
        w[b] = TOKENS_PER_CHAR[f"ascii_{kind}"]
    w[0xC0:0xE0] = TOKENS_PER_CHAR["2_byte"]  # lead bytes; continuation bytes (0x80-0xBF) weigh 0
    w[0xE0:0xF0] = TOKENS_PER_CHAR["3_byte"]
    w[0xF0:0x100] = TOKENS_PER_CHAR["4_byte"]
    return w


_WEIGHTS = _byte_weights()


def _byte_histogram(data: np.ndarray) -> np.ndarray:
    """Occurrences of each byte value in ``data`` (uint8): counted two bytes at a time (a 65,536-bin histogram of
    the bytes read as uint16, summed over each half), half the elements of a plain ``np.bincount``."""
    pairs = len(data) // 2
    both = np.bincount(data[:2 * pairs].view(np.uint16), minlength=1 << 16).reshape(256, 256)
    hist = both.sum(axis=0) + both.sum(axis=1)
    if len(data) % 2:
        hist[data[-1]] += 1
    return hist


def _utf8_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes (uint8, zero-copy) and the texts' offsets into them (len(arr) + 1) of a string array; other
    types are cast to large_string first."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    offsets_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=offsets_type)[arr.offset:arr.offset + len(arr) + 1]
    buf = arr.buffers()[2]
    return (np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)), offsets


def estimate_tokens(texts: pa.Array | pa.ChunkedArray) -> float:
    """Estimated tokens of all of ``texts`` (a string or large_string array; nulls count 0): a histogram of the
    UTF-8 bytes, 16 MiB at a time, dotted with each byte value's weight (:data:`TOKENS_PER_CHAR` on the byte that
    starts a character). Memory: about 4 x 16 MiB whatever the input."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    hist = np.zeros(256, dtype=np.int64)
    for arr in chunks:
        if len(arr) == 0:
            continue
        data, offsets = _utf8_bytes(arr)
        start, end = int(offsets[0]), int(offsets[-1])
        for pos in range(start, end, _CHUNK):
            hist += _byte_histogram(data[pos:min(pos + _CHUNK, end)])
    return float(hist @ _WEIGHTS)


def document_estimates(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Estimated tokens of each text of ``texts`` (float64, one per text; nulls 0), with the weights
    :func:`estimate_tokens` sums: a cumulative sum of each byte's weight, read at the texts' offsets. Memory: 8 bytes
    per byte of text of one chunk (call it per record batch)."""
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    out: list[np.ndarray] = []
    for arr in chunks:
        data, offsets = _utf8_bytes(arr)
        cum = np.concatenate([[0.0], np.cumsum(_WEIGHTS[data[:int(offsets[-1]) if len(offsets) else 0]])])
        out.append(cum[offsets[1:]] - cum[offsets[:-1]])
    return np.concatenate(out) if out else np.zeros(0, np.float64)
