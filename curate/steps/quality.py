"""`quality`: Gopher heuristic quality rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights
from Training Gopher", appendix A), with a rule set per language (as FineWeb-2 tunes them, Penedo et al. 2025).

Every signal is annotated as a ``q_*`` column; ``decide`` removes a document for the first rule it breaks, with that
rule as the reason. A threshold set to ``null`` turns its rule off.

**Which rules.** A document's language is its ``lang`` annotation (the ``langid`` step), or ``lang`` (default ``en``)
when it has none; a code document (:func:`curate.steps.code_quality.code_mask`: a code file, or a domain in
``code_domains``) is ``code``. Its rule set is, from the lowest precedence up: the defaults below for that language,
the rule keys given at the top level (``min_stop_words: null``: for every language), then ``languages: {xx:
{...}}``. A language with no defaults and not in ``languages`` uses ``default`` when set; otherwise (and for
``languages: {xx: null}``) its documents pass through unjudged, counted in the step's notes as ``no_rules:xx``; they
are never judged by another language's rules. ``q_rules`` names the rule set that judged a document.

**Words.** Whitespace-separated words for spaced languages (vectorized Arrow compute); a segmenter's words for
Chinese (jieba), Japanese (SudachiPy) and Thai (PyThaiNLP), without punctuation tokens (:mod:`curate.words`), so a
100-character Chinese paragraph has 56 words of mean length 1.7, not 1 word of length 100. Repetition signals use NumPy
over per-batch word ids and are not computed for documents over ``max_words`` (removed for length anyway), which
bounds the cost of a 20 MB document.

**Stop words** count *distinct* words of the language's list: Gopher keeps a document with "at least two of the
following English words: the, be, to, of, and, that, have, with", as datatrove does; counting occurrences would
let a French page that says "the" twice pass as English. English uses Gopher's 8 words; other languages use the
stopwords-iso list of that language without its shortest entries (:func:`curate.words.stop_words`: at least 3
letters, 2 characters in Chinese, Japanese and Thai), which is longer, hence their higher ``min_stop_words`` (4; 3
for ja and th; 2 for zh, whose classical verse has few modern function words). Debian Reference sections with their
characters shuffled have at most 2-4 distinct stop words of these lists (de, es, fr, it, pt, ru; zh: 2), real
sections 6 or more (2nd percentile; ja, zh: 3-4), and 60-word paragraphs 7-13 (UDHR).

**Where mixlab follows the paper rather than datatrove.** Duplicate n-gram fractions count every character covered
by an n-gram that occurs more than once, each character once (datatrove adds overlapping n-grams' characters again).
The alphabetic-word ratio is over whitespace words ("ordinary," is one alphabetic word); datatrove's tokenizer
makes punctuation its own non-alphabetic tokens, which removes ordinary news articles full of commas and quotes.

**Defaults per language** (``q_words``, mean word length in characters, ``min_alpha_words_ratio``,
``min_stop_words``, ``max_dup_lines_ratio``, top-2/3/4-gram and duplicate-5…10-gram character shares; every other
rule as in Gopher):

======  ==============  =========  =====  ====  =====  ===============  ===============================
lang    words           mean len   alpha  stop  dup    top 2/3/4-gram   dup 5…10-gram
======  ==============  =========  =====  ====  =====  ===============  ===============================
en      50–100,000      3–10       0.8    2     0.3    .20 .18 .16      .15 .14 .13 .12 .11 .10  (Gopher)
de      50–100,000      0–15       0.774  4     0.263  .169 .153 .137   .141 .134 .126 .117 .108 .098
fr      50–100,000      2–11       0.812  4     0.264  .161 .149 .134   .15 .141 .131 .121 .111 .10
es      50–100,000      4–14       0.825  4     0.265  .077 .097 .112   .152 .137 .123 .114 .107 .099
it      50–100,000      3–21       0.807  4     0.246  .198 .156 .133   .144 .136 .127 .118 .109 .10
pt      50–100,000      3–13       0.814  4     0.325  .093 .117 .139   .19 .172 .154 .142 .131 .12
nl      50–100,000      3–16       0.828  4     0.333  .093 .117 .14    .177 .16 .145 .133 .123 .112
pl      50–100,000      3–11       0.726  4     0.353  .096 .12 .144    .203 .182 .163 .15 .137 .126
ru      50–100,000      3–11       0.713  4     0.322  .184 .164 .146   .168 .156 .145 .133 .121 .109
zh      50–100,000      1–5        0.735  2     0.287  .256 .201 .171   .198 .182 .167 .154 .14 .127
ja      50–100,000      1–5        0.759  3     0.375  .121 .129 .145   .307 .283 .264 .248 .234 .223
th      50–100,000      2–10       0.9    3     0.349  .221 .197 .162   .185 .168 .152 .137 .124 .111
code    no rules: code is judged by the ``code_quality`` step
======  ==============  =========  =====  ====  =====  ===============  ===============================

The non-English thresholds are FineWeb-2's per-language settings (``configs/{lang}_{script}.yml`` of
huggingface/fineweb-2: ``min/max_avg_word_length``, ``max_non_alpha_words_ratio`` (a minimum share of alphabetic
words, despite its name), ``dup_line_frac``, ``top_n_grams``, ``dup_n_grams``); their stop-word lists are
FineWeb-2's own (most frequent words), ours are stopwords-iso's, and ``min_stop_words`` is ours. Other Gopher rules
(symbol/word ratio 0.1, bullet lines 0.9, ellipsis lines 0.3, duplicate line characters 0.2, duplicate paragraphs 0.3
and their characters 0.2) keep the paper's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationInfo, field_validator, model_serializer

from curate import words as wordlib
from curate.steps.base import MapStep, StepContext, StepParams
from curate.steps.code_quality import code_mask
from mixlab.config import Strict

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
STOP_WORDS = GOPHER_STOP_WORDS
TOP_NGRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
CODE = "code"
"""the rule-set key of code documents"""


def _check_n(v: dict[int, float] | None, field: str) -> dict[int, float] | None:
    allowed = TOP_NGRAMS if field == "max_top_ngram_chars_ratio" else DUP_NGRAMS
    bad = sorted(set(v or {}) - set(allowed))
    if bad:
        raise ValueError(f"n must be one of {sorted(allowed)}, got {bad}")
    return v


class GopherRules(Strict):
    """One language's rule set; the defaults are the Gopher paper's (English). ``null`` turns a rule off."""

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = Field(default=2, description="distinct stop words a document needs")
    stop_words: list[str] | None = Field(default=None, description="the stop words; null: the language's "
                                         "stopwords-iso list (English: Gopher's 8 words)")
    max_dup_lines_ratio: float | None = 0.3
    max_dup_line_chars_ratio: float | None = 0.2
    max_dup_paras_ratio: float | None = 0.3
    max_dup_para_chars_ratio: float | None = 0.2
    max_top_ngram_chars_ratio: dict[int, float] | None = Field(default_factory=lambda: dict(TOP_NGRAMS))
    max_dup_ngram_chars_ratio: dict[int, float] | None = Field(default_factory=lambda: dict(DUP_NGRAMS))

    @field_validator("max_top_ngram_chars_ratio", "max_dup_ngram_chars_ratio")
    @classmethod
    def _known_n(cls, v: dict[int, float] | None, info: ValidationInfo) -> dict[int, float] | None:
        return _check_n(v, str(info.field_name))


RULE_KEYS = tuple(GopherRules.model_fields)


class RuleOverrides(Strict):
    """Some of a rule set's keys; only the keys given override (an explicit ``null`` turns that rule off)."""

    min_words: int | None = None
    max_words: int | None = None
    min_mean_word_length: float | None = None
    max_mean_word_length: float | None = None
    max_symbol_word_ratio: float | None = None
    max_bullet_lines_ratio: float | None = None
    max_ellipsis_lines_ratio: float | None = None
    min_alpha_words_ratio: float | None = None
    min_stop_words: int | None = None
    stop_words: list[str] | None = None
    max_dup_lines_ratio: float | None = None
    max_dup_line_chars_ratio: float | None = None
    max_dup_paras_ratio: float | None = None
    max_dup_para_chars_ratio: float | None = None
    max_top_ngram_chars_ratio: dict[int, float] | None = None
    max_dup_ngram_chars_ratio: dict[int, float] | None = None

    @field_validator("max_top_ngram_chars_ratio", "max_dup_ngram_chars_ratio")
    @classmethod
    def _known_n(cls, v: dict[int, float] | None, info: ValidationInfo) -> dict[int, float] | None:
        return _check_n(v, str(info.field_name))

    @model_serializer(mode="wrap")
    def _only_given(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set or k not in RULE_KEYS}

    def given(self) -> dict[str, Any]:
        """The rule keys given, with their values."""
        return {k: getattr(self, k) for k in self.model_fields_set if k in RULE_KEYS}


def _fineweb2(mean_len: tuple[float, float], alpha: float, dup_line: float, top: tuple[float, ...],
              dup: tuple[float, ...], stops: int = 4) -> dict[str, Any]:
    """A rule set from a FineWeb-2 language config, with ``stops`` distinct stopwords-iso words."""
    return {"min_mean_word_length": mean_len[0], "max_mean_word_length": mean_len[1],
            "min_alpha_words_ratio": alpha, "min_stop_words": stops, "max_dup_lines_ratio": dup_line,
            "max_top_ngram_chars_ratio": dict(zip(TOP_NGRAMS, top)),
            "max_dup_ngram_chars_ratio": dict(zip(DUP_NGRAMS, dup))}


LANGUAGE_RULES: dict[str, dict[str, Any] | None] = {
    "en": {"stop_words": GOPHER_STOP_WORDS},
    "de": _fineweb2((0, 15), 0.774, 0.263, (.169, .153, .137), (.141, .134, .126, .117, .108, .098)),
    "fr": _fineweb2((2, 11), 0.812, 0.264, (.161, .149, .134), (.15, .141, .131, .121, .111, .1)),
    "es": _fineweb2((4, 14), 0.825, 0.265, (.077, .097, .112), (.152, .137, .123, .114, .107, .099)),
    "it": _fineweb2((3, 21), 0.807, 0.246, (.198, .156, .133), (.144, .136, .127, .118, .109, .1)),
    "pt": _fineweb2((3, 13), 0.814, 0.325, (.093, .117, .139), (.19, .172, .154, .142, .131, .12)),
    "nl": _fineweb2((3, 16), 0.828, 0.333, (.093, .117, .14), (.177, .16, .145, .133, .123, .112)),
    "pl": _fineweb2((3, 11), 0.726, 0.353, (.096, .12, .144), (.203, .182, .163, .15, .137, .126)),
    "ru": _fineweb2((3, 11), 0.713, 0.322, (.184, .164, .146), (.168, .156, .145, .133, .121, .109)),
    "zh": _fineweb2((1, 5), 0.735, 0.287, (.256, .201, .171), (.198, .182, .167, .154, .14, .127), 2),
    "ja": _fineweb2((1, 5), 0.759, 0.375, (.121, .129, .145), (.307, .283, .264, .248, .234, .223), 3),
    "th": _fineweb2((2, 10), 0.9, 0.349, (.221, .197, .162), (.185, .168, .152, .137, .124, .111), 3),
    CODE: None,
}
"""Default rule sets: language -> the keys that differ from Gopher's, or None (no rules; documents pass)."""


class QualityParams(StepParams, RuleOverrides):
    """The rule keys at the top level (``min_words``, ``min_stop_words``, ...) are set for every language that has a
    rule set, over its defaults; ``languages: {xx: {...}}`` sets them for one language, over both."""

    languages: dict[str, RuleOverrides | None] = Field(
        default_factory=dict, description="per language (ISO 639-1 code, or code): rule keys over its defaults; "
        "null: no rules, its documents pass")
    default: RuleOverrides | None = Field(default=None, description="rule set (over Gopher's) for languages "
                                          "without their own; null: such documents pass unjudged, counted")
    lang: str | None = Field(default="en", description="language of documents without a `lang` annotation; "
                             "null: they pass unjudged")
    code_domains: list[str] | None = Field(default=None, description="domains whose documents are code (rule set "
                                           "`code`) whatever their file names")

    def rules(self, lang: str) -> GopherRules | None:
        """The rule set documents of ``lang`` are judged by, or None when they pass unjudged."""
        if lang in self.languages and self.languages[lang] is None:
            return None
        base = LANGUAGE_RULES.get(lang)
        if base is None:
            if lang in LANGUAGE_RULES and lang not in self.languages:
                return None
            if lang in self.languages:
                base = {}
            elif self.default is not None:
                base = self.default.given()
            else:
                return None
        own = self.languages.get(lang)
        return GopherRules(**{**base, **self.given(), **(own.given() if own else {})})


_f32, _i32 = pa.float32(), pa.int32()
_COLUMNS = {"q_rules": pa.string(), "q_words": _i32, "q_mean_word_length": _f32, "q_symbol_word_ratio": _f32,
            "q_bullet_lines_ratio": _f32, "q_ellipsis_lines_ratio": _f32, "q_alpha_words_ratio": _f32,
            "q_stop_words": _i32, "q_dup_lines_ratio": _f32, "q_dup_line_chars_ratio": _f32,
            "q_dup_paras_ratio": _f32, "q_dup_para_chars_ratio": _f32}
_COLUMNS.update({f"q_top_{n}gram_ratio": _f32 for n in TOP_NGRAMS})
_COLUMNS.update({f"q_dup_{n}gram_ratio": _f32 for n in DUP_NGRAMS})

_RULES = [  # (reason, rule key, column, True: removed below the threshold / False: above)
    ("too_few_words", "min_words", "q_words", True),
    ("too_many_words", "max_words", "q_words", False),
    ("mean_word_length", "min_mean_word_length", "q_mean_word_length", True),
    ("mean_word_length", "max_mean_word_length", "q_mean_word_length", False),
    ("symbol_word_ratio", "max_symbol_word_ratio", "q_symbol_word_ratio", False),
    ("bullet_lines", "max_bullet_lines_ratio", "q_bullet_lines_ratio", False),
    ("ellipsis_lines", "max_ellipsis_lines_ratio", "q_ellipsis_lines_ratio", False),
    ("non_alpha_words", "min_alpha_words_ratio", "q_alpha_words_ratio", True),
    ("too_few_stop_words", "min_stop_words", "q_stop_words", True),
    ("dup_lines", "max_dup_lines_ratio", "q_dup_lines_ratio", False),
    ("dup_line_chars", "max_dup_line_chars_ratio", "q_dup_line_chars_ratio", False),
    ("dup_paras", "max_dup_paras_ratio", "q_dup_paras_ratio", False),
    ("dup_para_chars", "max_dup_para_chars_ratio", "q_dup_para_chars_ratio", False),
]

def _per_doc_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    csum = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    return csum[offsets[1:]] - csum[offsets[:-1]]


def _first_in_doc(doc: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """True where ``ids[i]`` did not occur earlier in the same document (stable, vectorized)."""
    order = np.lexsort((np.arange(len(ids)), ids, doc))
    d, v = doc[order], ids[order]
    first_sorted = np.ones(len(ids), dtype=bool)
    first_sorted[1:] = (d[1:] != d[:-1]) | (v[1:] != v[:-1])
    first = np.empty(len(ids), dtype=bool)
    first[order] = first_sorted
    return first


def dup_fractions(parts: pa.ListArray, n_docs: int, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gopher: per document, the fraction of its non-blank parts (lines or paragraphs) that repeat an earlier part,
    and the fraction of characters in them. NaN for ``skip`` documents."""
    flat = parts.flatten()
    offsets = parts.offsets.to_numpy().astype(np.int64)
    offsets -= offsets[0]
    doc = np.repeat(np.arange(n_docs), np.diff(offsets))
    keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(flat)), 0).to_numpy(zero_copy_only=False)
    ids = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    length = pc.utf8_length(flat).to_numpy(zero_copy_only=False).astype(np.int64)
    doc, ids, length = doc[keep], ids[keep], length[keep]
    dup = ~_first_in_doc(doc, ids)
    count = np.bincount(doc, minlength=n_docs)
    chars = np.bincount(doc, weights=length, minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(count > 0, np.bincount(doc, weights=dup, minlength=n_docs) / np.maximum(count, 1), 0.0)
        char_frac = np.where(chars > 0, np.bincount(doc, weights=dup * length, minlength=n_docs) /
                             np.maximum(chars, 1), 0.0)
    frac[skip], char_frac[skip] = np.nan, np.nan
    return frac, char_frac


def _ngram_keys(word_ids: np.ndarray, doc: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit key per window start ``i`` (for ``i < len - n + 1``): the n-gram of word ids, tagged by document."""
    m = len(word_ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(1_000_003) + word_ids[k: k + m].astype(np.uint64) + np.uint64(1)
        h ^= doc[:m].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return h


def repetition(word_ids: np.ndarray, word_len: np.ndarray, offsets: np.ndarray, skip: np.ndarray,
               tops: list[int], dups: list[int]) -> dict[str, np.ndarray]:
    """Top-n-gram and duplicate-n-gram character fractions of every document of a batch at once.

    ``word_ids``/``word_len``: the batch's words flattened, ``offsets``: each document's words. A document's top
    n-gram is its most frequent one (ties: the longer); its share is count x characters / the document's word
    characters. The duplicate share counts each character covered by any n-gram occurring more than once."""
    n_docs = len(offsets) - 1
    n_words = len(word_ids)
    doc = np.repeat(np.arange(n_docs), np.diff(offsets))
    total = np.bincount(doc, weights=word_len, minlength=n_docs)
    safe_total = np.maximum(total, 1)
    cum = np.concatenate([[0], np.cumsum(word_len)])
    end_of = offsets[1:][doc] if n_words else np.zeros(0, np.int64)
    out: dict[str, np.ndarray] = {}
    repeated_prefix: np.ndarray | None = None  # per word: a duplicated dups[0]-gram starts here
    for n in sorted(set(tops) | set(dups)):
        if n_words < n:
            starts = np.zeros(0, np.int64)
        else:
            starts = np.flatnonzero((np.arange(n_words - n + 1) + n <= end_of[: n_words - n + 1])
                                    & ~skip[doc[: n_words - n + 1]])
        occ = np.zeros(len(starts), np.int64)
        if n in dups and n > min(dups) and repeated_prefix is not None:
            # a longer n-gram can only repeat where its leading shorter one does: count only those windows
            cand = np.flatnonzero(repeated_prefix[starts])
        else:
            cand = np.arange(len(starts))
        if len(cand):
            keys = _ngram_keys(word_ids, doc, n)[starts[cand]]
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            occ[cand] = counts[inverse]
        if n == min(dups):
            repeated_prefix = np.zeros(n_words + 1, dtype=bool)
            repeated_prefix[starts[occ > 1]] = True
        wdoc = doc[starts]
        chars = cum[starts + n] - cum[starts]
        if n in tops:
            best = np.zeros(n_docs)
            rep = occ > 1
            if rep.any():
                # most frequent per document, then the longest among those: sort and take the last per document
                order = np.lexsort((chars[rep], occ[rep], wdoc[rep]))
                d_sorted = wdoc[rep][order]
                last = np.ones(len(order), dtype=bool)
                last[:-1] = d_sorted[1:] != d_sorted[:-1]
                pick = order[last]
                best[wdoc[rep][pick]] = occ[rep][pick] * chars[rep][pick]
            col = best / safe_total
            col[skip] = np.nan
            out[f"q_top_{n}gram_ratio"] = col
        if n in dups:
            dstarts = starts[occ > 1]
            cover = np.bincount(dstarts, minlength=n_words + 1) - np.bincount(dstarts + n, minlength=n_words + 1)
            covered = np.cumsum(cover)[:n_words] > 0
            col = np.bincount(doc, weights=word_len * covered, minlength=n_docs) / safe_total
            col[skip] = np.nan
            out[f"q_dup_{n}gram_ratio"] = col
    return out


REPETITION_CHUNK_WORDS = 1 << 18
"""words per call of :func:`repetition`: its ~15 word-sized arrays stay near 32 MB whatever the batch size"""


def _repetition_in_chunks(word_ids: np.ndarray, word_len: np.ndarray, offsets: np.ndarray,
                          skip: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`repetition` over runs of whole documents of about ``REPETITION_CHUNK_WORDS`` words (the same values:
    every signal is per document)."""
    n_docs = len(offsets) - 1
    cuts = [0]
    while cuts[-1] < n_docs:
        target = offsets[cuts[-1]] + REPETITION_CHUNK_WORDS
        cuts.append(max(cuts[-1] + 1, min(n_docs, int(np.searchsorted(offsets, target, side="right")) - 1)))
    parts = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        w_lo, w_hi = offsets[lo], offsets[hi]
        parts.append(repetition(word_ids[w_lo:w_hi], word_len[w_lo:w_hi], offsets[lo:hi + 1] - w_lo, skip[lo:hi],
                                sorted(TOP_NGRAMS), sorted(DUP_NGRAMS)))
    if not parts:
        return repetition(word_ids, word_len, offsets, skip, sorted(TOP_NGRAMS), sorted(DUP_NGRAMS))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class Quality(MapStep):
    name = "quality"
    Params = QualityParams
    columns = _COLUMNS
    histograms = {"q_words": [10, 50, 100, 300, 1000, 3000, 10000, 100000],
                  "q_mean_word_length": [2, 3, 4, 5, 6, 8, 10, 15],
                  "q_alpha_words_ratio": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
                  "q_dup_lines_ratio": [0.05, 0.1, 0.2, 0.3, 0.5],
                  "q_top_2gram_ratio": [0.05, 0.1, 0.15, 0.2, 0.3],
                  "q_dup_5gram_ratio": [0.05, 0.1, 0.15, 0.2, 0.3, 0.5]}

    def __init__(self, params: QualityParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self._rule_sets: dict[str, GopherRules | None] = {}
        self._stop_sets: dict[str, pa.Array | None] = {}

    def rule_set(self, key: str) -> GopherRules | None:
        """The rules of language (or ``code``) ``key``, or None when its documents pass unjudged."""
        if key not in self._rule_sets:
            self._rule_sets[key] = self.params.rules(key)
        return self._rule_sets[key]

    def _stop_set(self, key: str) -> pa.Array | None:
        if key not in self._stop_sets:
            rules = self.rule_set(key)
            listed = rules.stop_words if rules is not None and rules.stop_words is not None else wordlib.stop_words(key)
            self._stop_sets[key] = (None if listed is None
                                    else pa.array(sorted({w.lower() for w in listed}), pa.string()))
        return self._stop_sets[key]

    def languages_of(self, batch: pa.Table) -> np.ndarray:
        """Per document, the key of the rule set that applies: its ``lang`` (or the ``lang`` param where it has
        none), ``code`` for a code document; None when neither is known."""
        p: QualityParams = self.params
        n = batch.num_rows
        if "lang" in batch.column_names:
            lang = batch["lang"] if p.lang is None else pc.fill_null(batch["lang"], p.lang)
            keys = np.asarray(lang.to_pylist(), dtype=object)
        else:
            keys = np.full(n, p.lang, dtype=object)
        if "domain" in batch.column_names:
            if "source" in batch.column_names:
                keys[code_mask(batch, p.code_domains)] = CODE
            elif p.code_domains:
                keys[pc.is_in(batch["domain"], value_set=pa.array(p.code_domains, pa.string()))
                     .to_numpy(zero_copy_only=False)] = CODE
        return keys

    def _words(self, text: pa.Array, keys: np.ndarray, judged: np.ndarray) -> pa.ListArray:
        """Each document's words: whitespace-separated, or a segmenter's (:mod:`curate.words`); none for a document
        that is not judged."""
        seg = judged & np.fromiter((k is not None and wordlib.is_segmented(k) for k in keys), bool, len(keys))
        spaced = judged & ~seg
        text_ws = text if spaced.all() else pc.if_else(pa.array(spaced), text, pa.scalar("", pa.string()))
        words_l = pc.utf8_split_whitespace(text_ws)
        if not seg.any():
            return words_l
        rows = np.flatnonzero(seg)
        texts = pc.take(text, pa.array(rows)).to_pylist()
        found: list[list[str]] = [[] for _ in rows]
        for lang in sorted(set(keys[rows])):
            sel = np.flatnonzero(keys[rows] == lang)
            for j, ws in zip(sel, wordlib.segment(lang, [texts[j] for j in sel])):
                found[j] = ws
        n = len(text)
        order = np.arange(n)
        order[rows] = n + np.arange(len(rows))
        both = pa.concat_arrays([words_l, pa.array(found, type=words_l.type)])
        return pc.take(both, pa.array(order))

    def _stop_word_hits(self, lower: pa.Array, word_doc: np.ndarray, key_index: np.ndarray,
                        keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per word: whether it is on its document's stop-word list; per document: whether it has a list."""
        hits = np.zeros(len(lower), dtype=bool)
        has_list = np.zeros(len(keys), dtype=bool)
        for k, key in enumerate(keys):
            stops = self._stop_set(key)
            if stops is None:
                continue
            has_list[k] = True
            if len(keys) == 1:
                hits = pc.is_in(lower, value_set=stops).to_numpy(zero_copy_only=False)
                hits &= key_index[word_doc] == k
            else:
                sel = np.flatnonzero(key_index[word_doc] == k)
                hits[sel] = pc.is_in(pc.take(lower, pa.array(sel)), value_set=stops).to_numpy(zero_copy_only=False)
        return hits, np.append(has_list, False)[np.where(key_index >= 0, key_index, len(keys))]

    def annotate(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        langs = self.languages_of(batch)
        keys = sorted({k for k in langs if k is not None and self.rule_set(k) is not None})
        key_index = pc.fill_null(pc.index_in(pa.array(langs.tolist(), pa.string()),
                                             value_set=pa.array(keys, pa.string())), -1).to_numpy().astype(np.int64)
        judged = key_index >= 0
        text = batch["text"].combine_chunks()
        if not judged.all():
            text = pc.if_else(pa.array(judged), text, pa.scalar("", pa.string()))
        words_l = self._words(text, langs, judged)
        words = words_l.flatten()
        w_off = words_l.offsets.to_numpy().astype(np.int64)
        w_off -= w_off[0]
        n_words = np.diff(w_off)
        word_doc = np.repeat(np.arange(n), n_words)
        word_len = pc.utf8_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
        safe_words = np.maximum(n_words, 1)
        mean_len = _per_doc_sum(word_len, w_off) / safe_words
        symbols = (pc.count_substring(text, "#").to_numpy(zero_copy_only=False)
                   + pc.count_substring(text, "...").to_numpy(zero_copy_only=False)
                   + pc.count_substring(text, "…").to_numpy(zero_copy_only=False))
        alpha = pc.match_substring_regex(words, r"\pL").to_numpy(zero_copy_only=False)
        lower = pc.utf8_lower(words)
        stop, has_list = self._stop_word_hits(lower, word_doc, key_index, keys)
        hit = np.flatnonzero(stop)
        hit_ids = pc.dictionary_encode(pc.take(lower, pa.array(hit))).indices
        distinct = _first_in_doc(word_doc[hit], hit_ids.to_numpy(zero_copy_only=False).astype(np.int64))
        distinct_stops = np.bincount(word_doc[hit][distinct], minlength=n)

        lines_l = pc.split_pattern(text, "\n")
        lines = lines_l.flatten()
        l_off = lines_l.offsets.to_numpy().astype(np.int64)
        l_off -= l_off[0]
        stripped = pc.utf8_trim_whitespace(lines)
        bullet = pc.match_substring_regex(stripped, r"^[•\-*·●▪◦‣⁃]").to_numpy(zero_copy_only=False)
        ellipsis = pc.match_substring_regex(stripped, r"(\.\.\.|…)$").to_numpy(zero_copy_only=False)
        n_lines = np.maximum(np.diff(l_off), 1)

        cols: dict[str, np.ndarray] = {
            "q_words": n_words.astype(np.float64),
            "q_mean_word_length": mean_len,
            "q_symbol_word_ratio": symbols / safe_words,
            "q_bullet_lines_ratio": _per_doc_sum(bullet, l_off) / n_lines,
            "q_ellipsis_lines_ratio": _per_doc_sum(ellipsis, l_off) / n_lines,
            "q_alpha_words_ratio": _per_doc_sum(alpha, w_off) / safe_words,
            "q_stop_words": np.where(has_list, distinct_stops, np.nan),
        }
        max_words = self._thresholds(key_index, keys, "max_words")
        with np.errstate(invalid="ignore"):
            skip = ~judged | (n_words > max_words)
        cols["q_dup_lines_ratio"], cols["q_dup_line_chars_ratio"] = dup_fractions(lines_l, n, skip)
        paras = pc.split_pattern(text, "\n\n")
        cols["q_dup_paras_ratio"], cols["q_dup_para_chars_ratio"] = dup_fractions(paras, n, skip)
        word_ids = pc.dictionary_encode(words).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        cols.update(_repetition_in_chunks(word_ids, word_len, w_off, skip))
        applied = np.where(judged, langs, None)
        batch = batch.append_column("q_rules", pa.array(applied.tolist(), pa.string()))
        for name, values in cols.items():
            values = np.where(judged, values, np.nan)
            arr = pa.array(values.astype(_COLUMNS[name].to_pandas_dtype()) if name not in ("q_words", "q_stop_words")
                           else values, from_pandas=True).cast(_COLUMNS[name])
            batch = batch.append_column(name, arr)
        return batch

    def _thresholds(self, key_index: np.ndarray, keys: list[str], attr: str, n: int | None = None) -> np.ndarray:
        """Per document, the threshold ``attr`` (for n-gram rules: its entry ``n``) of its rule set; NaN where
        the rule is off or the document is not judged."""
        values = []
        for key in keys:
            v = getattr(self.rule_set(key), attr)
            if n is not None:
                v = (v or {}).get(n)
            values.append(np.nan if v is None else float(v))
        return np.asarray([*values, np.nan], dtype=np.float64)[np.where(key_index >= 0, key_index, len(keys))]

    def decide(self, batch: pa.Table) -> pa.Array:
        applied = batch["q_rules"].combine_chunks()
        keys = sorted(pc.unique(applied).drop_null().to_pylist())
        key_index = pc.fill_null(pc.index_in(applied, value_set=pa.array(keys, pa.string())), -1) \
            .to_numpy().astype(np.int64)

        def col(name: str) -> np.ndarray:
            return batch[name].to_numpy().astype(np.float64)

        rules: list[tuple[str, np.ndarray]] = []

        def rule(reason: str, attr: str, column: str, below: bool, n: int | None = None) -> None:
            threshold = self._thresholds(key_index, keys, attr, n)
            if np.isnan(threshold).all():
                return
            c = col(column)
            with np.errstate(invalid="ignore"):
                rules.append((reason, (c < threshold) if below else (c > threshold)))

        for reason, attr, column, below in _RULES:
            rule(reason, attr, column, below)
        for n in sorted(TOP_NGRAMS):
            rule(f"top_{n}gram", "max_top_ngram_chars_ratio", f"q_top_{n}gram_ratio", False, n)
        for n in sorted(DUP_NGRAMS):
            rule(f"dup_{n}gram", "max_dup_ngram_chars_ratio", f"q_dup_{n}gram_ratio", False, n)

        out = np.full(batch.num_rows, None, dtype=object)
        for reason, mask in reversed(rules):
            out[mask] = reason
        return pa.array(out.tolist(), pa.string())

    def notes(self, batch: pa.Table) -> dict[str, int]:
        """Documents that passed unjudged, by language: ``{"no_rules:ko": 3, "no_rules:unknown": 1}``."""
        unjudged = pc.is_null(batch["q_rules"]).to_numpy(zero_copy_only=False)
        if not unjudged.any():
            return {}
        found, counts = np.unique([str(k) if k is not None else "unknown"
                                   for k in self.languages_of(batch)[unjudged]], return_counts=True)
        return {f"no_rules:{k}": int(c) for k, c in zip(found, counts)}
