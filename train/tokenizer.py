"""`train tokenizer`: SentencePiece BPE with byte fallback on a weight-respecting sample of a corpus, saved as a
directory `transformers.AutoTokenizer` loads.

Lossless by construction, through SentencePiece and through `AutoTokenizer` alike: no normalization rule, whitespace
kept as is, no dummy prefix (a leading space is the text's own, so it survives decoding, and encoding two strings one
after the other decodes to their concatenation), every byte representable (byte fallback), digits split.
`AutoTokenizer` and SentencePiece give the same ids, so the token cache (SentencePiece) and SFT/generation
(`AutoTokenizer`) encode alike; training checks both on the sample before it saves anything.

The sample takes from each domain in proportion to the mixture weight (the corpus's `mixture.json` unless weights
are given), spreading its picks evenly over the domain's documents; on a corpus smaller than the sample asked for,
the sample is as large as the corpus allows and a domain with fewer characters than its share is repeated (at most
4 times), so no domain's share is set by its size. Every line SentencePiece is given is shorter
than its ``max_sentence_length`` (longer lines, one-line documents included, are cut at whitespace) and there are
no more lines than it loads, so the characters reported per domain are the characters it trains on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mixlab.errors import ConfigError, RunError
from mixlab.logs import log
from train.config import weights_problem
from train.corpus import Corpus

SPECIAL = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
BYTE_PIECES = 256
MIN_VOCAB_SIZE = len(SPECIAL) + BYTE_PIECES + 1
MAX_SENTENCE_BYTES = 16_384
"""SentencePiece's ``max_sentence_length``: it silently skips longer input lines, so none is written."""
MAX_SAMPLE_LINES = 5_000_000
"""SentencePiece's ``input_sentence_size``: it loads at most this many lines, so no more are written."""
MARKER = "mixlab_tokenizer.json"
"""written into every --out of `train tokenizer`: a directory holding it may be replaced by another run"""
STAGING_PREFIX = ".tok-"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "vocab.txt")
ROUND_TRIP_PROBES = (" one leading space", "   leading run", "trailing  ", "a\tb\r\nc\n", "你好 🙂", "")
_WHITESPACE = b" \t\r\x0b\x0c"


def chunks(line: str, limit: int = MAX_SENTENCE_BYTES) -> Iterator[str]:
    """``line`` cut into pieces of at most ``limit`` UTF-8 bytes that join back to it: each cut falls before the last
    run of spaces or tabs that fits, else at the last character boundary that fits (text without spaces).
    ``limit`` must hold one character (at least 4 bytes), else ValueError."""
    if limit < 4:
        raise ValueError(f"chunk limit {limit}: a UTF-8 character takes up to 4 bytes")
    if len(line) * 4 <= limit:
        yield line
        return
    data = line.encode("utf-8")
    pos = 0
    while len(data) - pos > limit:
        end = pos + limit
        while (data[end] & 0xC0) == 0x80:  # never inside a character
            end -= 1
        window = data[pos:end]
        cut = max(window.rfind(b" "), window.rfind(b"\t"))
        while cut > 0 and window[cut - 1] in _WHITESPACE:
            cut -= 1
        if cut <= 0:
            cut = end - pos
        yield data[pos:pos + cut].decode("utf-8")
        pos += cut
    yield data[pos:].decode("utf-8")


def available_chars(corpus: Corpus, domain: str) -> int:
    """Characters of ``domain``'s documents a sample can take: every character but line feeds (paragraphs become
    lines). Reads the domain's text once."""
    import pyarrow.compute as pc

    n = 0
    for shard in corpus.shards(domain):
        for batch in corpus.batches(shard, ("text",)):
            text = batch.column(0)
            n += (pc.sum(pc.utf8_length(text)).as_py() or 0) - (pc.sum(pc.count_substring(text, "\n")).as_py() or 0)
    return n


MAX_REPEATS = 4
"""the most times a domain's text is repeated in a tokenizer sample to reach its share: up to 4 epochs of repeated
data are worth almost as much as new data (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models")"""


def sample_size(corpus: Corpus, shares: dict[str, float], total_chars: int) -> tuple[int, dict[str, int]]:
    """The characters of a sample with each domain at its share (``shares``: domain -> fraction, summing to 1):
    ``total_chars``, or on a smaller corpus the size at which the domain with the most text for its share gives all
    of it, and never so large that a domain must repeat its text more than :data:`MAX_REPEATS` times.

    Returns the size and the characters of every domain that may have fewer than its share of ``total_chars`` (under
    4 bytes per character of its share: those are counted, :func:`available_chars`; the others surely have enough)."""
    counted = {d: available_chars(corpus, d) for d, share in shares.items()
               if share > 0 and corpus.text_bytes(d) < 4 * share * total_chars}  # a character is 1 to 4 bytes
    size = float(total_chars)
    if counted and len(counted) == sum(share > 0 for share in shares.values()):
        size = min(size, max(counted[d] / shares[d] for d in counted))
    size = min([size, *(MAX_REPEATS * counted[d] / shares[d] for d in counted)])
    return int(size), counted


def sample_corpus(corpus: Corpus, weights: dict[str, float], total_chars: int, path: Path,
                  max_lines: int = MAX_SAMPLE_LINES) -> dict[str, int]:
    """Write up to ``total_chars`` characters of documents to ``path``, one paragraph (or piece of a paragraph longer
    than :data:`MAX_SENTENCE_BYTES`) per line, each domain contributing its share of the weights (normalized over the
    corpus's domains) of the characters and of ``max_lines``; returns the characters written per domain (newlines not
    counted), which add up to at most ``total_chars``.

    The shares follow the weights on any corpus, whatever the domains' sizes: on a corpus too small for
    ``total_chars`` the sample is as large as the corpus allows (:func:`sample_size`), and a domain with fewer
    characters than its share is repeated (at most :data:`MAX_REPEATS` times; a log line gives the numbers)."""
    total_weight = sum(weights.get(d, 0.0) for d in corpus.domains)
    shares = {d: (weights.get(d, 0.0) / total_weight if total_weight > 0 else 0.0) for d in corpus.domains}
    size, counted = sample_size(corpus, shares, total_chars)
    for d in sorted(counted):
        need = size * shares[d]
        if need > counted[d] * 1.01:
            log.info(f"train tokenizer: domain {d!r} has {counted[d]:,} characters, fewer than its share "
                     f"({shares[d]:.1%}) of the {size:,}-character sample: its text is repeated "
                     f"{need / counted[d]:.2f} times (at most {MAX_REPEATS})")
    if size < total_chars and counted:
        limit = min(counted, key=lambda d: MAX_REPEATS * counted[d] / shares[d])
        capped = size * shares[limit] >= MAX_REPEATS * counted[limit] * 0.99
        why = (f"domain {limit!r} repeated {MAX_REPEATS} times reaches its share" if capped
               else "the corpus has no more text at these weights")
        log.info(f"train tokenizer: the sample is {size:,} characters, not the {total_chars:,} asked for "
                 f"(--sample-chars): at that size {why}")
    written: dict[str, int] = {}
    split = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for domain in corpus.domains:
            share = shares[domain]
            budget = int(size * share)
            if budget <= 0:
                continue
            line_budget = max(1, int(max_lines * share))
            stride = max(1, math.floor(counted.get(domain, corpus.text_bytes(domain)) / max(budget, 1)))
            n = lines = 0
            while n < budget and lines < line_budget:  # a pass over the domain; more than one repeats its text
                before = n
                for phase in range(stride):  # every stride-th document, then the ones after them, until the budget
                    index = 0
                    for shard in corpus.shards(domain):
                        for batch in corpus.batches(shard, ("text",)):
                            for text in batch.column(0).to_pylist():
                                if index % stride == phase and n < budget and lines < line_budget:
                                    for paragraph in text.split("\n"):
                                        pieces = list(chunks(paragraph))
                                        split += len(pieces) > 1
                                        for piece in pieces:
                                            piece = piece[:budget - n]
                                            if piece.strip() and lines < line_budget:
                                                f.write(piece + "\n")
                                                n += len(piece)
                                                lines += 1
                                index += 1
                    if n >= budget or lines >= line_budget:
                        break
                if n == before:
                    break
            written[domain] = n
    if split:
        log.info(f"train tokenizer: {split:,} paragraphs longer than {MAX_SENTENCE_BYTES:,} bytes cut at whitespace "
                 "into lines SentencePiece accepts")
    return written


def _check_arguments(out: Path, vocab_size: int, sample_chars: int, seed: int) -> None:
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"--vocab-size {vocab_size}: must be at least {MIN_VOCAB_SIZE} ({len(SPECIAL)} special "
                          f"tokens, {BYTE_PIECES} byte pieces and the characters of the text)")
    if sample_chars <= 0:
        raise ConfigError(f"--sample-chars {sample_chars}: must be positive")
    if seed < 0:
        raise ConfigError(f"--seed {seed}: must be 0 or positive")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a directory (it is created if missing)")
    if out.is_dir() and not (out / MARKER).is_file():
        try:
            others = sorted(p.name for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX))
        except OSError as e:
            raise ConfigError(f"--out {out}: cannot list the directory ({e.strerror or e})") from None
        if others:
            raise ConfigError(f"--out {out}: not empty and not a tokenizer written by `train tokenizer` (no {MARKER}; "
                              f"holds {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); nothing there is "
                              "replaced: give a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory ({e.strerror or e})") from None


def _vocabulary_error(e: RuntimeError, vocab_size: int) -> ConfigError | RunError:
    """SentencePiece's refusal of a vocabulary size as one line saying what to do."""
    m = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", str(e))
    if m:
        need = int(m.group(2))
        return ConfigError(f"--vocab-size {vocab_size}: the sample needs at least {need} pieces ({len(SPECIAL)} "
                           f"special tokens, {BYTE_PIECES} byte pieces and {need - len(SPECIAL) - BYTE_PIECES} "
                           f"characters that cover 99.95% of the text); use --vocab-size {need} or more")
    return RunError(f"SentencePiece training failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e}")


def _check_round_trip(tok: Any, sp: Any, lines: list[str]) -> None:
    """The saved tokenizer gives SentencePiece's ids and decodes them back to the text."""
    for text in [*ROUND_TRIP_PROBES, *lines]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if ids != sp.encode(text) or tok.decode(ids) != text:
            import transformers

            raise RunError(f"the saved tokenizer does not encode {text[:40]!r} as SentencePiece does, or does not "
                           f"decode it back (transformers {transformers.__version__}); it was not saved")


def train_tokenizer(corpus_dir: Path, out: Path, vocab_size: int = 32_000, sample_chars: int = 200_000_000,
                    weights: dict[str, float] | None = None, seed: int = 0) -> dict[str, Any]:
    """Train a SentencePiece BPE tokenizer on a sample of the corpus at ``corpus_dir`` and save it in ``out``
    (``tokenizer.model``, the transformers files, ``mixlab_tokenizer.json``); returns the metadata written there.

    Raises ConfigError for arguments that cannot work (too small a vocabulary, a negative seed, ``out`` a file or a
    non-empty directory without ``mixlab_tokenizer.json``, weights that are negative, not finite or all zero, too
    little text) before anything is written; RunError when a shard is damaged or SentencePiece fails for another
    reason."""
    import sentencepiece as spm
    from transformers import AutoTokenizer, LlamaTokenizer

    corpus = Corpus(corpus_dir)
    w = weights or corpus.mixture or {d: 1.0 / len(corpus.domains) for d in corpus.domains}
    if problem := weights_problem(w):
        raise ConfigError(f"weights: {problem}")
    unknown = sorted(set(w) - set(corpus.domains))
    if unknown:
        raise ConfigError(f"weights name domains the corpus does not have: {', '.join(unknown)}")
    _check_arguments(out, vocab_size, sample_chars, seed)
    with tempfile.TemporaryDirectory(dir=out, prefix=STAGING_PREFIX) as tmp:
        text = Path(tmp) / "sample.txt"
        per_domain = sample_corpus(corpus, w, sample_chars, text)
        weight_sum = sum(w.get(d, 0.0) for d in corpus.domains)
        if sum(per_domain.values()) < 10_000:
            raise ConfigError(f"{corpus_dir}: only {sum(per_domain.values())} characters to train a tokenizer on")
        total = sum(per_domain.values())
        log.info(f"train tokenizer: {total / 1e6:.2f} M characters sampled and used, "
                 + ", ".join(f"{d} {n / 1e6:.2f}M ({n / total:.1%}, weight {w.get(d, 0.0) / weight_sum:.1%})"
                             for d, n in per_domain.items()))
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                input=str(text), model_prefix=str(Path(tmp) / "tokenizer"), model_type="bpe", vocab_size=vocab_size,
                byte_fallback=True, split_digits=True, normalization_rule_name="identity",
                remove_extra_whitespaces=False, add_dummy_prefix=False, allow_whitespace_only_pieces=True,
                character_coverage=0.9995, max_sentence_length=MAX_SENTENCE_BYTES,
                input_sentence_size=MAX_SAMPLE_LINES, shuffle_input_sentence=True, seed_sentencepiece_size=1_000_000,
                unk_id=SPECIAL["unk"], bos_id=SPECIAL["bos"], eos_id=SPECIAL["eos"], pad_id=SPECIAL["pad"],
                hard_vocab_limit=False, num_threads=os.cpu_count() or 1, minloglevel=2)
        except RuntimeError as e:
            raise _vocabulary_error(e, vocab_size) from None
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "tokenizer.model"))
        with open(text, encoding="utf-8", newline="\n") as f:
            probes = [line.rstrip("\n") for _, line in zip(range(200), f)]
        staged = Path(tmp) / "hf"
        staged.mkdir()
        os.replace(Path(tmp) / "tokenizer.model", staged / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(str(staged), legacy=False, add_bos_token=False, add_eos_token=False,
                                             add_prefix_space=False)
        tok.pad_token = "<pad>"
        tok.save_pretrained(str(staged))
        loaded = AutoTokenizer.from_pretrained(str(staged))
        _check_round_trip(loaded, sp, probes)
        info = {"corpus": str(corpus_dir), "corpus_sha256": corpus.manifest["corpus_sha256"],
                "vocab_size": len(loaded), "requested_vocab_size": vocab_size, "sample_chars": per_domain,
                "weights": w,
                "model": "sentencepiece bpe, byte_fallback, identity normalization, no dummy prefix, split digits",
                "special_tokens": {k: loaded.convert_ids_to_tokens(v) for k, v in SPECIAL.items()},
                "hash": tokenizer_hash(staged)}
        (staged / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for p in sorted(staged.iterdir(), key=lambda p: p.name != MARKER):  # the marker first: a killed move reruns
            os.replace(p, out / p.name)
    return info


def load_tokenizer(path: str | Path, key: str = "tokenizer") -> Any:
    """The `transformers.AutoTokenizer` of a local directory. Raises ConfigError naming the config ``key`` when the
    path is missing, not a directory, holds no tokenizer files, cannot be loaded, or the tokenizer has no EOS token
    (training separates documents and ends assistant turns with it)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}: {p} does not exist (give a tokenizer directory, e.g. the --out of "
                          "`train tokenizer`; nothing is downloaded)")
    if not p.is_dir():
        raise ConfigError(f"{key}: {p} is not a directory (give a tokenizer directory, e.g. the --out of "
                          "`train tokenizer`)")
    if not any((p / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(f"{key}: {p} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                          "give the --out of `train tokenizer` or a saved model")
    try:
        tok = AutoTokenizer.from_pretrained(str(p))
    except Exception as e:  # a user's directory: whatever transformers cannot read in it is the directory's fault
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{key}: {p}: transformers cannot load this tokenizer ({reason[:200]})") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"{key}: {p}: the tokenizer has no EOS token (documents and assistant turns end with it)")
    return tok


def tokenizer_hash(directory: Path) -> str:
    """Identity of a tokenizer for the token cache: hash of its files that define the mapping."""
    h = hashlib.sha256()
    for name in ("tokenizer.model", "tokenizer.json"):
        p = directory / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
