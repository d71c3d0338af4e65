"""KenLM language models as CCNet builds and uses them (Wenzek et al. 2020).

Training (`curate lm train`): text -> CCNet normalization -> a SentencePiece model trained on it -> the text
tokenized into pieces -> ``lmplz`` (modified Kneser-Ney, order ``n``) -> ``build_binary``. The model directory holds
``sp.model``, ``lm.binary``, ``model.json`` and a model card ``README.md``.

Training defaults follow the amount of text (``auto_vocab_size``, ``auto_order``, ``AUTO_PRUNE``).

Scoring: a document's perplexity is CCNet's: every non-empty line is normalized and tokenized, scored with
sentence boundaries, and ``ppl = 10 ** (-sum(log10 p) / sum(tokens + 1))`` over the document's lines. The per-line
scores (``LineScores``) also give each line's own perplexity, their character-weighted quantiles and the line-aware
score of the ``perplexity`` step's ``score: lines``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.models import kenlm_tool
from curate.readers import input_texts
from mixlab.errors import ConfigError, MixlabError, RunError
from mixlab.logs import log

# CCNet's text_normalizer.unicode_punct
UNICODE_PUNCT = {"，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
                 "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
                 "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...",
                 "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-"}


def normalize_for_lm(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """CCNet's ``normalize``: lowercase, accents removed, digits -> 0, Unicode punctuation -> ASCII, non-printing
    characters removed, ends trimmed. Vectorized Arrow compute."""
    t = pc.utf8_trim_whitespace(lines)
    t = pc.utf8_lower(t)
    t = pc.utf8_normalize(t, form="NFD")
    t = pc.replace_substring_regex(t, r"\p{Mn}", "")
    t = pc.replace_substring_regex(t, r"\p{Nd}", "0")  # every script's digits, as Python's \d in CCNet
    for src, dst in UNICODE_PUNCT.items():
        t = pc.replace_substring(t, src, dst)
    return pc.replace_substring_regex(t, r"[\p{Cc}\p{Cf}]", "")


def split_lines(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Flatten documents into lines; ``offsets[d]:offsets[d+1]`` are the lines of document ``d``."""
    lists = pc.split_pattern(texts, "\n")
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return lists.flatten(), offsets - offsets[0]


class LanguageModel:
    """A trained model directory, loaded for scoring."""

    def __init__(self, directory: Path) -> None:
        import kenlm
        import sentencepiece as spm

        self.dir = directory
        for name in ("sp.model", "lm.binary"):
            if not (directory / name).is_file():
                raise ConfigError(f"{directory}: not a mixlab KenLM model ({name} is missing; build one with "
                                  "`curate lm train`)")
        self.sp = spm.SentencePieceProcessor(model_file=str(directory / "sp.model"))
        self.lm = kenlm.Model(str(directory / "lm.binary"))

    def line_scores(self, texts: list[str] | pa.Array | pa.ChunkedArray) -> "LineScores":
        """KenLM log10 probability, piece count and length of every line of every text (CCNet: each non-empty
        line normalized, tokenized and scored with sentence boundaries)."""
        arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
        lines, offsets = split_lines(arr)
        norm = normalize_for_lm(lines).to_pylist()
        pieces = self.sp.encode(norm, out_type=str)
        score = np.zeros(len(norm))
        tokens = np.zeros(len(norm), dtype=np.int64)
        chars = np.zeros(len(norm), dtype=np.int64)
        for i, (line, toks) in enumerate(zip(norm, pieces)):
            if line:
                score[i] = self.lm.score(" ".join(toks), bos=True, eos=True)
                tokens[i] = len(toks) + 1
                chars[i] = len(line)
        return LineScores(score, tokens, chars, offsets)

    def perplexity(self, texts: list[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """CCNet document perplexity per text; NaN for a text with no non-empty line."""
        return self.line_scores(texts).document_perplexity()


@dataclass(frozen=True)
class LineScores:
    """Per-line scores of a batch of documents; the lines of document ``d`` are ``offsets[d]:offsets[d + 1]``.

    ``log10_prob`` (float64, one per line): the sum of log10 p over the line's pieces and ``</s>``, 0 for a line
    that is empty after normalization; ``tokens`` (int64): pieces + 1, 0 for an empty line; ``chars`` (int64):
    characters of the normalized line; ``offsets`` (int64, documents + 1)."""

    log10_prob: np.ndarray
    tokens: np.ndarray
    chars: np.ndarray
    offsets: np.ndarray

    def _per_document(self, values: np.ndarray) -> np.ndarray:
        csum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
        return csum[self.offsets[1:]] - csum[self.offsets[:-1]]

    def document_perplexity(self) -> np.ndarray:
        """CCNet's ``10 ** (-sum(log10 p) / sum(tokens + 1))`` over a document's lines; NaN without a scored line."""
        s, n = self._per_document(self.log10_prob), self._per_document(self.tokens)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(n > 0, 10.0 ** (-s / np.maximum(n, 1)), np.nan)

    def line_perplexity(self) -> np.ndarray:
        """Perplexity of every line on its own; NaN for an empty line."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(self.tokens > 0, 10.0 ** (-self.log10_prob / np.maximum(self.tokens, 1)), np.nan)

    def line_quantile(self, q: float) -> np.ndarray:
        """Per document, the character-weighted ``q``-quantile of its lines' perplexities: the smallest line
        perplexity ``v`` such that lines with perplexity <= ``v`` hold at least a share ``q`` (0 < q <= 1) of the
        document's scored characters. NaN for a document without a scored line."""
        if not 0 < q <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {q}")
        ppl = self.line_perplexity()
        doc = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
        scored = self.tokens > 0
        ppl, doc, w = ppl[scored], doc[scored], self.chars[scored].astype(np.float64)
        order = np.lexsort((ppl, doc))
        ppl, doc, w = ppl[order], doc[order], w[order]
        out = np.full(len(self.offsets) - 1, np.nan)
        if not len(doc):
            return out
        starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
        sizes = np.diff(np.r_[starts, len(doc)])
        cum = np.cumsum(w)
        within = cum - np.repeat(cum[starts] - w[starts], sizes)
        total = np.repeat(within[starts + sizes - 1], sizes)
        below = np.add.reduceat((within < q * total * (1 - 1e-12)).astype(np.int64), starts)
        out[doc[starts]] = ppl[starts + below]
        return out

    def line_aware_perplexity(self, quantile: float, weight: float) -> np.ndarray:
        """``document_perplexity ** (1 - weight) * line_quantile(quantile) ** weight``: CCNet's document perplexity
        pulled toward the perplexity of the document's most fluent lines (with ``quantile`` 0.25: the lines holding
        its best quarter of characters). A page of menus and captions has no fluent lines to pull it down; an
        article whose short header, byline and caption lines raise its perplexity has. Measured in
        ``benchmarks/perplexity.py`` (news vs junk ROC AUC); 0 < weight <= 1."""
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        with np.errstate(invalid="ignore"):
            return self.document_perplexity() ** (1 - weight) * self.line_quantile(quantile) ** weight


MODEL_FILES = ("sp.model", "lm.binary", "model.json", "README.md")
"""the files `curate lm train` writes into its output directory"""


def is_model_dir(directory: Path) -> bool:
    """Whether ``directory`` holds an earlier `curate lm train` output: its ``model.json`` is a JSON object with the
    keys that command writes (``order``, ``vocab_size``, ``size_bytes`` with ``lm.binary``)."""
    try:
        card = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(card, dict) and {"order", "vocab_size", "size_bytes"} <= card.keys()
            and isinstance(card["size_bytes"], dict) and "lm.binary" in card["size_bytes"])


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output directory that cannot be one: ``out`` or one of its parents is an
    existing file, or ``out`` is a non-empty directory that is not an earlier `curate lm train` output
    (:func:`is_model_dir`; such an output is replaced, only its :data:`MODEL_FILES`). Raises ConfigError naming
    ``flag`` and the file."""
    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "exists and is not a directory" if p == out else f"cannot be created: {p} is a file"
                raise ConfigError(f"{flag} {out}: {where}; give a directory")
            break
    if not out.is_dir() or is_model_dir(out):
        return
    present = sorted(e.name for e in out.iterdir() if not e.name.startswith(".train-"))
    if not present:
        return
    clash = [name for name in MODEL_FILES if name in present]
    what = (f"training would overwrite {out / clash[0]}" if clash else
            f"it already holds {out / present[0]}" + (f" and {len(present) - 1} more" if len(present) > 1 else ""))
    raise ConfigError(f"{flag} {out}: not a `curate lm train` output (no model.json of one) and not empty: {what}; "
                      "give a new or empty directory")


def _characters(n: int) -> str:
    """``n`` characters in words: exact below a million, else in millions (``3.4 M characters``)."""
    return f"{n:,} character{'' if n == 1 else 's'}" if n < 1_000_000 else f"{n / 1e6:.1f} M characters"


def check_prune(prune: list[int] | None, order: int) -> None:
    """Refuse ``lmplz --prune`` thresholds that KenLM rejects: they are counts (non-negative), one per order from
    unigrams up (at most ``order`` of them), and non-decreasing. Raises ConfigError."""
    if not prune:
        return
    given = " ".join(map(str, prune))
    if any(t < 0 for t in prune):
        raise ConfigError(f"--prune {given}: thresholds are n-gram counts, they cannot be negative")
    if len(prune) > order:
        raise ConfigError(f"--prune {given}: {len(prune)} thresholds for a {order}-gram model; give at most "
                          f"{order}, one per order from unigrams up (the last one applies to the higher orders)")
    if any(b < a for a, b in zip(prune, prune[1:])):
        raise ConfigError(f"--prune {given}: thresholds must not decrease from one order to the next (pruning a "
                          "lower order more would remove n-grams whose extensions are kept), e.g. 0 0 1")


def check_inputs(inputs: list[Path], domain: str | None = None, flag: str = "--input") -> None:
    """Refuse, before any work, an input that is neither a file nor a corpus directory, and a ``domain`` that some
    corpus input does not have (naming that corpus's domains) or that no corpus input could give. Raises
    ConfigError (RunError for a corpus whose manifest is damaged)."""
    from curate.integrity import read_manifest

    corpora = []
    for path in inputs:
        if path.is_dir():
            if not (path / "manifest.json").is_file():
                raise ConfigError(f"{flag} {path}: a directory input must be a corpus built by `curate run` "
                                  "(it has no manifest.json)")
            corpora.append(path)
        elif not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file or corpus directory")
    if domain is None:
        return
    if not corpora:
        raise ConfigError(f"--domain {domain}: only a corpus directory input has domains, and no {flag} is one")
    for corpus in corpora:
        domains = sorted(read_manifest(corpus / "manifest.json")["domains"])
        if domain not in domains:
            raise ConfigError(f"--domain {domain}: the corpus {corpus} has no such domain (its domains: "
                              f"{', '.join(domains) or 'none'})")


MAX_AUTO_VOCAB = 65_536
"""CCNet's SentencePiece vocabulary (Wenzek et al. 2020), trained on a whole Wikipedia: the ceiling of the rule"""
AUTO_PRUNE = [0, 0, 1]
"""``lmplz --prune`` when none is given: singletons dropped from trigrams up"""
HIGH_ORDER_CHARS = 20_000_000
"""from this many characters of text on, a 5-gram model (CCNet's order); below it a trigram model"""


def auto_vocab_size(n_chars: int) -> int:
    """SentencePiece vocabulary for ``n_chars`` characters of normalized text: ``8 * sqrt(n_chars)`` rounded to
    thousands, within [1,000, 65,536]. The square root follows Heaps' law (distinct words grow about as the square
    root of the text); the factor comes from ``benchmarks/perplexity.py`` on the shared Wikipedia text (news vs
    junk ROC AUC: on 1.0M characters 8k pieces tie the most SentencePiece builds and beat 4k; on 3.4M, 16k beats
    8k and ties the maximum); the ceiling is CCNet's."""
    return int(min(MAX_AUTO_VOCAB, max(1000, round(8 * n_chars ** 0.5, -3))))


def auto_order(n_chars: int) -> int:
    """n-gram order for ``n_chars`` characters: 3 below :data:`HIGH_ORDER_CHARS`, else CCNet's 5. On 3.4M
    characters 3-, 4- and 5-gram models separate news from junk equally well (``benchmarks/perplexity.py``); the
    trigram model is a third of the size."""
    return 3 if n_chars < HIGH_ORDER_CHARS else 5


def train(inputs: list[Path], out: Path, lang: str, order: int | None = None, vocab_size: int | None = None,
          prune: list[int] | None = None, domain: str | None = None, max_lines: int = 5_000_000) -> dict[str, Any]:
    """Train SentencePiece + KenLM on ``inputs`` into ``out``; returns the model card data.

    Defaults fit the amount of text: ``order`` from :func:`auto_order`, ``vocab_size`` from
    :func:`auto_vocab_size` (raised to what SentencePiece needs to cover the text's characters), ``prune``
    :data:`AUTO_PRUNE` (``[]`` prunes nothing); the card records each value and whether it was chosen or given.

    Raises ConfigError, before any work, for an order outside 2..8, a vocabulary under 4 pieces, ``prune``
    thresholds KenLM rejects (:func:`check_prune`), a missing input or domain (:func:`check_inputs`), an ``out``
    that cannot be a directory, or too little text; RunError when SentencePiece or KenLM fails."""
    import sentencepiece as spm

    if order is not None and (order < 2 or order > 8):
        raise ConfigError(f"--order must be between 2 and 8 (got {order})")
    if vocab_size is not None and vocab_size < 4:
        raise ConfigError(f"--vocab-size {vocab_size}: must be at least 4 (3 special pieces and the characters)")
    check_prune(prune, order or 8)
    if order is None and prune and len(prune) > 3:
        raise ConfigError(f"--prune {' '.join(map(str, prune))}: {len(prune)} thresholds need --order {len(prune)} "
                          "or more (without --order, text under 20M characters gets a 3-gram model)")
    chosen = {"order": "given" if order is not None else "auto",
              "vocab_size": "given" if vocab_size is not None else "auto",
              "prune": "given" if prune is not None else "auto"}
    check_out_dir(out)
    check_inputs(inputs, domain)
    lmplz, build_binary = kenlm_tool("lmplz"), kenlm_tool("build_binary")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(dir=out, prefix=".train-") as tmp_dir:
        tmp = Path(tmp_dir)
        text_file = tmp / "normalized.txt"
        n_lines = n_chars = 0
        with open(text_file, "w", encoding="utf-8") as f:
            for batch in input_texts(inputs, domain):
                lines, _ = split_lines(batch)
                for line in normalize_for_lm(lines).to_pylist():
                    if line and n_lines < max_lines:
                        f.write(line + "\n")
                        n_lines += 1
                        n_chars += len(line)
        if n_chars < 20_000:
            where = f" (domain {domain})" if domain else ""
            raise ConfigError(f"only {n_chars:,} characters of text in the inputs{where}; a language model needs "
                              "at least 20,000")
        order = order if order is not None else auto_order(n_chars)
        vocab_size = vocab_size if vocab_size is not None else auto_vocab_size(n_chars)
        prune = prune if prune is not None else AUTO_PRUNE[:order]
        why = ", from the text size" if chosen["vocab_size"] == "auto" else ""
        log.info(f"lm train: {n_lines:,} line{'' if n_lines == 1 else 's'}, {_characters(n_chars)}; training "
                 f"SentencePiece ({vocab_size:,} pieces{why})")
        try:
            _train_sentencepiece(text_file, tmp / "sp", vocab_size)
        except RuntimeError as e:
            needed = _required_pieces(e)
            if chosen["vocab_size"] != "auto" or needed is None:
                raise _sentencepiece_error(e, vocab_size) from None
            vocab_size = int(round(needed + 500, -3))
            log.info(f"lm train: the text's characters need {needed:,} pieces; training {vocab_size:,}")
            try:
                _train_sentencepiece(text_file, tmp / "sp", vocab_size)
            except RuntimeError as e2:
                raise _sentencepiece_error(e2, vocab_size) from None
        sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))
        tokens_file = tmp / "tokens.txt"
        n_tokens = 0
        with open(text_file, encoding="utf-8", newline="\n") as src, \
                open(tokens_file, "w", encoding="utf-8") as dst:
            chunk: list[str] = []
            for line in src:
                chunk.append(line.rstrip("\n"))
                if len(chunk) >= 10_000:
                    n_tokens += _write_pieces(sp, chunk, dst)
                    chunk = []
            n_tokens += _write_pieces(sp, chunk, dst)
        log.info(f"lm train: {n_tokens:,} tokens; estimating a {order}-gram model with lmplz")
        arpa = tmp / "lm.arpa"
        cmd = [str(lmplz), "-o", str(order), "-S", "20%", "-T", str(tmp), "--discount_fallback"]
        if prune:
            cmd += ["--prune", *map(str, prune)]
        _run(cmd, stdin=tokens_file, stdout=arpa)
        _run([str(build_binary), str(arpa), str(tmp / "lm.binary")])
        os.replace(tmp / "sp.model", out / "sp.model")
        os.replace(tmp / "lm.binary", out / "lm.binary")
    card = {"lang": lang, "order": order, "vocab_size": sp.get_piece_size(), "requested_vocab_size": vocab_size,
            "prune": prune or [], "settings": chosen, "discount_fallback": True,
            "data": {"inputs": [str(p) for p in inputs], "domain": domain, "lines": n_lines, "characters": n_chars,
                     "tokens": n_tokens},
            "size_bytes": {"lm.binary": (out / "lm.binary").stat().st_size, "sp.model": (out / "sp.model").stat().st_size},
            "normalization": "CCNet: lowercase, accents removed, digits->0, unicode punctuation->ASCII",
            "seconds": round(time.time() - started, 1)}
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_card_text(card), encoding="utf-8")
    return card


def _train_sentencepiece(text_file: Path, prefix: Path, vocab_size: int) -> None:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(input=str(text_file), model_prefix=str(prefix), vocab_size=vocab_size,
                                   model_type="unigram", character_coverage=0.9999, hard_vocab_limit=False,
                                   input_sentence_size=2_000_000, shuffle_input_sentence=True,
                                   max_sentence_length=1 << 17, num_threads=os.cpu_count() or 1, minloglevel=2)


def _required_pieces(e: RuntimeError) -> int | None:
    """The vocabulary SentencePiece says the text's characters need, from its refusal; None for other errors."""
    m = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(e))
    return int(m.group(2)) if m else None


def _sentencepiece_error(e: RuntimeError, vocab_size: int) -> MixlabError:
    """SentencePiece's refusal as one line: a vocabulary smaller than the text's characters is the user's to fix."""
    needed = _required_pieces(e)
    if needed is not None:
        return ConfigError(f"--vocab-size {vocab_size}: the text has {needed - 3:,} distinct characters "
                           f"(99.99% coverage), so the vocabulary needs at least {needed} pieces; use "
                           f"--vocab-size {needed} or more (text in Chinese or Japanese needs several thousand)")
    lines = str(e).strip().splitlines()
    return RunError(f"SentencePiece training failed: {lines[-1] if lines else type(e).__name__}")


def _write_pieces(sp: Any, lines: list[str], dst: Any) -> int:
    if not lines:
        return 0
    pieces = sp.encode(lines, out_type=str)
    dst.writelines(" ".join(p) + "\n" for p in pieces)
    return sum(len(p) for p in pieces)


def _run(cmd: list[str], stdin: Path | None = None, stdout: Path | None = None) -> None:
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as i, \
            open(stdout, "wb") if stdout else open(os.devnull, "wb") as o:
        proc = subprocess.run(cmd, stdin=i, stdout=o, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RunError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): " + " | ".join(tail))


def _card_text(card: dict[str, Any]) -> str:
    d = card["data"]
    return "\n".join([
        f"# KenLM model: {card['lang']}", "",
        f"- {card['order']}-gram modified Kneser-Ney (`lmplz --discount_fallback`"
        + (f" --prune {' '.join(map(str, card['prune']))}" if card["prune"] else "") + "), binary `lm.binary` "
        f"({card['size_bytes']['lm.binary'] / 1e6:.1f} MB)",
        f"- SentencePiece unigram, {card['vocab_size']} pieces (`sp.model`)", _settings_line(card),
        f"- Training text: {d['lines']:,} lines, {d['characters']:,} characters, {d['tokens']:,} tokens from "
        + ", ".join(f"`{x}`" for x in d["inputs"]) + (f" (domain {d['domain']})" if d["domain"] else ""),
        f"- Normalization: {card['normalization']}",
        "- Built with `curate lm train`; perplexity as CCNet computes it (see curate/lm.py).", ""])


def _settings_line(card: dict[str, Any]) -> str:
    auto = [k for k, v in card.get("settings", {}).items() if v == "auto"]
    if not auto:
        return "- Order, vocabulary and pruning as given"
    return (f"- Chosen from the amount of text ({', '.join(auto)}): vocabulary 8 x sqrt(characters) rounded to "
            "thousands within 1,000..65,536, order 3 below 20M characters (else 5), prune 0 0 1 (see curate/lm.py)")
