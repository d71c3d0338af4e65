"""`quality`: Gopher heuristic quality filters (Rae et al. 2021, "MassiveText" rules), defaults as in the paper.

Every signal is annotated as a ``q_*`` column for every document; ``decide`` removes a document for the first rule it
breaks, with that rule as the reason. A threshold set to ``null`` turns its rule off. Word-level signals are
vectorized Arrow compute; repetition signals use NumPy over per-batch word ids. Repetition is not computed for
documents over ``max_words`` (they are removed for length anyway), which bounds the cost of a 20 MB document.

Duplicate n-gram fractions count every character covered by an n-gram that occurs more than once in the document
(all occurrences), as the paper defines them.
"""

from __future__ import annotations

from collections import Counter

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


def _dup_fraction(parts: list[str]) -> tuple[float, float]:
    """Gopher: fraction of parts (lines or paragraphs) that repeat an earlier one, and of their characters."""
    parts = [p for p in parts if p.strip()]
    if not parts:
        return 0.0, 0.0
    seen: Counter[str] = Counter()
    dup, dup_chars, total_chars = 0, 0, 0
    for p in parts:
        total_chars += len(p)
        if seen[p]:
            dup += 1
            dup_chars += len(p)
        seen[p] += 1
    return dup / len(parts), dup_chars / max(total_chars, 1)


def _ngram_ids(ids: np.ndarray, n: int) -> np.ndarray:
    h = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(1_000_003) + ids[k: len(ids) - n + 1 + k].astype(np.uint64) + np.uint64(1)
    return h


def repetition(ids: np.ndarray, lengths: np.ndarray, tops: list[int], dups: list[int]) -> dict[str, float]:
    """Top-n-gram and duplicate-n-gram character fractions of one document's word ids."""
    out: dict[str, float] = {}
    total = float(lengths.sum()) or 1.0
    cum = np.concatenate([[0], np.cumsum(lengths)])
    for n in tops:
        if len(ids) < n:
            out[f"q_top_{n}gram_ratio"] = 0.0
            continue
        grams = _ngram_ids(ids, n)
        _, first, counts = np.unique(grams, return_index=True, return_counts=True)
        best = int(np.argmax(counts))
        start = first[best]
        out[f"q_top_{n}gram_ratio"] = float(counts[best] * (cum[start + n] - cum[start]) / total) \
            if counts[best] > 1 else 0.0
    for n in dups:
        if len(ids) < n:
            out[f"q_dup_{n}gram_ratio"] = 0.0
            continue
        grams = _ngram_ids(ids, n)
        _, inverse, counts = np.unique(grams, return_inverse=True, return_counts=True)
        starts = np.flatnonzero(counts[inverse] > 1)
        if not len(starts):
            out[f"q_dup_{n}gram_ratio"] = 0.0
            continue
        cover = np.zeros(len(ids) + 1, dtype=np.int32)
        np.add.at(cover, starts, 1)
        np.add.at(cover, starts + n, -1)
        covered = np.cumsum(cover[:-1]) > 0
        out[f"q_dup_{n}gram_ratio"] = float(lengths[covered].sum() / total)
    return out


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
        w_off = words_l.offsets.to_numpy()
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
        l_off = lines_l.offsets.to_numpy()
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
        rep_names = [c for c in _COLUMNS if c not in cols]
        rep = {c: np.full(n, np.nan, dtype=np.float32) for c in rep_names}
        word_ids = pc.dictionary_encode(words).indices.to_numpy(zero_copy_only=False)
        tops, dups = sorted(TOP_NGRAMS), sorted(DUP_NGRAMS)
        max_words = self.params.max_words
        texts = text.to_pylist()
        for d in range(n):
            if max_words is not None and n_words[d] > max_words:
                continue
            t = texts[d]
            rep["q_dup_lines_ratio"][d], rep["q_dup_line_chars_ratio"][d] = _dup_fraction(t.split("\n"))
            rep["q_dup_paras_ratio"][d], rep["q_dup_para_chars_ratio"][d] = _dup_fraction(t.split("\n\n"))
            a, b = w_off[d], w_off[d + 1]
            for k, v in repetition(word_ids[a:b], word_len[a:b], tops, dups).items():
                rep[k][d] = v
        cols.update(rep)
        for name, values in cols.items():
            arr = pa.array(values, type=_COLUMNS[name], from_pandas=True)
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
