"""`quality`: Gopher heuristic quality filters (Rae et al. 2021, "MassiveText" rules), defaults as in the paper.

Every signal is annotated as a ``q_*`` column for every document; ``decide`` removes a document for the first rule it
breaks, with that rule as the reason. A threshold set to ``null`` turns its rule off. Word-level signals are
vectorized Arrow compute; repetition signals use NumPy over per-batch word ids. Repetition is not computed for
documents over ``max_words`` (they are removed for length anyway), which bounds the cost of a 20 MB document.

Duplicate n-gram fractions count every character covered by an n-gram that occurs more than once in the document
(all occurrences), as the paper defines them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationInfo, field_validator

from curate.steps.base import MapStep, StepParams

STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
TOP_NGRAMS = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAMS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


class QualityParams(StepParams):
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = Field(default=2, description="Gopher's English stop words; null for other languages")
    max_dup_lines_ratio: float | None = 0.3
    max_dup_line_chars_ratio: float | None = 0.2
    max_dup_paras_ratio: float | None = 0.3
    max_dup_para_chars_ratio: float | None = 0.2
    max_top_ngram_chars_ratio: dict[int, float] | None = Field(default_factory=lambda: dict(TOP_NGRAMS))
    max_dup_ngram_chars_ratio: dict[int, float] | None = Field(default_factory=lambda: dict(DUP_NGRAMS))

    @field_validator("max_top_ngram_chars_ratio", "max_dup_ngram_chars_ratio")
    @classmethod
    def _known_n(cls, v: dict[int, float] | None, info: ValidationInfo) -> dict[int, float] | None:
        allowed = TOP_NGRAMS if info.field_name == "max_top_ngram_chars_ratio" else DUP_NGRAMS
        bad = sorted(set(v or {}) - set(allowed))
        if bad:
            raise ValueError(f"n must be one of {sorted(allowed)}, got {bad}")
        return v


_f32, _i32 = pa.float32(), pa.int32()
_COLUMNS = {"q_words": _i32, "q_mean_word_length": _f32, "q_symbol_word_ratio": _f32,
            "q_bullet_lines_ratio": _f32, "q_ellipsis_lines_ratio": _f32, "q_alpha_words_ratio": _f32,
            "q_stop_words": _i32, "q_dup_lines_ratio": _f32, "q_dup_line_chars_ratio": _f32,
            "q_dup_paras_ratio": _f32, "q_dup_para_chars_ratio": _f32}
_COLUMNS.update({f"q_top_{n}gram_ratio": _f32 for n in TOP_NGRAMS})
_COLUMNS.update({f"q_dup_{n}gram_ratio": _f32 for n in DUP_NGRAMS})


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

    def annotate(self, batch: pa.Table) -> pa.Table:
        text = batch["text"].combine_chunks()
        n = len(text)
        words_l = pc.utf8_split_whitespace(text)
        words = words_l.flatten()
        w_off = words_l.offsets.to_numpy().astype(np.int64)
        w_off -= w_off[0]
        n_words = np.diff(w_off)
        word_len = pc.utf8_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
        safe_words = np.maximum(n_words, 1)
        mean_len = _per_doc_sum(word_len, w_off) / safe_words
        symbols = (pc.count_substring(text, "#").to_numpy(zero_copy_only=False)
                   + pc.count_substring(text, "...").to_numpy(zero_copy_only=False)
                   + pc.count_substring(text, "…").to_numpy(zero_copy_only=False))
        alpha = pc.match_substring_regex(words, r"\pL").to_numpy(zero_copy_only=False)
        lower = pc.utf8_lower(words)
        stop = pc.is_in(lower, value_set=pa.array(STOP_WORDS)).to_numpy(zero_copy_only=False)

        lines_l = pc.split_pattern(text, "\n")
        lines = lines_l.flatten()
        l_off = lines_l.offsets.to_numpy().astype(np.int64)
        l_off -= l_off[0]
        stripped = pc.utf8_trim_whitespace(lines)
        bullet = pc.match_substring_regex(stripped, r"^[•\-*·●▪◦‣⁃]").to_numpy(zero_copy_only=False)
        ellipsis = pc.match_substring_regex(stripped, r"(\.\.\.|…)$").to_numpy(zero_copy_only=False)
        n_lines = np.maximum(np.diff(l_off), 1)

        cols: dict[str, np.ndarray] = {
            "q_words": n_words.astype(np.int32),
            "q_mean_word_length": mean_len.astype(np.float32),
            "q_symbol_word_ratio": (symbols / safe_words).astype(np.float32),
            "q_bullet_lines_ratio": (_per_doc_sum(bullet, l_off) / n_lines).astype(np.float32),
            "q_ellipsis_lines_ratio": (_per_doc_sum(ellipsis, l_off) / n_lines).astype(np.float32),
            "q_alpha_words_ratio": (_per_doc_sum(alpha, w_off) / safe_words).astype(np.float32),
            "q_stop_words": _per_doc_sum(stop, w_off).astype(np.int32),
        }
        skip = n_words > self.params.max_words if self.params.max_words is not None else np.zeros(n, bool)
        rep: dict[str, np.ndarray] = {}
        rep["q_dup_lines_ratio"], rep["q_dup_line_chars_ratio"] = dup_fractions(lines_l, n, skip)
        paras = pc.split_pattern(text, "\n\n")
        rep["q_dup_paras_ratio"], rep["q_dup_para_chars_ratio"] = dup_fractions(paras, n, skip)
        word_ids = pc.dictionary_encode(words).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        rep.update(_repetition_in_chunks(word_ids, word_len, w_off, skip))
        cols.update(rep)
        for name, values in cols.items():
            arr = pa.array(values.astype(_COLUMNS[name].to_pandas_dtype()), type=_COLUMNS[name], from_pandas=True)
            batch = batch.append_column(name, arr)
        return batch

    def decide(self, batch: pa.Table) -> pa.Array:
        p: QualityParams = self.params

        def col(name: str) -> np.ndarray:
            return batch[name].to_numpy().astype(np.float64)

        rules: list[tuple[str, np.ndarray]] = []

        def rule(reason: str, value: float | None, column: str, below: bool) -> None:
            if value is None:
                return
            c = col(column)
            with np.errstate(invalid="ignore"):
                rules.append((reason, (c < value) if below else (c > value)))

        rule("too_few_words", p.min_words, "q_words", True)
        rule("too_many_words", p.max_words, "q_words", False)
        rule("mean_word_length", p.min_mean_word_length, "q_mean_word_length", True)
        rule("mean_word_length", p.max_mean_word_length, "q_mean_word_length", False)
        rule("symbol_word_ratio", p.max_symbol_word_ratio, "q_symbol_word_ratio", False)
        rule("bullet_lines", p.max_bullet_lines_ratio, "q_bullet_lines_ratio", False)
        rule("ellipsis_lines", p.max_ellipsis_lines_ratio, "q_ellipsis_lines_ratio", False)
        rule("non_alpha_words", p.min_alpha_words_ratio, "q_alpha_words_ratio", True)
        rule("too_few_stop_words", p.min_stop_words, "q_stop_words", True)
        rule("dup_lines", p.max_dup_lines_ratio, "q_dup_lines_ratio", False)
        rule("dup_line_chars", p.max_dup_line_chars_ratio, "q_dup_line_chars_ratio", False)
        rule("dup_paras", p.max_dup_paras_ratio, "q_dup_paras_ratio", False)
        rule("dup_para_chars", p.max_dup_para_chars_ratio, "q_dup_para_chars_ratio", False)
        for n, v in sorted((p.max_top_ngram_chars_ratio or {}).items()):
            rule(f"top_{n}gram", v, f"q_top_{n}gram_ratio", False)
        for n, v in sorted((p.max_dup_ngram_chars_ratio or {}).items()):
            rule(f"dup_{n}gram", v, f"q_dup_{n}gram_ratio", False)

        out = np.full(batch.num_rows, None, dtype=object)
        for reason, mask in reversed(rules):
            out[mask] = reason
        return pa.array(out.tolist(), pa.string())
