"""Do the learned mixtures help a bigger model? The validation to run before trusting `train doremi`'s or `train
ablate`'s weights with a big training run (issue 14): a main model with ``--main-scale`` (4) times the proxy's
parameters is trained for the same token budget on the natural, DoReMi and ablation-proposed mixtures, with
``--seeds`` (2) seeds each, and judged by its per-domain held-out loss on the real-text domains.

Phases (each timed; outputs under ``benchmarks/.work/mixtures/``, git-ignored):

1. **Corpus.** `curate run` (normalize, exact dedup, natural mixture) on the quickstart text
   (``recipes/data/quickstart/``: web, wiki, books, code) plus a ``noise`` domain: 100 documents of 1,000 words, each
   word drawn independently and uniformly from the distinct words (``[^\\W\\d_]+``) of the four real domains (seeded).
   Word salad with no order and a flat word distribution: nothing beyond the word list is learnable, so its loss has a
   floor that every model reaches early, and tokens spent on it teach nothing about the real domains.
2. **Tokenizer.** `train tokenizer --vocab-size 4000` on that corpus.
3. **DoReMi.** `train doremi recipes/doremi_quickstart.yaml` on the corpus with the recipe's proxy (Llama, hidden 64,
   2 layers: 0.36M parameters with this vocabulary) and its ``eta`` 0.1: the paper's 1.0 makes the weights of
   tiny models trained for a few hundred steps swing from domain to domain (the recipe's comment: across seeds 0-2
   up to 0.10 apart with 1.0, 0.014 with 0.1). ``--doremi-steps`` steps for each of the reference and the proxy.
4. **Ablation.** `train ablate recipes/ablate_quickstart.yaml` with the same proxy: the named mixtures natural,
   uniform and the DoReMi result plus Dirichlet samples (``--ablate-mixtures`` in all), seed 0,
   ``--ablate-tokens`` tokens each; its objective is the mean held-out loss over the real domains (the noise
   domain weighs 0). Its proposed mixture is ``OUT/mixture.json``.
5. **Main runs.** ``--seeds`` seeds of the main model per mixture, each ``--tokens`` tokens, with
   :class:`train.pretrain.Pretrainer` in this process (the `train pretrain` machinery and its shared token cache).
   ``natural`` is each domain's share of the tokenized corpus (the token cache's counts, as DoReMi's reference
   draws it), not curate's estimate in the corpus's mixture.json (which the ablation's named ``natural`` reads).

**Held-out set.** `train.data.prepare` holds out a document by a hash of its id alone, so every run here (the
DoReMi models, the ablation's runs, every main run) uses ``data.heldout_fraction`` 0.1 and holds out the same
documents; no model is trained on them. Every main run is evaluated on the same first ``--eval-tokens`` (10,240)
held-out tokens of every domain, whatever its weights.

Reported per mixture: held-out loss (nats per token) per domain, the average over the real domains and the worst
real domain (the noise domain counts in neither: the paper's claim concerns the real domains), as mean ± sample
std over seeds, and which mixture won by how much against that spread. Prints the tables and appends an entry to
``benchmarks/RESULTS.md`` (unless ``--no-record``).

Defaults are sized for ~25 minutes on 2 busy CPU cores (27 measured at load average 5-8); ``--tokens``,
``--seeds``, ``--main-scale``, ``--doremi-steps``, ``--ablate-tokens`` scale it up. ``--smoke`` checks every phase
in 2-3 minutes on busy cores (tiny budgets, one seed, nothing recorded). Phase outputs are named by their settings
and reused when present (the corpus and tokenizer always; ``--fresh`` retrains the rest); a reused phase's time is
read from its files' modification times, and the main runs' time is the sum of their recorded wall times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import (ROOT, WORK, append_results, command_line, git_commit, header, markdown, say,  # noqa: E402
                    torch_machine_line)
from train_bench import hf_offline, run_cli, train_tokenizer  # noqa: E402

hf_offline()

import numpy as np  # noqa: E402
import yaml  # noqa: E402

HOME = WORK / "mixtures"
SOURCES = ROOT / "recipes" / "data" / "quickstart"
DOREMI_RECIPE = ROOT / "recipes" / "doremi_quickstart.yaml"
ABLATE_RECIPE = ROOT / "recipes" / "ablate_quickstart.yaml"
REAL = ("books", "code", "web", "wiki")
NOISE = "noise"
NOISE_DOCS, NOISE_WORDS = 100, 1000
VOCAB = 4000
SEQ_LEN, BATCH = 128, 16
HELDOUT_FRACTION = 0.1
LR = 3e-3
WORD = re.compile(r"[^\W\d_]+")


# -- 1. corpus -----------------------------------------------------------------------------------------------------
def _source_texts() -> Iterator[str]:
    """Every document text of the four real domains' source files."""
    import gzip

    for path in sorted(SOURCES.glob("web/*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            yield from (json.loads(line)["text"] for line in f if line.strip())
    yield from (SOURCES / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()
    for pattern in ("books/**/*.txt", "code/**/*.py"):
        yield from (p.read_text(encoding="utf-8", errors="replace") for p in sorted(SOURCES.glob(pattern)))


def write_noise(path: Path, seed: int = 0) -> int:
    """``NOISE_DOCS`` JSONL documents of ``NOISE_WORDS`` words drawn i.i.d. uniformly from the distinct words of the
    real sources; returns the size of that word list."""
    words = sorted({w for text in _source_texts() for w in WORD.findall(text)})
    rng = np.random.default_rng([seed, 0x5A1AD])
    with open(path, "w", encoding="utf-8") as f:
        for i in range(NOISE_DOCS):
            text = " ".join(words[j] for j in rng.integers(0, len(words), NOISE_WORDS))
            f.write(json.dumps({"id": f"noise-{i:04d}", "text": text}) + "\n")
    return len(words)


def build_corpus() -> tuple[Path, int]:
    """The corpus (``curate run``, once) and the noise word list's size."""
    corpus = HOME / "corpus"
    noise = HOME / "noise.jsonl"
    HOME.mkdir(parents=True, exist_ok=True)
    n_words = write_noise(noise)  # deterministic: rewriting it gives the same file
    if (corpus / "manifest.json").exists():
        return corpus, n_words
    src = [{"path": str(SOURCES / "web" / "c4_demo.jsonl"), "format": "jsonl", "domain": "web"},
           {"path": str(SOURCES / "web" / "cc_en_head-*.jsonl.gz"), "format": "jsonl.gz", "domain": "web",
            "id_field": "id"},
           {"path": str(SOURCES / "wiki" / "wiki_demo.txt"), "format": "lines", "domain": "wiki"},
           {"path": str(SOURCES / "books" / "**" / "*.txt"), "format": "txt", "domain": "books"},
           {"path": str(SOURCES / "code" / "**" / "*.py"), "format": "txt", "domain": "code"},
           {"path": str(noise), "format": "jsonl", "domain": NOISE, "id_field": "id"}]
    recipe = {"name": "mixtures", "seed": 0, "sources": src,
              "steps": [{"normalize": {}}, {"exact_dedup": {}}],
              "mixture": {"method": "natural"},
              "output": {"dir": str(corpus), "shard_docs": 200},
              "executor": {"workers": 2}}
    path = HOME / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    say(f"corpus: curate run {path.relative_to(ROOT)}")
    run_cli("curate", ["run", str(path)])
    return corpus, n_words


# -- models --------------------------------------------------------------------------------------------------------
def proxy_shape() -> dict[str, int]:
    """The proxy's Llama config: the DoReMi quickstart recipe's (the ablation recipe has the same)."""
    return dict(yaml.safe_load(DOREMI_RECIPE.read_text(encoding="utf-8"))["model"]["config"])


def count(shape: dict[str, int], vocab: int) -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of a model of ``shape`` built by `train/model.py`."""
    from train.config import ModelConfig
    from train.model import build, parameter_count

    return parameter_count(build(ModelConfig(config=shape), vocab, SEQ_LEN, {"bos": 1, "eos": 2, "pad": 0}))


def main_shape(scale: float, vocab: int) -> dict[str, int]:
    """A Llama config with about ``scale`` times the proxy's parameters: hidden size and depth grow by
    sqrt(scale) from the proxy's (hidden a multiple of 32, 16 per head), then the MLP width (a multiple of 8) is
    solved for the parameter count (the count is linear in it)."""
    proxy = proxy_shape()
    target = scale * count(proxy, vocab)[0]
    root = math.sqrt(scale)
    hidden = max(32, 32 * round(proxy["hidden_size"] * root / 32))
    heads = max(1, hidden // 16)
    shape = {"hidden_size": hidden, "num_hidden_layers": max(1, round(proxy["num_hidden_layers"] * root)),
             "num_attention_heads": heads, "num_key_value_heads": heads}
    p8, p16 = (count({**shape, "intermediate_size": i}, vocab)[0] for i in (8, 16))
    inter = 8 + (target - p8) / ((p16 - p8) / 8)
    return {**shape, "intermediate_size": max(8, 8 * round(inter / 8))}


# -- 3., 4. DoReMi and the ablation ----------------------------------------------------------------------------------
def file_span(first: Path, last: Path) -> float:
    """Seconds from ``first``'s to ``last``'s modification time: the wall time of a reused phase, whose first and
    last outputs they are."""
    return last.stat().st_mtime - first.stat().st_mtime


def run_doremi(corpus: Path, tokenizer: Path, steps: int, eval_tokens: int, fresh: bool) -> tuple[Path, float]:
    """`train doremi` with the quickstart recipe on ``corpus``; returns OUT and its wall seconds (negative: a
    reused OUT's, from its files' times)."""
    out = HOME / f"doremi-{steps}"
    if (out / "mixture.json").exists() and not fresh:
        return out, -file_span(out / "round-1" / "reference" / "config.json", out / "mixture.json")
    shutil.rmtree(out, ignore_errors=True)
    say(f"doremi: train doremi {DOREMI_RECIPE.relative_to(ROOT)} ({steps} steps per model)")
    t = time.perf_counter()
    run_cli("train", ["doremi", str(DOREMI_RECIPE), f"corpus={corpus}", f"tokenizer={tokenizer}", f"out={out}",
                      f"optim.max_steps={steps}", f"optim.warmup_steps={max(1, steps // 10)}",
                      f"data.heldout_fraction={HELDOUT_FRACTION}", "seed=0", f"eval.every={steps}",
                      f"checkpoint.every={steps}", f"eval.tokens_per_domain={eval_tokens}"])
    return out, time.perf_counter() - t


def run_ablate(corpus: Path, tokenizer: Path, doremi: Path, tokens: int, mixtures: int, eval_tokens: int,
               fresh: bool) -> tuple[Path, float]:
    """`train ablate` with the quickstart recipe: natural, uniform, the DoReMi result and ``mixtures`` - 3 Dirichlet
    samples, seed 0, the real domains' mean loss as objective; returns OUT and its wall seconds (negative: a reused
    OUT's, from its files' times)."""
    out = HOME / f"ablate-{tokens}-{mixtures}-{doremi.name}"
    if (out / "mixture.json").exists() and not fresh:
        return out, -file_span(out / "ablation.json", out / "mixture.json")
    shutil.rmtree(out, ignore_errors=True)
    objective = "{weights: {" + ", ".join([f"{d}: 1" for d in REAL] + [f"{NOISE}: 0"]) + "}}"
    say(f"ablate: train ablate {ABLATE_RECIPE.relative_to(ROOT)} ({mixtures} mixtures x 1 seed, {tokens:,} tokens)")
    t = time.perf_counter()
    run_cli("train", ["ablate", str(ABLATE_RECIPE), f"corpus={corpus}", f"tokenizer={tokenizer}", f"out={out}",
                      f"tokens={tokens}", "seeds=[0]", "seed=0", f"objective={objective}",
                      f"data.heldout_fraction={HELDOUT_FRACTION}", f"eval.tokens_per_domain={eval_tokens}",
                      f"optim.warmup_steps={max(1, tokens // (BATCH * SEQ_LEN) // 10)}",
                      f"mixtures.named=[natural, uniform, {doremi / 'mixture.json'}]",
                      f"mixtures.dirichlet.count={max(1, mixtures - 3)}"])
    return out, time.perf_counter() - t


def weights_of(path: Path, domains: list[str]) -> dict[str, float]:
    """A mixture.json's weights over ``domains`` (absent ones 0), summing to 1."""
    w = json.loads(path.read_text(encoding="utf-8"))["weights"]
    total = sum(float(w.get(d, 0.0)) for d in domains)
    return {d: float(w.get(d, 0.0)) / total for d in domains}


# -- 5. main runs --------------------------------------------------------------------------------------------------
def heldout_sequences(corpus: Path, tokenizer: Path, domains: list[str], tokens: int) -> dict[str, np.ndarray]:
    """The fixed evaluation set: the first ``tokens`` held-out tokens of each domain (``HELDOUT_FRACTION``), as
    (n, SEQ_LEN + 1) windows."""
    from train import data as data_mod
    from train.config import DataConfig

    cfg = DataConfig(seq_len=SEQ_LEN, weights=dict.fromkeys(domains, 1.0), heldout_fraction=HELDOUT_FRACTION)
    data = data_mod.prepare(corpus, tokenizer, cfg)
    return {d: data_mod.eval_sequences(data.heldout[d], SEQ_LEN, tokens) for d in domains}


def main_run(corpus: Path, tokenizer: Path, shape: dict[str, int], weights: dict[str, float], seed: int,
             tokens: int, heldout: dict[str, np.ndarray], out: Path) -> dict[str, Any]:
    """Train the main model on ``weights`` for ``tokens`` tokens with ``seed``, evaluated on ``heldout``; cached in
    ``out/result.json`` by its settings. Returns {"loss": {domain: nats/token}, "seconds", "parameters", ...}."""
    from train.config import PretrainConfig
    from train.pretrain import Pretrainer

    steps = max(1, tokens // (BATCH * SEQ_LEN))
    cfg = PretrainConfig.model_validate({
        "corpus": str(corpus), "tokenizer": str(tokenizer), "out": str(out / "run"), "seed": seed,
        "model": {"config": shape},
        "data": {"seq_len": SEQ_LEN, "weights": {d: w for d, w in weights.items() if w > 0},
                 "max_repetition": 4, "heldout_fraction": HELDOUT_FRACTION},
        "optim": {"batch_size": BATCH, "max_steps": steps, "lr": LR, "warmup_steps": max(1, steps // 10)},
        "eval": {"every": steps, "tokens_per_domain": max(len(s) for s in heldout.values()) * SEQ_LEN},
        "checkpoint": {"every": steps, "keep": 1}, "log": {"every": max(1, steps // 4), "tensorboard": False}})
    key = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
    cached = out / "result.json"
    if cached.exists() and json.loads(cached.read_text())["key"] == key:
        return json.loads(cached.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    trainer = Pretrainer(cfg)
    trainer._eval = heldout  # every domain, zero-weighted ones too
    plan = trainer.plan()
    result = trainer.run()
    seconds = time.perf_counter() - t
    record = {"key": key, "loss": {d: m["loss"] for d, m in result["eval"].items()}, "seconds": seconds,
              "steps": steps, "tokens": plan["tokens"], "parameters": plan["parameters"],
              "non_embedding_parameters": plan["non_embedding_parameters"]}
    cached.write_text(json.dumps(record, indent=1))
    shutil.rmtree(out / "run", ignore_errors=True)  # the model itself is not needed again
    return record


# -- report --------------------------------------------------------------------------------------------------------
def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def pm(xs: list[float]) -> str:
    m, s = mean_std(xs)
    return f"{m:.3f} ± {s:.3f}" if len(xs) > 1 else f"{m:.3f}"


def verdict(name: str, scores: dict[str, list[float]]) -> str:
    """Which mixture has the lowest mean ``name`` and by how much against the runner-up and the seed spread."""
    ranked = sorted(scores, key=lambda m: statistics.fmean(scores[m]))
    best, second = ranked[0], ranked[1]
    gap = statistics.fmean(scores[second]) - statistics.fmean(scores[best])
    spread = max(mean_std(scores[best])[1], mean_std(scores[second])[1])
    if len(scores[best]) < 2:
        judged = "one seed: no spread to judge it against"
    elif gap > 2 * spread:
        judged = f"{gap / spread:.1f}x the larger seed std ({spread:.3f}): beyond the seed spread" if spread else \
            "no seed spread at all"
    else:
        judged = f"within 2x the larger seed std ({spread:.3f}): not distinguishable from seed noise"
    return (f"{name}: {best} lowest ({statistics.fmean(scores[best]):.3f}), {gap:.3f} nats below {second}; "
            f"{judged}. Order: {' < '.join(ranked)}")


def paper_check(avg: dict[str, list[float]], worst: dict[str, list[float]]) -> str:
    """Whether DoReMi beat the natural mixture on both the average and the worst real domain beyond the seed
    spread (the claim of Xie et al. 2023 at equal tokens)."""
    lines = []
    ok = True
    for name, scores in (("average", avg), ("worst", worst)):
        d = statistics.fmean(scores["natural"]) - statistics.fmean(scores["doremi"])
        spread = max(mean_std(scores["natural"])[1], mean_std(scores["doremi"])[1])
        beyond = abs(d) > 2 * spread and len(scores["doremi"]) > 1
        ok &= beyond and d > 0
        judged = (f"{'beyond' if beyond else 'within'} 2x seed std {spread:.3f}" if len(scores["doremi"]) > 1
                  else "one seed")
        lines.append(f"{name} {'lower' if d > 0 else 'higher'} by {abs(d):.3f} nats ({judged})")
    return ("DoReMi vs natural: " + "; ".join(lines) + ". "
            + ("Matches the paper's claim (better average and worst-case perplexity at equal tokens)."
               if ok else "Does not show the paper's claim here (better average and worst-case perplexity at "
                          "equal tokens) beyond the seed spread."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=81_920, help="training tokens per main run (40 steps x 16 x 128)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per mixture for the main model")
    ap.add_argument("--main-scale", type=float, default=4.0, help="main model parameters / proxy parameters")
    ap.add_argument("--doremi-steps", type=int, default=100, help="steps of the DoReMi reference and proxy each")
    ap.add_argument("--ablate-tokens", type=int, default=61_440, help="tokens per ablation run (30 steps)")
    ap.add_argument("--ablate-mixtures", type=int, default=8, help="mixtures in the study (at least 4)")
    ap.add_argument("--eval-tokens", type=int, default=10_240, help="held-out tokens per domain in every evaluation")
    ap.add_argument("--fresh", action="store_true", help="retrain DoReMi, the ablation and the main runs")
    ap.add_argument("--smoke", action="store_true", help="a 2-3 minute check of every phase; records nothing")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.seeds, args.doremi_steps, args.ablate_tokens, args.ablate_mixtures = 4096, 1, 4, 4096, 4
        args.eval_tokens = 1024
        args.no_record = True
    if args.ablate_mixtures < 4:
        raise SystemExit("--ablate-mixtures: at least 4 (3 named mixtures and a Dirichlet sample)")
    commit = git_commit()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    corpus, n_words = build_corpus()
    timings["corpus (curate run; 0 = reused)"] = time.perf_counter() - t
    t = time.perf_counter()
    tokenizer = train_tokenizer(HOME / f"tokenizer-{VOCAB}", corpus, VOCAB)
    timings["tokenizer (train tokenizer; 0 = reused)"] = time.perf_counter() - t

    from train import token_cache
    from train.corpus import Corpus
    from train.tokenizer import load_tokenizer

    domains = Corpus(corpus).domains
    assert set(domains) == {*REAL, NOISE}, domains
    vocab = len(load_tokenizer(str(tokenizer), "tokenizer"))
    doremi, timings["DoReMi (reference + proxy)"] = run_doremi(corpus, tokenizer, args.doremi_steps,
                                                              args.eval_tokens, args.fresh)
    ablate, timings["ablation (train ablate)"] = run_ablate(corpus, tokenizer, doremi, args.ablate_tokens,
                                                            args.ablate_mixtures, args.eval_tokens, args.fresh)

    shape = main_shape(args.main_scale, vocab)
    proxy_params = count(proxy_shape(), vocab)
    heldout = heldout_sequences(corpus, tokenizer, domains, args.eval_tokens)  # builds the token cache
    natural_tokens = {d: token_cache.counted_tokens(Corpus(corpus), tokenizer, d) for d in domains}
    estimated = json.loads((corpus / "mixture.json").read_text()).get("tokens", {})
    total = sum(natural_tokens.values())
    mixtures = {"natural": {d: n / total for d, n in natural_tokens.items()},
                "doremi": weights_of(doremi / "mixture.json", domains),
                "ablation": weights_of(ablate / "mixture.json", domains)}
    settings = json.dumps([shape, args.tokens, args.eval_tokens]).encode()
    main_dir = HOME / ("main-" + hashlib.sha256(settings).hexdigest()[:8])
    if args.fresh:
        shutil.rmtree(main_dir, ignore_errors=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, weights in mixtures.items():
        for seed in range(args.seeds):
            say(f"main: {name} seed {seed} ({args.tokens:,} tokens)")
            r = main_run(corpus, tokenizer, shape, weights, seed, args.tokens, heldout, main_dir / f"{name}-{seed}")
            say(f"  {r['seconds']:.0f} s; " + ", ".join(f"{d} {r['loss'][d]:.3f}" for d in domains))
            runs.setdefault(name, []).append(r)
    timings[f"main runs ({len(mixtures)} mixtures x {args.seeds} seeds; the sum of their wall times)"] = \
        sum(r["seconds"] for rs in runs.values() for r in rs)
    first = runs["natural"][0]

    per_domain = {m: {d: [r["loss"][d] for r in rs] for d in domains} for m, rs in runs.items()}
    avg = {m: [statistics.fmean(r["loss"][d] for d in REAL) for r in rs] for m, rs in runs.items()}
    worst = {m: [max(r["loss"][d] for d in REAL) for r in rs] for m, rs in runs.items()}
    worst_domain = {m: sorted({max(REAL, key=lambda d: r["loss"][d]) for r in rs}) for m, rs in runs.items()}
    ablate_info = json.loads((ablate / "mixture.json").read_text())

    weight_table = markdown(["mixture", *domains], [[m, *(f"{w[d]:.3f}" for d in domains)]
                                                    for m, w in mixtures.items()])
    loss_table = markdown(["mixture", *domains, "real avg", "real worst", "worst domain"],
                          [[m, *(pm(per_domain[m][d]) for d in domains), pm(avg[m]), pm(worst[m]),
                            "/".join(worst_domain[m])] for m in runs])
    time_table = markdown(["phase", "seconds"], [[k, f"{v:.0f}" if v >= 0 else f"{-v:.0f} (an earlier run's, "
                                                  "reused; from its files' times)"] for k, v in timings.items()])
    verdicts = [verdict("Average over the real domains", avg), verdict("Worst real domain", worst),
                paper_check(avg, worst)]
    tokens_line = ", ".join(f"{d} {natural_tokens[d]:,} ({estimated.get(d, 0):,})" for d in domains)
    body = "\n".join([
        f"Corpus (`curate run`: normalize, exact dedup; natural mixture): the quickstart text's web, wiki, books and "
        f"code plus `{NOISE}`: {NOISE_DOCS} documents of {NOISE_WORDS:,} words drawn i.i.d. uniformly from the "
        f"{n_words:,} distinct words of the real text (unlearnable beyond the word list). Tokens ({vocab:,}-token "
        f"BPE by `train tokenizer`; in brackets curate's estimate in the corpus's mixture.json): {tokens_line}. "
        f"`natural` below is the tokenized shares.",
        "",
        f"Proxy (DoReMi, ablation): Llama {proxy_shape()}, {proxy_params[0]:,} parameters ({proxy_params[1]:,} "
        f"non-embedding). Main model: Llama {shape}, {first['parameters']:,} parameters "
        f"({first['non_embedding_parameters']:,} non-embedding), {first['parameters'] / proxy_params[0]:.2f}x the "
        f"proxy; {first['tokens']:,} tokens per run ({first['steps']} steps x {BATCH} x {SEQ_LEN}, lr {LR:g}), "
        f"{args.seeds} seed(s) per mixture.",
        "",
        f"DoReMi: `train doremi {DOREMI_RECIPE.relative_to(ROOT)}` ({args.doremi_steps} steps per model, eta 0.1 "
        f"as the recipe: the paper's 1.0 swings tiny short-trained models' weights between seeds). Ablation: "
        f"`train ablate {ABLATE_RECIPE.relative_to(ROOT)}`, {args.ablate_mixtures} mixtures (natural, uniform, "
        f"the DoReMi result, {args.ablate_mixtures - 3} Dirichlet) x seed 0, {args.ablate_tokens:,} tokens each, "
        f"objective the mean real-domain loss; proposal by its {ablate_info.get('model', '?')} model, held-out "
        f"Spearman {ablate_info.get('heldout_spearman', float('nan')):.2f}, best observed "
        f"{ablate_info.get('best_observed', {}).get('mixture', '?')}.",
        "",
        f"Held-out: every run (DoReMi, ablation, main) holds out the same documents (fraction {HELDOUT_FRACTION}, "
        f"chosen by document id, whatever the seed); every main run is evaluated on the same first "
        f"{args.eval_tokens:,} held-out tokens per domain. Losses in nats per token, mean ± sample std over "
        f"seeds; `real avg`/`real worst` leave out `{NOISE}`.",
        "", "**Mixtures**", "", weight_table, "", "**Main model held-out loss**", "", loss_table, "",
        *(f"- {v}" for v in verdicts), "", "**Timings**", "", time_table])
    print("\n" + body)
    if not args.no_record:
        cmd = command_line()
        title = f"learned mixtures on a {args.main_scale:g}x model (natural, DoReMi, ablation)"
        append_results("\n".join([*header(title, cmd, commit, torch_machine_line("cpu")), "", body]))
        say(f"\nappended to {Path('benchmarks/RESULTS.md')}")


if __name__ == "__main__":
    main()
