"""Shingling: the compiled pass (``lsh_kernels``) computes exactly the Arrow/NumPy definition in ``lsh``.

The definition: ``normalize_for_shingles`` (NFKC, lowercase, punctuation and symbols to spaces, CJK characters as
words of their own), a whitespace split, ``word_hashes`` and weighted sums over word n-grams. The compiled pass folds
NFKC and lowercase code point by code point from shipped tables, so these tests hold the tables to what Arrow and
Unicode derive, the folding to Arrow's normalization for every code point, and the hashes to the definition on
real text in 388 languages.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate import lsh, lsh_kernels
from tests.conftest import SHARED_DATA

UDHR = SHARED_DATA / "langid" / "udhr2.zip"
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
TRICKY = [
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ﬁne ligatures, ½ cup, Ⅻ o'clock, x² — “quotes” … and\u00a0nbsp",
    "Ǆemal İstanbul ΣΊΣΥΦΟΣ ß ẞ ﬀ",
    "cafe\u0301 vs café, n\u0303, a\u0323\u0302 stacked marks, \u1100\u1161\u11a8 jamo vs 각",
    "中文文本没有空格，日本語のテキスト、한국어 텍스트 and ｶﾀｶﾅ halfwidth",
    "🫨 new emoji, \U000e0041 tag, \ue000 private use, \ufdfa long expansion, \u0385 spacing mark",
    "",
    "   \t\n ",
    "one",
]


def udhr_texts() -> list[str]:
    with zipfile.ZipFile(UDHR) as z:
        return [z.read(n).decode("utf-8") for n in sorted(z.namelist()) if n.endswith(".txt")]


def reference_shingle_hashes(texts: list[str], ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition, step by step in Arrow and NumPy."""
    normalized = lsh.normalize_for_shingles(pa.array(texts, pa.string()))
    words = pc.utf8_split_whitespace(pc.if_else(pc.equal(normalized, ""), None, normalized))  # "" has no words
    counts = pc.fill_null(pc.list_value_length(words), 0).to_numpy()
    hashes = lsh.word_hashes(pc.list_flatten(words))
    mult = lsh._position_multipliers(ngram, seed)
    out, offsets, start = [], [0], 0
    with np.errstate(over="ignore"):
        for n in counts.tolist():
            w, start = hashes[start:start + n], start + n
            if n:
                width = min(n, ngram)
                windows = np.lib.stride_tricks.sliding_window_view(w, width)
                out.append(lsh.fmix64((windows * mult[:width]).sum(axis=1, dtype=np.uint64)
                                      ^ np.uint64(width)))
            offsets.append(offsets[-1] + (max(n - ngram + 1, 1) if n else 0))
    return (np.concatenate(out) if out else np.zeros(0, np.uint64)), np.array(offsets)


def test_shipped_tables_are_what_arrow_and_unicode_derive() -> None:
    shipped, derived = lsh.shingle_tables(), lsh.derive_shingle_tables()

    assert shipped.keys() == derived.keys()
    for name in derived:
        assert np.array_equal(shipped[name], derived[name]), f"{name}: run lsh.write_shingle_tables()"


@pytest.mark.parametrize("before, after", [("", ""), ("Ab", "Cd 12"), ("é", "ﬁ")])
def test_every_code_point_shingles_as_arrow_normalizes_it(before: str, after: str, compiled_loops: str) -> None:
    texts = pa.array([before + chr(c) + after + chr(c) for c in CODE_POINTS])

    folded, folded_off = lsh.shingle_hashes(texts, 1, seed=5, compiled=True)
    exact, exact_off = lsh.shingle_hashes(texts, 1, seed=5, compiled=False)  # NFKC and lowercase by Arrow

    differ = np.flatnonzero(np.diff(folded_off) != np.diff(exact_off))
    if not len(differ):
        differ = np.unique(np.searchsorted(folded_off, np.flatnonzero(folded != exact), side="right") - 1)
    assert not len(differ), [hex(CODE_POINTS[i]) for i in differ[:10]]


def test_documents_with_context_dependent_code_points_take_the_exact_path() -> None:
    rule = lsh.shingle_tables()["rule"]

    assert rule[0x0301] == lsh_kernels.EXACT  # combining acute: composes with what precedes it
    assert rule[0x1161] == lsh_kernels.EXACT  # Hangul vowel jamo: composes with a leading consonant
    assert rule[ord("é")] == lsh_kernels.IDENTITY and rule[ord("ﬁ")] >= 0
    decomposed = lsh.shingle_hashes(pa.array(["x cafe\u0301 y", "plain", "x\u0301"]), 1, compiled=True)
    composed = lsh.shingle_hashes(pa.array(["x café y", "plain", "x\u0301"]), 1, compiled=False)
    assert all(np.array_equal(a, b) for a, b in zip(decomposed, composed))


def test_expansions_with_more_words_than_their_bytes_hold_take_the_exact_path(compiled_loops: str) -> None:
    # "1⁄2": two words from two bytes; a long document first leaves a large word buffer behind it
    texts = pa.array(["w " * 3000, "ﷺ" * 300, "½" * 1000, "a ½ b", "⑴⑵⑶ x", "ﷺ " * 300])

    compiled = lsh.shingle_hashes(texts, 2, seed=1, compiled=True)
    definition = lsh.shingle_hashes(texts, 2, seed=1, compiled=False)

    assert np.array_equal(compiled[1], definition[1]) and np.array_equal(compiled[0], definition[0])


@pytest.mark.skipif(not UDHR.exists(), reason="needs ../shared/data")
@pytest.mark.parametrize("ngram", [1, 5])
def test_compiled_shingles_equal_the_definition_in_388_languages(ngram: int, compiled_loops: str) -> None:
    texts = udhr_texts()
    paragraphs = [p for t in texts[::7] for p in t.split("\n\n")]
    docs = texts + paragraphs + TRICKY

    hashes, offsets = lsh.shingle_hashes(pa.array(docs), ngram, seed=7)
    want, want_offsets = reference_shingle_hashes(docs, ngram, seed=7)

    assert len(texts) == 388
    assert np.array_equal(offsets, want_offsets)
    assert np.array_equal(hashes, want)


def test_sliced_and_chunked_text_shingle_like_a_fresh_array() -> None:
    docs = TRICKY * 3
    whole, _ = lsh.shingle_hashes(pa.array(docs[4:]), 3)

    sliced, _ = lsh.shingle_hashes(pa.array(docs).slice(4), 3)
    chunked, _ = lsh.shingle_hashes(pa.chunked_array([pa.array(docs[4:9]), pa.array(docs[9:])]), 3)

    assert np.array_equal(sliced, whole) and np.array_equal(chunked, whole)
