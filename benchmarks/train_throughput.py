"""Training throughput of `train pretrain` against a plain Hugging Face `Trainer`, and the speed of its data path.

What it measures, in one run, on one model (a Llama config from ``train.model.build``), one corpus and one
micro-batch shape:

* **ours**: tokens/s of mixlab's training loop, ``Pretrainer(cfg).train_step()`` called in a loop (the body of
  ``Trainer.run`` in ``train/loop.py``, which `train pretrain` runs; eval, checkpoints and tensorboard are set
  beyond the run and are not part of the timed steps). Data comes from the mixture
  sampler over the memory-mapped token cache, as in ``train pretrain``.
* **HF Trainer**: tokens/s of ``transformers.Trainer`` on the same model config and initial weights, fed *the same
  packed sequences* our sampler produces (precomputed into an in-memory ``torch`` Dataset of
  ``input_ids``/``labels``/``shift_labels``, so its data cost is nil: equal or in its favour), the same optimizer
  settings (AdamW, lr, betas, weight decay, eps, grad clip 1.0, linear warmup then cosine to 10 % of lr),
  ``per_device_train_batch_size`` equal to ours, no eval, no saving, no logging, ``report_to=[]``,
  ``dataloader_num_workers=0``, ``use_cpu=True`` on CPU, and ``use_cache`` off (as in our loop). Two rows: HF's
  default optimizer implementation (``adamw_torch_fused`` for torch >= 2.8, the fused ``torch.optim.AdamW`` ours
  uses too) and ``optim="adamw_torch"`` (the per-tensor loop), which separates "loop machinery" from "optimizer
  kernel".
* Each variant runs ``--warmup`` untimed steps, then ``--steps`` timed steps, in a freshly built trainer; the
  variants alternate (A/B/C, A/B/C, ...) ``--repeat`` times and the median is reported. Ratio ours/HF (issue
  target >= 1.0x: our machinery must cost nothing).
* **data path**: tokens/s of ``MixtureSampler.batch`` (sampler + packing: a Python loop per sequence over
  memory-mapped shards) for ``--data-seq-len`` (2048) x ``--data-batch`` (32) over the real token cache, median of
  ``--repeat``; target >= 10 M tokens/s. Below target (or with ``--profile``) a cProfile of it is printed. The
  training shape (e.g. 8 x 256) is timed too, with its share of one training step.
* **FLOPs**: FLOPs/token from ``train.model.flops_per_token`` (6 x non-embedding parameters + PaLM's attention
  term) and the same with the LM-head matmul counted (tied embeddings make ``flops_per_token`` leave it out),
  achieved FLOP/s = tokens/s x FLOPs/token, and MFU against ``--peak-tflops`` (default: 989, H100 SXM bf16 dense,
  with ``--device cuda``; on CPU, when not given, against the fp32 matmul FLOP/s measured on this machine, which is
  labelled as such).
* ``--profile``: a ``torch.profiler`` operator table of one ours and one HF run, a cProfile of our loop (project
  functions), and ``optimizer.step()`` alone for the AdamW implementations (for-loop, foreach, fused).

Setup (built once under ``benchmarks/.work/train_throughput/``, git-ignored, reused by later runs): the quickstart's
English KenLM model by ``curate lm train`` (as ``tests/conftest.py::quickstart_lm`` trains it; needs ``make kenlm``),
the quickstart corpus by ``curate run recipes/quickstart.yaml`` with the perplexity step pointed at that model,
a 4000-token tokenizer by ``train tokenizer``, and the token cache (``train.data.prepare``).

Before setup and before each timed block the script waits until no other benchmark runs
(``pgrep -f "benchmarks/(pipeline|minhash|dedup|langid|perplexity|quality)"``, polled every 30 s); a timing during
which other processes kept more than 0.25 cores busy (from /proc/stat) is discarded and taken again (up to 8 times;
the load seen is reported). On 2 cores this matters: with torch's 2 threads, one busy core from elsewhere makes
every multi-threaded op wait for a descheduled thread and slows small-op code (a per-tensor AdamW) several-fold.

Run (from the project root, with the project's virtualenv):

    python benchmarks/train_throughput.py                   # CPU, fp32, ~4M-param Llama, 8 x 256; ~5 min
    python benchmarks/train_throughput.py --profile         # + operator tables, loop cProfile, AdamW step alone
    python benchmarks/train_throughput.py --no-wait --steps 3 --repeat 1 --no-record   # smoke run
    python benchmarks/train_throughput.py --device cuda --model-size 125m --dry-run    # GPU path, checked on CPU

GPU: ``--device cuda --model-size 125m`` builds a Llama with hidden 768, 12 layers, 12 heads, intermediate 2048 and
the 4000-token tokenizer of the setup (tied embeddings: ~88M parameters, 85M of them non-embedding; the
non-embedding part is that of a "125M" GPT-2/Llama-class model; a 32000-token tokenizer would add 21.5M embedding
parameters, but SentencePiece cannot learn 32000 BPE merges from the ~3 MB quickstart corpus), trains in bf16
autocast (``optim.precision: bf16`` for ours, ``bf16=True`` for HF), micro-batch 16 x 1024 by default, and reports
MFU against ``--peak-tflops``; ``--compile`` compiles the model in both loops. RESULTS.md holds its H100 runs
(eager and compiled, 16 and 64 x 1024; the files the command needs travel as ``benchmarks/.work/train_throughput``
plus a pydantic wheel). ``--dry-run`` runs
that configuration for 1 + 1 steps at a tiny shape (2 x 32) on whatever device there is, prints the table and the
config, and records nothing.

Prints a table and appends an entry to ``benchmarks/RESULTS.md`` (unless ``--no-record`` or ``--dry-run``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contention import undisturbed, wait_until_quiet  # noqa: E402
from profiling import cprofile_table, operator_table, torch_profile_table, torch_profiler  # noqa: E402
from report import (ROOT, WORK, append_results, command_line, git_commit, header, markdown, say,  # noqa: E402
                    torch_machine_line)
from train_bench import (StepSchedule, after_warmup, hf_offline, profile_window, run_cli, step_clock,  # noqa: E402
                         synchronize, train_tokenizer)

hf_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

T = TypeVar("T")

OUT = WORK / "train_throughput"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
QUICKSTART_WIKI = ROOT / "recipes" / "data" / "quickstart" / "wiki" / "wiki_demo.txt"
WAIT_PATTERN = "benchmarks/(pipeline|minhash|dedup|langid|perplexity|quality)"
TOKENIZER_VOCAB = 4000
DATA_TARGET_TOKENS_S = 10e6
RATIO_TARGET = 1.0
H100_BF16_DENSE_TFLOPS = 989.0
TRIES = 8

MODEL_SIZES: dict[str, dict[str, int]] = {
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4},
    "125m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
             "num_key_value_heads": 12},
}
DEFAULT_SHAPE = {"small": (8, 256), "125m": (16, 1024)}
"""(micro-batch sequences, seq_len) per model size"""

LR, WEIGHT_DECAY, BETAS, GRAD_CLIP, MIN_LR_RATIO, SEED = 3e-4, 0.1, (0.9, 0.95), 1.0, 0.1, 0


def quietly(run: Callable[[], T], wait: bool, label: str) -> tuple[T, float]:
    """``contention.undisturbed`` with the benchmarks this one waits for and its TRIES."""
    return undisturbed(run, wait, label, TRIES, WAIT_PATTERN)


# ---------------------------------------------------------------------------------------------------- setup

@dataclass(frozen=True)
class Setup:
    corpus: Path
    tokenizer: Path


def build_lm(out: Path) -> Path:
    """The quickstart's English KenLM model, trained as tests/conftest.py::quickstart_lm trains it."""
    if not (out / "lm.binary").exists():
        say(f"setup: curate lm train -> {out}")
        run_cli("curate", ["lm", "train", "--input", str(QUICKSTART_WIKI), "--lang", "en", "--order", "4",
                           "--vocab-size", "8000", "--prune", "0", "1", "1", "--out", str(out)])
    return out


def perplexity_override(lm: Path) -> str:
    """The recipe override pointing the quickstart's perplexity step at ``lm``."""
    steps = yaml.safe_load(QUICKSTART.read_text())["steps"]
    index = next(i for i, s in enumerate(steps) if isinstance(s, dict) and "perplexity" in s)
    return f"steps[{index}].perplexity.models.en={lm}"


def build_corpus(out: Path, lm: Path) -> Path:
    """The quickstart corpus (`curate run recipes/quickstart.yaml`), 2 workers."""
    if not (out / "manifest.json").exists():
        say(f"setup: curate run recipes/quickstart.yaml -> {out}")
        run_cli("curate", ["run", str(QUICKSTART), perplexity_override(lm), "--output", str(out), "--workers", "2"])
    return out


def build_setup(root: Path) -> Setup:
    lm = build_lm(root / "lm" / "en")
    corpus = build_corpus(root / "corpus", lm)
    tokenizer = train_tokenizer(root / f"tokenizer-{TOKENIZER_VOCAB}", corpus, TOKENIZER_VOCAB)
    from train import data as data_mod
    from train.config import DataConfig

    data_mod.prepare(corpus, tokenizer, DataConfig(workers=2))  # the token cache, built once
    return Setup(corpus, tokenizer)


# ---------------------------------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class Shape(StepSchedule):
    model_size: str
    batch: int
    seq_len: int
    warmup: int
    steps: int
    device: str
    precision: str  # "fp32" | "bf16"
    compile: bool = False

    @property
    def tokens_timed(self) -> int:
        return self.steps * self.batch * self.seq_len


def pretrain_config(setup: Setup, shape: Shape, out: Path) -> Any:
    """Our PretrainConfig for ``shape``: eval, checkpoints and logging beyond the run, tensorboard off."""
    from train.config import PretrainConfig

    never = 10**9
    return PretrainConfig.model_validate({
        "corpus": str(setup.corpus), "tokenizer": str(setup.tokenizer), "out": str(out), "seed": SEED,
        "model": {"config": dict(MODEL_SIZES[shape.model_size])},
        "data": {"seq_len": shape.seq_len, "max_repetition": 1000, "workers": 2},
        "optim": {"batch_size": shape.batch, "grad_accum": 1, "max_steps": shape.total_steps, "lr": LR,
                  "min_lr_ratio": MIN_LR_RATIO, "warmup_steps": shape.lr_warmup, "weight_decay": WEIGHT_DECAY,
                  "betas": list(BETAS), "grad_clip": GRAD_CLIP, "precision": shape.precision,
                  "compile": shape.compile},
        "eval": {"every": never, "tokens_per_domain": shape.seq_len},
        "checkpoint": {"every": never}, "log": {"every": never, "tensorboard": False},
    })


def hf_arguments(shape: Shape, out: Path, optim: str | None) -> Any:
    """TrainingArguments matching our optimizer and schedule; no eval, saving, logging or reporting."""
    from transformers import TrainingArguments

    extra = {"optim": optim} if optim else {}
    return TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=shape.batch, gradient_accumulation_steps=1,
        max_steps=shape.total_steps, learning_rate=LR, weight_decay=WEIGHT_DECAY, adam_beta1=BETAS[0],
        adam_beta2=BETAS[1], adam_epsilon=1e-8, max_grad_norm=GRAD_CLIP, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": MIN_LR_RATIO}, warmup_steps=shape.lr_warmup, eval_strategy="no",
        save_strategy="no", logging_strategy="no", report_to=[], dataloader_num_workers=0,
        use_cpu=shape.device == "cpu", bf16=shape.precision == "bf16", seed=SEED, disable_tqdm=True,
        remove_unused_columns=False, torch_compile=shape.compile, **extra)


# ---------------------------------------------------------------------------------------------------- timing

def new_pretrainer(setup: Setup, shape: Shape, out: Path) -> Any:
    from train.pretrain import Pretrainer

    return Pretrainer(pretrain_config(setup, shape, out))


def time_ours(setup: Setup, shape: Shape, out: Path) -> float:
    """Seconds of ``shape.steps`` calls of ``Pretrainer.train_step`` after ``shape.warmup`` untimed ones."""
    trainer = new_pretrainer(setup, shape, out)
    trainer.model.train()
    run = after_warmup(trainer, shape.warmup, shape.steps)
    synchronize(shape.device)
    t0 = time.perf_counter()
    run()
    synchronize(shape.device)
    return time.perf_counter() - t0


class PackedSequences(torch.utils.data.Dataset):
    """Our sampler's (n, seq_len + 1) sequences as HF causal-LM examples with the targets ours uses."""

    def __init__(self, sequences: np.ndarray) -> None:
        self.seqs = torch.from_numpy(np.ascontiguousarray(sequences))

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.seqs[i]
        return {"input_ids": s[:-1], "labels": s[1:], "shift_labels": s[1:]}


def sampler_sequences(setup: Setup, shape: Shape, out: Path) -> np.ndarray:
    """Every sequence our loop reads for ``shape.total_steps`` steps, in its order."""
    trainer = new_pretrainer(setup, shape, out)
    arr, _ = trainer.sampler.batch(0, shape.total_steps * trainer.global_batch)
    return arr


def fresh_model(setup: Setup, shape: Shape) -> torch.nn.Module:
    """The model ``Pretrainer`` builds (same seed, same config, same initial weights), cache off."""
    from transformers import AutoTokenizer

    from train.config import ModelConfig
    from train.model import build

    tok = AutoTokenizer.from_pretrained(str(setup.tokenizer))
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    special = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id}
    model = build(ModelConfig(config=dict(MODEL_SIZES[shape.model_size])), len(tok), shape.seq_len, special)
    model.config.use_cache = False
    return model


def new_hf_trainer(setup: Setup, shape: Shape, sequences: np.ndarray, out: Path, optim: str | None,
                   callbacks: list[Any]) -> Any:
    from transformers import PrinterCallback, Trainer, default_data_collator

    trainer = Trainer(model=fresh_model(setup, shape), args=hf_arguments(shape, out, optim),
                      train_dataset=PackedSequences(sequences), data_collator=default_data_collator,
                      callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # the end-of-training metrics print; nothing else is logged
    return trainer


def time_hf(setup: Setup, shape: Shape, sequences: np.ndarray, out: Path, optim: str | None) -> float:
    """Seconds of ``shape.steps`` HF Trainer steps after ``shape.warmup`` untimed ones (end of step to end of step)."""
    clock = step_clock(shape.warmup, shape.total_steps, shape.device)
    new_hf_trainer(setup, shape, sequences, out, optim, [clock]).train()
    return clock.t1 - clock.t0


def hf_default_optim() -> str:
    from transformers import TrainingArguments

    return str(TrainingArguments(output_dir=str(OUT / "hf-probe"), report_to=[]).optim.value)


@dataclass
class Variant:
    name: str
    config: str
    run: Callable[[], float]
    seconds: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


def alternate(variants: list[Variant], repeat: int, wait: bool) -> None:
    """Each round runs every variant once, in order (A/B/C, A/B/C, ...), each undisturbed by other load."""
    for r in range(repeat):
        for v in variants:
            seconds, load = quietly(v.run, wait, v.name)
            v.seconds.append(seconds)
            v.load.append(load)
            say(f"  round {r + 1}/{repeat} {v.name:<28} {seconds:8.2f} s  (other load {load:.2f} cores)")


def first_loss_check(setup: Setup, shape: Shape, sequences: np.ndarray, out: Path) -> tuple[float, float]:
    """Loss of the first micro-batch before any update: ours (``train_step``) and the HF model on the HF dataset's
    first examples (same weights, same targets): they must agree."""
    from transformers import default_data_collator

    ours = new_pretrainer(setup, shape, out).train_step()["loss"]
    model = fresh_model(setup, shape).to(torch.device(shape.device if torch.cuda.is_available() else "cpu"))
    batch = default_data_collator([PackedSequences(sequences)[i] for i in range(shape.batch)])
    batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
    ctx = torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16) if shape.precision == "bf16" \
        else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        hf = float(model(**batch).loss)
    return ours, hf


# ---------------------------------------------------------------------------------------------------- data path

def data_sampler(setup: Setup, seq_len: int, total_sequences: int) -> Any:
    """The mixture sampler over the real token cache at ``seq_len`` (repetition unbounded: speed only)."""
    from train import data as data_mod
    from train.config import DataConfig

    cfg = DataConfig(seq_len=seq_len, max_repetition=1e9, workers=2)
    return data_mod.sampler(data_mod.prepare(setup.corpus, setup.tokenizer, cfg), cfg, total_sequences, SEED)


def sweep_batches(sampler: Any, batch: int, batches: int) -> None:
    for k in range(batches):
        sampler.batch(k * batch, batch)


def time_data_path(setup: Setup, seq_len: int, batch: int, batches: int, repeat: int,
                   wait: bool) -> tuple[list[float], float]:
    """Seconds of ``batches`` calls of ``MixtureSampler.batch(start, batch)`` per repeat (one untimed pass first
    to fault the pages in), and the other load seen."""
    sampler = data_sampler(setup, seq_len, batches * batch)
    sweep_batches(sampler, batch, batches)

    def timings() -> list[float]:
        seconds = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            sweep_batches(sampler, batch, batches)
            seconds.append(time.perf_counter() - t0)
        return seconds

    return quietly(timings, wait, f"data path {batch} x {seq_len}")


# ---------------------------------------------------------------------------------------------------- FLOPs

@dataclass(frozen=True)
class Flops:
    per_token: float  # train.model.flops_per_token
    per_token_with_head: float  # + 6 x vocab x hidden (the LM-head matmul)
    parameters: int
    non_embedding: int


def model_flops(setup: Setup, shape: Shape) -> Flops:
    from train.model import flops_per_token, parameter_count

    model = fresh_model(setup, shape)
    total, non_emb = parameter_count(model)
    c = model.config
    per_token = flops_per_token(model, shape.seq_len)
    return Flops(per_token, per_token + 6.0 * c.vocab_size * c.hidden_size, total, non_emb)


def matmul_flops(device: str, dtype: torch.dtype, n: int, repeat: int = 5) -> float:
    """Best FLOP/s of an n x n matmul: what this device reaches on the ideal kernel."""
    dev = torch.device(device)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


# ---------------------------------------------------------------------------------------------------- profiling

def ours_steps(setup: Setup, shape: Shape, out: Path) -> Callable[[], None]:
    """A callable running ``shape.steps`` train steps of a trainer already past its warmup."""
    return after_warmup(new_pretrainer(setup, shape, out), shape.warmup, shape.steps)


def hf_profiled(setup: Setup, shape: Shape, sequences: np.ndarray, out: Path, device: str) -> str:
    """torch.profiler table of the HF Trainer's timed steps (profiler started/stopped by a callback)."""
    prof = torch_profiler(device)
    window = profile_window(prof, shape.warmup, shape.total_steps)
    new_hf_trainer(setup, shape, sequences, out, None, [window]).train()
    return operator_table(prof.key_averages(), device, 15)


def optimizer_step_times(setup: Setup, shape: Shape, steps: int = 20) -> list[list[str]]:
    """Seconds per ``optimizer.step()`` (random gradients) for torch.optim.AdamW with two param groups as ours
    builds it: the implementation torch picks by default, ``foreach=True`` and ``fused=True`` (ours)."""
    model = fresh_model(setup, shape).to(shape.device if torch.cuda.is_available() else "cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    decay, no_decay = [p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2]
    rows = []
    for label, kw in (("torch default (per-tensor loop on CPU)", {}), ("foreach=True", {"foreach": True}),
                      ("fused=True (ours, and HF's default adamw_torch_fused)", {"fused": True})):
        groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, **kw)
        opt.step()
        synchronize(shape.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.step()
        synchronize(shape.device)
        rows.append([label, f"{1000 * (time.perf_counter() - t0) / steps:.2f}"])
    return rows


# ---------------------------------------------------------------------------------------------------- report

def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def results_table(variants: list[Variant], shape: Shape, flops: Flops, peak: float | None,
                  peak_label: str) -> tuple[str, dict[str, float]]:
    """The main table and the median tokens/s per variant."""
    rows, medians = [], {}
    for v in variants:
        rates = [shape.tokens_timed / s for s in v.seconds]
        med = statistics.median(rates)
        medians[v.name] = med
        achieved = med * flops.per_token
        mfu = f"{100 * achieved / peak:.2f} %" if peak else "-"
        rows.append([v.name, v.config, f"{shape.steps} x {shape.batch} x {shape.seq_len}",
                     f"{statistics.median(v.seconds):.2f}", f"**{fmt_rate(med)}**",
                     f"{fmt_rate(min(rates))}–{fmt_rate(max(rates))}", f"{achieved / 1e9:.2f}",
                     f"{med * flops.per_token_with_head / 1e9:.2f}", mfu, f"{max(v.load):.2f}"])
    head = ["loop", "config", "timed steps x seqs x len", "median s", "tokens/s (median)", "tokens/s range",
            "GFLOP/s (flops_per_token)", "GFLOP/s (+ LM head)", f"MFU vs {peak_label}", "max other load (cores)"]
    return markdown(head, rows, "ll" + "r" * 8), medians


def machine_line(device: str) -> str:
    dev = f"cuda ({torch.cuda.get_device_name(0)})" if device == "cuda" and torch.cuda.is_available() else "cpu"
    return torch_machine_line(dev, "transformers")


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--model-size", choices=sorted(MODEL_SIZES), default=None,
                   help="small (~4M params; default on cpu) or 125m (default on cuda)")
    p.add_argument("--batch-size", type=int, default=None, help="micro-batch sequences (default 8, 16 for 125m)")
    p.add_argument("--seq-len", type=int, default=None, help="default 256 (1024 for 125m)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before them (>= 1)")
    p.add_argument("--repeat", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--data-seq-len", type=int, default=2048)
    p.add_argument("--data-batch", type=int, default=32)
    p.add_argument("--data-batches", type=int, default=200, help="MixtureSampler.batch calls per data timing")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help=f"peak for MFU (default {H100_BF16_DENSE_TFLOPS:g} with --device cuda: H100 bf16 dense; on "
                        "cpu the measured fp32 matmul FLOP/s)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in both loops")
    p.add_argument("--profile", action="store_true", help="operator tables, loop cProfile, AdamW step alone")
    p.add_argument("--dry-run", action="store_true", help="1 + 1 steps at 2 x 32, nothing recorded")
    p.add_argument("--no-wait", action="store_true", help="time at once even if other benchmarks run")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args(argv)
    args.model_size = args.model_size or ("125m" if args.device == "cuda" else "small")
    if args.warmup < 1:
        p.error("--warmup must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available() and not args.dry_run:
        p.error("--device cuda: no CUDA device here (use --dry-run to check the configuration on CPU)")
    return args


def make_shape(args: argparse.Namespace) -> Shape:
    batch, seq_len = DEFAULT_SHAPE[args.model_size]
    batch, seq_len = args.batch_size or batch, args.seq_len or seq_len
    device = args.device if torch.cuda.is_available() else "cpu"
    precision = "bf16" if args.device == "cuda" else "fp32"
    if args.dry_run:
        return Shape(args.model_size, 2, 32, 1, 1, device, precision, args.compile)
    return Shape(args.model_size, batch, seq_len, args.warmup, args.steps, device, precision, args.compile)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mixlab import logs

    logs.setup(quiet=True)
    import transformers

    transformers.logging.set_verbosity_error()
    wait = not args.no_wait
    record = not (args.no_record or args.dry_run)
    command, commit = command_line(), git_commit()
    shape = make_shape(args)
    if wait:
        wait_until_quiet(pattern=WAIT_PATTERN)
    setup = build_setup(OUT)
    runs = OUT / "runs"
    flops = model_flops(setup, shape)
    say(f"model {args.model_size}: {MODEL_SIZES[args.model_size]}, vocab {TOKENIZER_VOCAB}; {flops.parameters:,} "
        f"parameters ({flops.non_embedding:,} non-embedding); {flops.per_token / 1e6:.2f} MFLOP/token "
        f"(flops_per_token), {flops.per_token_with_head / 1e6:.2f} with the LM head; shape {shape}")

    if args.peak_tflops is not None:
        peak, peak_label = args.peak_tflops * 1e12, f"peak {args.peak_tflops:g} TFLOP/s"
    elif args.device == "cuda":
        peak, peak_label = H100_BF16_DENSE_TFLOPS * 1e12, f"peak {H100_BF16_DENSE_TFLOPS:g} TFLOP/s (H100 bf16 dense)"
    else:
        peak = None
        peak_label = "measured fp32 matmul"
    mm_dtype = torch.bfloat16 if shape.precision == "bf16" and shape.device == "cuda" else torch.float32
    mm, _ = quietly(lambda: matmul_flops(shape.device, mm_dtype, 8192 if shape.device == "cuda" else 2048),
                        wait, "matmul")
    if peak is None:
        peak = mm
        peak_label = f"measured fp32 matmul ({mm / 1e9:.0f} GFLOP/s)"

    sequences = sampler_sequences(setup, shape, runs / "ours")
    loss_ours, loss_hf = first_loss_check(setup, shape, sequences, runs / "check")
    say(f"first-step loss: ours {loss_ours:.6f}, HF model on the HF dataset {loss_hf:.6f}")
    default_optim = hf_default_optim()
    compiled = ", torch.compile" if shape.compile else ""
    variants = [
        Variant("ours (train_step loop)",
                f"Pretrainer.train_step, torch.optim.AdamW fused (2 groups), {shape.precision}{compiled}",
                lambda: time_ours(setup, shape, runs / "ours")),
        Variant("HF Trainer (default optim)", f"Trainer, optim={default_optim}, {shape.precision}{compiled}",
                lambda: time_hf(setup, shape, sequences, runs / "hf", None)),
        Variant("HF Trainer (adamw_torch)", f"Trainer, optim=adamw_torch, {shape.precision}{compiled}",
                lambda: time_hf(setup, shape, sequences, runs / "hf", "adamw_torch")),
    ]
    say(f"timing {len(variants)} loops x {args.repeat if not args.dry_run else 1} rounds")
    alternate(variants, 1 if args.dry_run else args.repeat, wait)
    table, medians = results_table(variants, shape, flops, peak, peak_label)

    data_shapes = [(args.data_seq_len, args.data_batch, 5 if args.dry_run else args.data_batches),
                   (shape.seq_len, shape.batch, 5 if args.dry_run else args.data_batches)]
    data_rows, data_rates = [], {}
    step_s = statistics.median(variants[0].seconds) / shape.steps
    for L, B, n in data_shapes:
        secs, load = time_data_path(setup, L, B, n, 1 if args.dry_run else args.repeat, wait)
        rate = statistics.median([n * B * L / s for s in secs])
        data_rates[(L, B)] = rate
        per_batch = statistics.median(secs) / n
        share = f"{100 * per_batch / step_s:.2f} %" if (L, B) == (shape.seq_len, shape.batch) else "-"
        data_rows.append([f"{B} x {L}", f"{n}", f"{per_batch * 1e3:.2f}", f"{per_batch / B * 1e6:.1f}",
                          f"**{fmt_rate(rate)}**", share, f"{load:.2f}"])
    data_table = markdown(["batch x seq_len", "batches", "ms / batch", "µs / sequence", "tokens/s (median)",
                           "share of one ours train step", "other load (cores)"], data_rows)
    big = data_rates[(args.data_seq_len, args.data_batch)]

    ours = medians["ours (train_step loop)"]
    ratio_default = ours / medians["HF Trainer (default optim)"]
    ratio_same = ours / medians["HF Trainer (adamw_torch)"]
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [
        f"- model: Llama ({args.model_size}) {MODEL_SIZES[args.model_size]}, vocab {TOKENIZER_VOCAB} (tied "
        f"embeddings), {flops.parameters:,} parameters ({flops.non_embedding:,} non-embedding); "
        f"`flops_per_token` {flops.per_token / 1e6:.2f} MFLOP/token at seq_len {shape.seq_len} "
        f"({flops.per_token_with_head / 1e6:.2f} counting the LM-head matmul it leaves out)",
        f"- micro-batch {shape.batch} x {shape.seq_len}, {shape.precision}, {shape.warmup} warmup + {shape.steps} "
        f"timed steps per run, {len(variants[0].seconds)} alternating rounds, median; AdamW lr {LR:g}, betas "
        f"{BETAS}, wd {WEIGHT_DECAY}, clip {GRAD_CLIP}, warmup {shape.lr_warmup} then cosine to {MIN_LR_RATIO:g} x lr",
        f"- data: `{setup.corpus.relative_to(ROOT)}` (quickstart recipe), tokenizer "
        f"`{setup.tokenizer.relative_to(ROOT)}` (`train tokenizer --vocab-size {TOKENIZER_VOCAB}`); HF is fed the "
        f"{len(sequences)} sequences our sampler yields for these steps, precomputed in memory",
        f"- first-step loss (same weights, same first micro-batch): ours {loss_ours:.6f}, HF {loss_hf:.6f}",
        f"- measured matmul on this device: {mm / 1e9:,.1f} GFLOP/s ({str(mm_dtype).replace('torch.', '')})",
    ]
    summary = [
        f"- ours / HF Trainer (default optim, {default_optim}, the same fused AdamW kernel as ours): "
        f"**{ratio_default:.3f}x** (issue target >= {RATIO_TARGET:.1f}x: {met(ratio_default >= RATIO_TARGET)})",
        f"- ours / HF Trainer (adamw_torch, the per-tensor AdamW loop): **{ratio_same:.3f}x**",
        f"- data path `MixtureSampler.batch` {args.data_batch} x {args.data_seq_len}: **{fmt_rate(big)} tokens/s** "
        f"(issue target >= {DATA_TARGET_TOKENS_S / 1e6:.0f}M: {met(big >= DATA_TARGET_TOKENS_S)})",
    ]
    sections = ["Training loop:", "", table, "", *summary, "", "Data path (`MixtureSampler.batch`, real token cache, "
                "pages already faulted in):", "", data_table]

    if big < DATA_TARGET_TOKENS_S or args.profile:
        sampler = data_sampler(setup, args.data_seq_len, args.data_batches * args.data_batch)
        run = lambda: sweep_batches(sampler, args.data_batch, args.data_batches)  # noqa: E731
        run()
        sections += ["", f"cProfile of {args.data_batches} x `MixtureSampler.batch(start, {args.data_batch})` at "
                     f"seq_len {args.data_seq_len} (a separate, untimed run; profiler overhead included), top "
                     "functions by own time:", "", cprofile_table(run, 12)]
    if args.profile:
        sections += profile_sections(setup, shape, sequences, runs, wait)

    entry = "\n".join([*header("pretraining loop throughput vs HF Trainer; data path", command, commit,
                                machine_line(shape.device)), *lines, "", *sections])
    print("\n" + entry)
    if record:
        append_results(entry)
        say("\nappended to benchmarks/RESULTS.md")
    return 0


def profile_sections(setup: Setup, shape: Shape, sequences: np.ndarray, runs: Path, wait: bool) -> list[str]:
    """--profile: torch.profiler tables of ours and HF, cProfile of our loop, AdamW step alone (each undisturbed)."""
    ours_ops, _ = quietly(lambda: torch_profile_table(ours_steps(setup, shape, runs / "prof"), shape.device),
                              wait, "torch.profiler ours")
    hf_ops, _ = quietly(lambda: hf_profiled(setup, shape, sequences, runs / "hf-prof", shape.device), wait,
                            "torch.profiler HF")
    loop, _ = quietly(lambda: cprofile_table(ours_steps(setup, shape, runs / "prof"), 12, only="/train/"), wait,
                          "cProfile ours")
    adamw, _ = quietly(lambda: optimizer_step_times(setup, shape), wait, "optimizer.step")
    return ["", f"torch.profiler, {shape.steps} steps after {shape.warmup} warmup (separate, untimed runs), top "
            f"operators by self {'CUDA' if shape.device == 'cuda' else 'CPU'} time. Ours:", "", ours_ops, "",
            "HF Trainer (default optim):", "", hf_ops,
            "", "cProfile of our loop (same steps; profiler overhead included), project (`train/`) functions by "
            "cumulative time:", "", loop,
            "", "`optimizer.step()` alone on this model's parameters (random gradients, 20 steps):", "",
            markdown(["torch.optim.AdamW", "ms / step"], adamw)]


if __name__ == "__main__":
    sys.exit(main())
