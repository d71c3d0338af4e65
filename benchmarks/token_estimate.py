"""Token estimates without a tokenizer (curate/tokens.py) against the counts of tokenizers trained by `train
tokenizer`, per domain, and the fit of the tokens-per-character weights.

Builds a corpus (normalize, exact dedup) of the quickstart's English web and Wikipedia text, en/fr/de/it books and
Python code, and the Chinese of recipes/data/zh; trains a tokenizer for each --vocab size on the whole corpus, each
domain's text once; counts every document's tokens and its characters by kind (as curate/tokens.py reads them
off the UTF-8 bytes); prints per domain the measured characters and bytes per token, the script-aware estimate and
bytes / 4 against the measured count, and a non-negative least-squares fit (each domain weighted equally) of the
weights with the 2-byte and 4-byte weights held at their priors (too few such characters here to fit them).

    python benchmarks/token_estimate.py                  # vocabularies 32000 and 8000; appends to RESULTS.md
    python benchmarks/token_estimate.py --vocab 4000 --no-record
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import ROOT, WORK, command_line, git_commit, markdown, print_and_record  # noqa: E402

KINDS = ["ascii_letter", "ascii_digit", "ascii_space", "ascii_other", "2_byte", "3_byte", "4_byte"]
PRIORS = {"2_byte": 0.5, "4_byte": 2.0}


def build_corpus(work: Path) -> Path:
    from curate.cli import main

    q, zh = ROOT / "recipes" / "data" / "quickstart", ROOT / "recipes" / "data" / "zh"
    recipe = {"name": "token_estimate", "seed": 1, "output": {"dir": str(work / "corpus")},
              "executor": {"workers": 1}, "steps": ["normalize", "exact_dedup"],
              "sources": [{"path": str(q / "web" / "c4_demo.jsonl"), "format": "jsonl", "domain": "web"},
                          {"path": str(q / "web" / "cc_en_head-*.jsonl.gz"), "format": "jsonl.gz", "domain": "web",
                           "id_field": "id"},
                          {"path": str(q / "wiki" / "wiki_demo.txt"), "format": "lines", "domain": "wiki"},
                          {"path": str(q / "books" / "**" / "*.txt"), "format": "txt", "domain": "books"},
                          {"path": str(q / "code" / "**" / "*.py"), "format": "txt", "domain": "code"},
                          {"path": str(zh / "*.jsonl"), "format": "jsonl", "domain": "zh", "id_field": "id"}]}
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    assert main(["--quiet", "run", str(path), "--fresh"]) == 0
    return work / "corpus"


def kind_counts(text: str) -> np.ndarray:
    """Characters of ``text`` by kind, in the order of :data:`KINDS`."""
    lut = np.full(256, -1, dtype=np.int64)
    for b in range(128):
        c = chr(b)
        lut[b] = 0 if c.isalpha() else 1 if c.isdigit() else 2 if c.isspace() else 3
    lut[0xC0:0xE0], lut[0xE0:0xF0], lut[0xF0:] = 4, 5, 6
    k = lut[np.frombuffer(text.encode("utf-8"), dtype=np.uint8)]
    return np.bincount(k[k >= 0], minlength=len(KINDS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, nargs="+", default=[32_000, 8_000])
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    import sentencepiece as spm
    from scipy.optimize import nnls

    from curate.tokens import TOKENS_PER_CHAR, estimate_tokens
    from mixlab import logs
    from train.corpus import Corpus
    from train.tokenizer import available_chars, train_tokenizer

    logs.setup(quiet=True)
    work = WORK / "token_estimate"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    commit = git_commit()
    root = build_corpus(work)
    corpus = Corpus(root)
    texts: dict[str, list[str]] = {d: [t for f in sorted((root / "data" / d).glob("*.parquet"))
                                       for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
                                   for d in corpus.domains}
    counts = {d: np.array([kind_counts(t) for t in ts], dtype=np.float64) for d, ts in texts.items()}
    once = {d: float(available_chars(corpus, d)) for d in corpus.domains}
    sections = [f"Corpus: {', '.join(f'{d} {len(texts[d])} docs' for d in corpus.domains)}; every tokenizer is "
                "trained on the whole corpus, each domain's text once. Estimate: curate/tokens.py "
                f"({', '.join(f'{k} {v:g}' for k, v in TOKENS_PER_CHAR.items())} tokens per character)."]
    for vocab in args.vocab:
        tok = work / f"tok{vocab}"
        train_tokenizer(root, tok, vocab_size=vocab, weights=once)
        sp = spm.SentencePieceProcessor(model_file=str(tok / "tokenizer.model"))
        measured = {d: np.array([len(x) for x in sp.encode(ts)], dtype=np.float64) for d, ts in texts.items()}
        rows = []
        for d in corpus.domains:
            m = measured[d].sum()
            nbytes = sum(len(t.encode("utf-8")) for t in texts[d])
            est = estimate_tokens(pa.array(texts[d]))
            rows.append([d, f"{m:,.0f}", f"{sum(map(len, texts[d])) / m:.2f}", f"{nbytes / m:.2f}",
                         f"{est / m - 1:+.1%}", f"{nbytes / 4 / m - 1:+.1%}"])
        free = [i for i, k in enumerate(KINDS) if k not in PRIORS]
        fixed = np.array([PRIORS.get(k, 0.0) for k in KINDS])
        X = np.concatenate([counts[d] for d in corpus.domains])
        y = np.concatenate([measured[d] for d in corpus.domains])
        w = np.concatenate([np.full(len(measured[d]), 1 / measured[d].sum()) for d in corpus.domains])
        coef, _ = nnls(X[:, free] * w[:, None], (y - X @ fixed) * w)
        fitted = fixed.copy()
        fitted[free] = coef
        fit = ", ".join(f"{k} {v:.3f}" for k, v in zip(KINDS, fitted))
        sections += [f"**{vocab:,}-token tokenizer**",
                     markdown(["domain", "tokens", "chars/token", "bytes/token", "estimate vs measured",
                               "bytes/4 vs measured"], rows),
                     f"Fitted tokens per character ({', '.join(PRIORS)} held at their priors): {fit}"]
    print_and_record("token estimates vs trained tokenizers", command_line(), commit, "\n\n".join(sections),
                     not args.no_record)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
