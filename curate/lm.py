"""KenLM language models as CCNet builds and uses them (Wenzek et al. 2020).

Training (`curate lm train`): text -> CCNet normalization -> a SentencePiece model trained on it -> the text
tokenized into pieces -> ``lmplz`` (modified Kneser-Ney, order ``n``) -> ``build_binary``. The model directory holds
``sp.model``, ``lm.binary``, ``model.json`` and a model card ``README.md``.

Scoring: a document's perplexity is CCNet's: every non-empty line is normalized and tokenized, scored with
sentence boundaries, and ``ppl = 10 ** (-sum(log10 p) / sum(tokens + 1))`` over the document's lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.models import kenlm_tool
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

    def perplexity(self, texts: list[str] | pa.Array) -> np.ndarray:
        """CCNet document perplexity per text; NaN for a text with no non-empty line."""
        arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
        lines, offsets = split_lines(arr)
        norm = normalize_for_lm(lines).to_pylist()
        pieces = self.sp.encode(norm, out_type=str)
        score = np.zeros(len(norm))
        length = np.zeros(len(norm))
        for i, (line, toks) in enumerate(zip(norm, pieces)):
            if line:
                score[i] = self.lm.score(" ".join(toks), bos=True, eos=True)
                length[i] = len(toks) + 1
        csum_s = np.concatenate([[0.0], np.cumsum(score)])
        csum_l = np.concatenate([[0.0], np.cumsum(length)])
        doc_s = csum_s[offsets[1:]] - csum_s[offsets[:-1]]
        doc_l = csum_l[offsets[1:]] - csum_l[offsets[:-1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(doc_l > 0, 10.0 ** (-doc_s / np.maximum(doc_l, 1)), np.nan)


def input_texts(inputs: Iterable[Path], domain: str | None = None) -> Iterator[pa.Array]:
    """Text batches from files (jsonl[.gz|.zst], parquet: field ``text``; anything else: one document per line,
    lines split at line feeds only) or from built corpora (a directory with manifest.json; only ``domain`` when
    given). Records that cannot be read or are over the default ``max_doc_bytes`` are skipped with a warning that
    counts them."""
    from curate.readers import Unit, read_unit
    from curate.recipe import Source, infer_format

    for path in inputs:
        if path.is_dir():
            if not (path / "manifest.json").exists():
                raise ConfigError(f"{path}: a directory input must be a corpus built by `curate run`")
            import pyarrow.parquet as pq

            root = path / "data" / domain if domain else path / "data"
            for f in sorted(root.rglob("*.parquet")):
                for rb in pq.ParquetFile(f).iter_batches(columns=["text"]):
                    yield rb.column(0)
            continue
        if not path.is_file():
            raise ConfigError(f"{path}: no such file or corpus directory")
        fmt = infer_format(path) or "lines"
        source = Source(path=str(path), format=fmt, domain="input")
        skipped = 0
        for docs, errors, removed in read_unit(Unit(0, 0, source, [path], [path.name]), 10_000):
            skipped += errors.num_rows + removed.num_rows
            if docs.num_rows:
                yield docs["text"].combine_chunks()
        if skipped:
            log.warning(f"{path}: {skipped:,} records skipped (unreadable, or over {source.max_doc_bytes:,} bytes)")


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output directory that cannot be one: ``out`` or one of its parents is an
    existing file. Raises ConfigError naming ``flag`` and the file."""
    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "exists and is not a directory" if p == out else f"cannot be created: {p} is a file"
                raise ConfigError(f"{flag} {out}: {where}; give a directory")
            return


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


def train(inputs: list[Path], out: Path, lang: str, order: int = 5, vocab_size: int = 16_000,
          prune: list[int] | None = None, domain: str | None = None, max_lines: int = 5_000_000) -> dict[str, Any]:
    """Train SentencePiece + KenLM on ``inputs`` into ``out``; returns the model card data.

    Raises ConfigError, before any work, for an order outside 2..8, a vocabulary under 4 pieces, ``prune``
    thresholds KenLM rejects (:func:`check_prune`), a missing input or domain (:func:`check_inputs`), an ``out``
    that cannot be a directory, or too little text; RunError when SentencePiece or KenLM fails."""
    import sentencepiece as spm

    if order < 2 or order > 8:
        raise ConfigError(f"--order must be between 2 and 8 (got {order})")
    if vocab_size < 4:
        raise ConfigError(f"--vocab-size {vocab_size}: must be at least 4 (3 special pieces and the characters)")
    check_prune(prune, order)
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
        log.info(f"lm train: {n_lines:,} lines, {n_chars / 1e6:.1f} M characters; training SentencePiece")
        try:
            spm.SentencePieceTrainer.train(input=str(text_file), model_prefix=str(tmp / "sp"), vocab_size=vocab_size,
                                           model_type="unigram", character_coverage=0.9999, hard_vocab_limit=False,
                                           input_sentence_size=2_000_000, shuffle_input_sentence=True,
                                           max_sentence_length=1 << 17,
                                           num_threads=os.cpu_count() or 1, minloglevel=2)
        except RuntimeError as e:
            raise _sentencepiece_error(e, vocab_size) from None
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
            "prune": prune or [], "discount_fallback": True,
            "data": {"inputs": [str(p) for p in inputs], "domain": domain, "lines": n_lines, "characters": n_chars,
                     "tokens": n_tokens},
            "size_bytes": {"lm.binary": (out / "lm.binary").stat().st_size, "sp.model": (out / "sp.model").stat().st_size},
            "normalization": "CCNet: lowercase, accents removed, digits->0, unicode punctuation->ASCII",
            "seconds": round(time.time() - started, 1)}
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_card_text(card), encoding="utf-8")
    return card


def _sentencepiece_error(e: RuntimeError, vocab_size: int) -> MixlabError:
    """SentencePiece's refusal as one line: a vocabulary smaller than the text's characters is the user's to fix."""
    m = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(e))
    if m:
        return ConfigError(f"--vocab-size {vocab_size}: the text has {int(m.group(2)) - 3:,} distinct characters "
                           f"(99.99% coverage), so the vocabulary needs at least {m.group(2)} pieces; use "
                           f"--vocab-size {m.group(2)} or more (text in Chinese or Japanese needs several thousand)")
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
        f"- SentencePiece unigram, {card['vocab_size']} pieces (`sp.model`)",
        f"- Training text: {d['lines']:,} lines, {d['characters']:,} characters, {d['tokens']:,} tokens from "
        + ", ".join(f"`{x}`" for x in d["inputs"]) + (f" (domain {d['domain']})" if d["domain"] else ""),
        f"- Normalization: {card['normalization']}",
        "- Built with `curate lm train`; perplexity as CCNet computes it (see curate/lm.py).", ""])
