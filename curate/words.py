"""Words and stop words by language, for rules that count words (the `quality` step's Gopher rules).

Languages written with spaces between words use whitespace-separated words (done vectorized by the caller). Languages
written without them are segmented by a maintained library, loaded on first use in a process, and only when a batch
holds such a document:

- ``zh``: jieba (default mode, with its HMM for unknown words), data-juicer's and spaCy's (and so datatrove's) choice;
- ``ja``: SudachiPy with the ``sudachidict_core`` dictionary, split mode A (short units), as spaCy's Japanese tokenizer;
- ``th``: PyThaiNLP's ``newmm`` dictionary segmenter, as spaCy's Thai tokenizer.

A segmenter's tokens that hold no letter or digit (punctuation, symbols, spaces) are dropped: in a spaced language they
would be attached to a neighbouring word, so both kinds of word carry the same meaning for the rules. A document longer
than :data:`SEGMENT_MAX_CHARS` is segmented on that prefix (~600,000 Chinese words: well past any ``max_words``).

Stop words come from stopwordsiso (the stopwords-iso collection, ISO 639-1 codes), lowercased, keeping the entries that
hold a letter (some lists also hold digits and punctuation).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

SEGMENTERS = {"zh": "jieba", "ja": "sudachipy", "th": "pythainlp"}
"""language -> the library that splits its words (every other language: whitespace)"""

SEGMENT_MAX_CHARS = 1_000_000
SUDACHI_MAX_BYTES = 40_000
"""SudachiPy refuses inputs over 49,149 UTF-8 bytes: longer text is given to it in pieces cut at line ends"""


def is_segmented(lang: str) -> bool:
    """True when ``lang``'s words are found by a segmenter rather than by whitespace."""
    return lang in SEGMENTERS


@functools.cache
def _segmenter(lang: str) -> Callable[[str], list[str]]:
    if lang == "zh":
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        return lambda text: jieba.lcut(text)
    if lang == "ja":
        from sudachipy import Dictionary, SplitMode

        tokenizer: Any = Dictionary(dict="core").tokenizer(SplitMode.A, fields=set())
        return lambda text: [m.surface() for piece in _pieces(text, SUDACHI_MAX_BYTES)
                             for m in tokenizer.tokenize(piece)]
    if lang == "th":
        from pythainlp.tokenize import word_tokenize

        return lambda text: word_tokenize(text, engine="newmm", keep_whitespace=False)
    raise KeyError(f"no segmenter for language {lang!r}")


def _pieces(text: str, max_bytes: int) -> list[str]:
    """``text`` cut into pieces of at most ``max_bytes`` UTF-8 bytes, at line ends where a line allows it."""
    if len(text) * 4 <= max_bytes:
        return [text]
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if size + n > max_bytes and cur:
            out.append("".join(cur))
            cur, size = [], 0
        while n > max_bytes:
            cut = max_bytes // 4
            out.append(line[:cut])
            line = line[cut:]
            n = len(line.encode("utf-8"))
        cur.append(line)
        size += n
    if cur:
        out.append("".join(cur))
    return out


def segment(lang: str, texts: list[str]) -> list[list[str]]:
    """The words of each text of language ``lang`` (one of :data:`SEGMENTERS`), in order, without tokens that hold no
    letter or digit. Loads the language's segmenter on first use (seconds for jieba's dictionary)."""
    cut = _segmenter(lang)
    return [[w for w in cut(t[:SEGMENT_MAX_CHARS]) if any(c.isalnum() for c in w)] for t in texts]


STOP_WORD_MIN_CHARS = 3
"""shortest stop word counted, in characters (2 for the languages of :data:`SEGMENTERS`, whose words are short)"""


@functools.cache
def stop_words(lang: str) -> frozenset[str] | None:
    """The stopwords-iso list of ``lang``: its lowercase entries of at least :data:`STOP_WORD_MIN_CHARS` characters
    (2 for Chinese, Japanese and Thai) that hold a letter; None when stopwords-iso has no list for ``lang``.

    Shorter entries ("a", "y", "в", "的", "の") turn up by chance in any jumble of the language's letters, so they
    do not tell text from noise: on Debian Reference sections with their characters shuffled, the whole lists give
    10-16 distinct stop words per document (median, de/es/fr/ru), these at most 4, while real sections have 6-17 or
    more (2nd percentile). Gopher's English list has no one-letter word either."""
    import stopwordsiso

    if not stopwordsiso.has_lang(lang):
        return None
    shortest = 2 if lang in SEGMENTERS else STOP_WORD_MIN_CHARS
    return frozenset(w.lower() for w in stopwordsiso.stopwords(lang)
                     if len(w) >= shortest and any(c.isalpha() for c in w))


__all__ = ["SEGMENTERS", "SEGMENT_MAX_CHARS", "STOP_WORD_MIN_CHARS", "is_segmented", "segment", "stop_words"]
