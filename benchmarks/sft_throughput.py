"""Throughput of `train sft` (LoRA, packed rows) against peft + a plain Hugging Face `Trainer` (padded batches).

What it measures, in one run, on one base model, one data set and one LoRA config:

* **ours (packed)**: mixlab's SFT loop, ``SFTTrainer(cfg).train_step()`` called in a loop (the body of
  ``Trainer.run`` in ``train/loop.py``, which `train sft` runs; eval, checkpoints, logging and tensorboard are set
  beyond the run, so they are not part of the timed steps). ``data.packing: true``: several samples per row of at
  most ``max_len`` tokens, positions restarting at each sample (the model's own masks, `train/packing.py`).
* **HF Trainer (padded)**: ``transformers.Trainer`` on ``peft.get_peft_model(base, <the same LoraConfig>)`` (built
  by ``train.sft.peft_config``, same seed, so the same initial adapter weights), fed *the same tokenized examples*
  (``train.sft_data.prepare`` via the SFTTrainer: identical ``input_ids`` and ``labels``) in ours' epoch order
  (``train_sampling_strategy="sequential"``), one sample per row, padded to the longest of each batch by
  ``DataCollatorForSeq2Seq`` (labels padded with -100); ``per_device_train_batch_size`` equal to ours, the same
  optimizer (``optim="adamw_torch_fused"``: the fused ``torch.optim.AdamW`` ours uses; lr, betas, no weight
  decay, grad clip 1.0, linear warmup then cosine to 10 % of lr), no eval, no saving, no logging, ``report_to=[]``,
  ``dataloader_num_workers=0``, ``use_cpu=True``.
* Both: fp32 on CPU, the same micro-batch size (rows per step), grad_accum 1, ``--warmup`` untimed optimizer steps
  then ``--steps`` timed ones in a freshly built trainer; the loops alternate (A/B, A/B, ...) ``--repeat`` times
  and the median is reported.
* **Throughput is sample tokens per second**: the tokens of the samples each timed step trains on (pad excluded),
  so packing's advantage is real work, not padding. Also reported: target (label) tokens/s, steps/s, and how full
  the batches are (sample tokens / batch tensor size ``rows x longest row``), over the timed steps and over a
  whole epoch. Ratio ours/HF; issue target >= 1.5x on CPU.
* **Packing what-ifs** (counted, not timed): the fill unbounded first-fit packing would reach on the same epoch
  order, and first-fit-decreasing, next to ``train.sft_data.pack`` (first-fit over a window of
  ``sft_data.PACK_WINDOW`` open rows).
* **Checks** (before timing, same weights, dropout off): the loss of the first padded batch through our collator
  (``packing`` off) equals the HF collator's loss through the same model (the tokens and labels are identical);
  the loss of the first packed batch equals the token-weighted mean of its samples' losses computed one sample at
  a time (packing changes no sample's loss).
* ``--profile``: a cProfile of our loop (``train/`` functions by cumulative time) and ``torch.profiler`` operator
  tables of one ours and one HF run (separate, untimed runs).

Setup (built once under ``benchmarks/.work/sft_throughput/``, git-ignored, reused by later runs): a small corpus by
``curate run`` on the quickstart's text (``recipes/data/quickstart/``, steps normalize + exact_dedup only: no
KenLM model needed), a 4000-token tokenizer by ``train tokenizer``, and a Llama base model from a config (hidden
256, 4 layers, 4 heads, intermediate 688, tied embeddings; ~4.2M parameters, 3.2M non-embedding; untrained:
weights do not change throughput) saved with ``save_pretrained`` together with the tokenizer. Data:
``/work/shared/data/sft/alpaca_en_demo.json`` (999 Alpaca records; ``max_len`` 512, 5 % held out, as `train sft`
does).

Before setup and before each timed run the script waits until no other benchmark runs
(``pgrep -f "benchmarks/(pipeline|minhash|dedup|langid|perplexity|quality|train_throughput)"``, polled every 30 s)
and records the cores other processes kept busy during each timing.

Run (from the project root, with the project's virtualenv):

    .venv/bin/python benchmarks/sft_throughput.py               # 8 rows x max_len 512, 3 + 20 steps, 3 rounds
    .venv/bin/python benchmarks/sft_throughput.py --profile     # + cProfile of our loop, operator tables
    .venv/bin/python benchmarks/sft_throughput.py --lora-dropout 0   # both loops without LoRA dropout
    .venv/bin/python benchmarks/sft_throughput.py --no-wait --warmup 1 --steps 2 --repeat 1 --no-record  # smoke

Prints a table and appends an entry to ``benchmarks/RESULTS.md`` (unless ``--no-record``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contention import undisturbed, wait_until_quiet  # noqa: E402
from profiling import cprofile_table, operator_table, torch_profile_table, torch_profiler  # noqa: E402
from report import (ROOT, SHARED, WORK, append_results, command_line, git_commit, header, markdown,  # noqa: E402
                    say, torch_machine_line)
from train_bench import (StepSchedule, after_warmup, hf_offline, profile_window, run_cli, step_clock,  # noqa: E402
                         train_tokenizer)

hf_offline()

import torch  # noqa: E402
import yaml  # noqa: E402

OUT = WORK / "sft_throughput"
QUICKSTART_DATA = ROOT / "recipes" / "data" / "quickstart"
ALPACA = SHARED / "sft" / "alpaca_en_demo.json"
WAIT_PATTERN = "benchmarks/(pipeline|minhash|dedup|langid|perplexity|quality|train_throughput)"
TOKENIZER_VOCAB = 4000
MODEL = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4}
LORA_R, LORA_ALPHA = 8, 16.0
LR, BETAS, GRAD_CLIP, MIN_LR_RATIO, SEED = 2e-4, (0.9, 0.95), 1.0, 0.1, 0
HELDOUT_FRACTION = 0.05
RATIO_TARGET = 1.5
IGNORE = -100


# ---------------------------------------------------------------------------------------------------- setup

def write_recipe(path: Path, out: Path) -> Path:
    """A recipe over the quickstart's text with cheap steps only (no perplexity: no KenLM model needed)."""
    d = QUICKSTART_DATA
    recipe = {
        "name": "sft-throughput-tokenizer", "seed": 1234,
        "sources": [{"path": str(d / "web" / "c4_demo.jsonl"), "format": "jsonl", "domain": "web"},
                    {"path": str(d / "web" / "cc_en_head-*.jsonl.gz"), "format": "jsonl.gz", "domain": "web",
                     "id_field": "id"},
                    {"path": str(d / "wiki" / "wiki_demo.txt"), "format": "lines", "domain": "wiki"},
                    {"path": str(d / "books" / "**" / "*.txt"), "format": "txt", "domain": "books"},
                    {"path": str(d / "code" / "**" / "*.py"), "format": "txt", "domain": "code"}],
        "steps": [{"normalize": {}}, {"exact_dedup": {}}],
        "output": {"dir": str(out)}, "executor": {"workers": 2},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def build_corpus(root: Path) -> Path:
    """`curate run` on the quickstart text (normalize + exact_dedup), 2 workers."""
    out = root / "corpus"
    if not (out / "manifest.json").exists():
        recipe = write_recipe(root / "recipe.yaml", out)
        say(f"setup: curate run {recipe.relative_to(ROOT)} -> {out.relative_to(ROOT)}")
        run_cli("curate", ["run", str(recipe), "--fresh"])
    return out


FAMILY_EXTRA: dict[str, dict[str, Any]] = {"llama": {}, "qwen2": {}, "mistral": {"sliding_window": None},
                                            "phi3": {}, "gemma2": {"head_dim": 64}}
"""per family, what it needs beyond ``MODEL`` for the same shape (Gemma2's default head_dim is 256)"""


def build_base(root: Path, tokenizer: Path, family: str = "llama") -> Path:
    """An untrained ``family`` model of the shape ``MODEL`` (built by ``train.model.build`` from the family's
    transformers config) saved with ``save_pretrained`` and the tokenizer: the directory `train sft` takes as
    ``base``."""
    out = root / ("base" if family == "llama" else f"base-{family}")
    if (out / "config.json").exists():
        return out
    from transformers import AutoTokenizer

    from train.config import ModelConfig
    from train.model import build

    say(f"setup: {family} {MODEL} -> {out.relative_to(ROOT)}")
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    torch.manual_seed(SEED)
    special = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id}
    config = {**MODEL, "max_position_embeddings": 2048, "tie_word_embeddings": True, **FAMILY_EXTRA[family]}
    model = build(ModelConfig(architecture=family, config=config), len(tok), 2048, special)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def build_setup(root: Path, family: str = "llama") -> Path:
    """The base model directory (with its tokenizer), built once."""
    corpus = build_corpus(root)
    return build_base(root, train_tokenizer(root / f"tokenizer-{TOKENIZER_VOCAB}", corpus, TOKENIZER_VOCAB), family)


# ---------------------------------------------------------------------------------------------------- configs

@dataclass(frozen=True)
class Shape(StepSchedule):
    batch: int  # rows per micro-batch (= per optimizer step)
    max_len: int
    warmup: int
    steps: int
    lora_dropout: float = 0.05


def sft_config(base: Path, shape: Shape, out: Path, packing: bool = True) -> Any:
    """Our SFTConfig: LoRA r 8 / alpha 16 on every attention and MLP linear, fp32; eval, checkpoints and logging
    beyond the run, tensorboard off."""
    from train.config import SFTConfig

    never = 10**9
    return SFTConfig.model_validate({
        "base": str(base), "out": str(out), "seed": SEED,
        "data": {"files": [{"path": str(ALPACA), "format": "alpaca"}], "max_len": shape.max_len,
                 "packing": packing, "heldout_fraction": HELDOUT_FRACTION},
        "peft": {"method": "lora", "r": LORA_R, "alpha": LORA_ALPHA, "dropout": shape.lora_dropout},
        "optim": {"batch_size": shape.batch, "grad_accum": 1, "max_steps": shape.total_steps, "lr": LR,
                  "min_lr_ratio": MIN_LR_RATIO, "warmup_steps": shape.lr_warmup, "weight_decay": 0.0,
                  "betas": list(BETAS), "grad_clip": GRAD_CLIP, "precision": "fp32"},
        "eval": {"every": never, "tokens_per_domain": shape.max_len}, "checkpoint": {"every": never},
        "log": {"every": never, "tensorboard": False},
    })


def hf_arguments(shape: Shape, out: Path, sampling: str) -> Any:
    """TrainingArguments matching our optimizer and schedule; no eval, saving, logging or reporting."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=shape.batch, gradient_accumulation_steps=1,
        max_steps=shape.total_steps, learning_rate=LR, weight_decay=0.0, adam_beta1=BETAS[0], adam_beta2=BETAS[1],
        adam_epsilon=1e-8, max_grad_norm=GRAD_CLIP, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": MIN_LR_RATIO}, warmup_steps=shape.lr_warmup, optim="adamw_torch_fused",
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[], dataloader_num_workers=0,
        use_cpu=True, seed=SEED, disable_tqdm=True, remove_unused_columns=False, label_names=["labels"],
        train_sampling_strategy=sampling)


# ---------------------------------------------------------------------------------------------------- token counts

@dataclass
class BatchStats:
    """What one micro-batch holds: sample tokens (pad excluded), label (target) tokens, samples, tensor size."""
    tokens: int
    labels: int
    samples: int
    rows: int
    length: int  # the batch tensor's length (its longest row)

    @property
    def cells(self) -> int:
        return self.rows * self.length


def sum_stats(batches: list[BatchStats]) -> BatchStats:
    return BatchStats(sum(b.tokens for b in batches), sum(b.labels for b in batches),
                      sum(b.samples for b in batches), sum(b.rows for b in batches),
                      sum(b.cells for b in batches) // max(1, sum(b.rows for b in batches)))


def fill(batches: list[BatchStats]) -> float:
    """Sample tokens / batch tensor cells: how full the batches are."""
    return sum(b.tokens for b in batches) / max(1, sum(b.cells for b in batches))


def row_stats(examples: list[Any], rows: list[list[int]]) -> BatchStats:
    """Counts of one batch of rows (lists of example indices), as our collator lays them out."""
    lengths = [sum(len(examples[i].ids) for i in r) for r in rows]
    labels = sum(int((examples[i].labels[1:] != IGNORE).sum()) for r in rows for i in r)
    return BatchStats(sum(lengths), labels, sum(len(r) for r in rows), len(rows), max(lengths))


def ours_step_stats(trainer: Any, steps: range) -> list[BatchStats]:
    """What ``trainer.train_step()`` reads at each of ``steps`` (grad_accum 1, one process)."""
    B = trainer.cfg.optim.batch_size
    return [row_stats(trainer.prepared.train, [trainer._row(p) for p in range(s * B, s * B + B)]) for s in steps]


def first_fit(examples: list[Any], order: list[int], row_len: int) -> list[list[int]]:
    """What-if packing (not mixlab's): each example, in ``order``, into the first row with room for it."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(examples[i].ids)
        r = next((k for k, free in enumerate(room) if free >= n), None)
        if r is None:
            rows.append([])
            room.append(row_len)
            r = len(rows) - 1
        rows[r].append(i)
        room[r] -= n
    return rows


def epoch_stats(examples: list[Any], rows: list[list[int]], batch: int) -> list[BatchStats]:
    """Counts of every micro-batch of one epoch of ``rows``."""
    return [row_stats(examples, rows[k:k + batch]) for k in range(0, len(rows), batch)]


# ---------------------------------------------------------------------------------------------------- ours

def new_sft_trainer(base: Path, shape: Shape, out: Path, packing: bool = True) -> Any:
    from train.sft import SFTTrainer

    return SFTTrainer(sft_config(base, shape, out, packing))


def time_ours(base: Path, shape: Shape, out: Path) -> tuple[float, list[BatchStats]]:
    """Seconds of ``shape.steps`` calls of ``SFTTrainer.train_step`` after ``shape.warmup`` untimed ones, and what
    the timed steps read."""
    trainer = new_sft_trainer(base, shape, out)
    trainer.model.train()
    run = after_warmup(trainer, shape.warmup, shape.steps)
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    return seconds, ours_step_stats(trainer, range(shape.warmup, shape.total_steps))


# ---------------------------------------------------------------------------------------------------- HF

@dataclass(frozen=True)
class HFData:
    """Our training examples as HF features, in ours' epoch-0 order."""
    features: list[dict[str, list[int]]]
    tokenizer: Any


def hf_data(trainer: Any) -> HFData:
    """The SFTTrainer's tokenized training examples (identical ids and labels) in the order it packs them, and its
    tokenizer padding on the right (the `train tokenizer` LlamaTokenizer defaults to the left)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trainer.cfg.tokenizer or trainer.cfg.base, padding_side="right")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = [i for row in trainer._rows(0) for i in row]
    assert sorted(order) == list(range(len(trainer.prepared.train))), "packed rows must cover the epoch once"
    feats = []
    for i in order:
        e = trainer.prepared.train[i]
        feats.append({"input_ids": e.ids.tolist(), "attention_mask": [1] * len(e.ids), "labels": e.labels.tolist()})
    return HFData(feats, tokenizer)


class CountingCollator:
    """``DataCollatorForSeq2Seq`` (pad to the longest in the batch, labels padded with -100) that records each
    batch's counts, in the order batches are made (batch k of the run is ``stats[k]``)."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorForSeq2Seq

        assert tokenizer.padding_side == "right"
        self.inner = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE)
        self.stats: list[BatchStats] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.inner(features)
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        self.stats.append(BatchStats(int(mask.sum()), int((labels[:, 1:] != IGNORE).sum()), ids.shape[0],
                                     ids.shape[0], ids.shape[1]))
        return batch


def hf_model(base: Path, shape: Shape) -> torch.nn.Module:
    """The base model with the LoRA adapter our SFTTrainer builds (same peft config, same seed: same weights)."""
    from peft import get_peft_model

    from train.sft import load_base, peft_config

    cfg = sft_config(base, shape, OUT / "runs" / "unused")
    torch.manual_seed(cfg.seed)
    model = load_base(str(base), False)
    return get_peft_model(model, peft_config(cfg, model))


def new_hf_trainer(base: Path, shape: Shape, data: HFData, out: Path, sampling: str, callbacks: list[Any]) -> Any:
    from transformers import PrinterCallback, Trainer

    trainer = Trainer(model=hf_model(base, shape), args=hf_arguments(shape, out, sampling),
                      train_dataset=data.features, data_collator=CountingCollator(data.tokenizer),
                      callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    return trainer


def time_hf(base: Path, shape: Shape, data: HFData, out: Path, sampling: str) -> tuple[float, list[BatchStats]]:
    """Seconds of ``shape.steps`` HF Trainer steps after ``shape.warmup`` untimed ones (end of step to end of
    step), and what the timed steps read."""
    clock = step_clock(shape.warmup, shape.total_steps)
    trainer = new_hf_trainer(base, shape, data, out, sampling, [clock])
    trainer.train()
    return clock.t1 - clock.t0, trainer.data_collator.stats[shape.warmup:shape.total_steps]


# ---------------------------------------------------------------------------------------------------- checks

@dataclass(frozen=True)
class Checks:
    ours_padded: float  # our collator, packing off, first B examples in epoch order
    hf_padded: float  # DataCollatorForSeq2Seq on the same examples, the same model
    packed: float  # our first packed batch
    packed_per_sample: float  # token-weighted mean of its samples' losses, one sample per forward


@torch.no_grad()
def loss_checks(trainer: Any, data: HFData) -> Checks:
    """Same weights, dropout off: our padded collation vs HF's, and a packed batch vs its samples one by one."""
    from transformers import DataCollatorForSeq2Seq

    B = trainer.cfg.optim.batch_size
    ex = trainer.prepared.train
    order = [i for row in trainer._rows(0) for i in row]
    trainer.module.eval()
    try:
        packing, trainer.packing = trainer.packing, False
        ours_padded = float(trainer.loss(trainer._collate([[ex[i]] for i in order[:B]], ["x"] * B)))
        per_sample = [(float(trainer.loss(trainer._collate([[ex[i]]], ["x"]))),
                       int((ex[i].labels[1:] != IGNORE).sum())) for r in trainer._rows(0)[:B] for i in r]
        trainer.packing = packing
        collate = DataCollatorForSeq2Seq(data.tokenizer, padding="longest", label_pad_token_id=IGNORE)
        hf_padded = float(trainer.module(**collate(data.features[:B])).loss)
        packed = float(trainer.loss(trainer.micro_batch(0, 0)))
    finally:
        trainer.module.train()
    weighted = sum(loss * n for loss, n in per_sample) / sum(n for _, n in per_sample)
    return Checks(ours_padded, hf_padded, packed, weighted)


# ---------------------------------------------------------------------------------------------------- timing

@dataclass
class Variant:
    name: str
    config: str
    run: Callable[[], tuple[float, list[BatchStats]]]
    seconds: list[float] = field(default_factory=list)
    stats: list[list[BatchStats]] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    def rates(self) -> list[float]:
        """Sample tokens/s of each round."""
        return [sum(b.tokens for b in st) / s for s, st in zip(self.seconds, self.stats)]


def alternate(variants: list[Variant], repeat: int, wait: bool) -> None:
    """Each round runs every variant once, in order (A/B, A/B, ...), after waiting for quiet."""
    for r in range(repeat):
        for v in variants:
            (seconds, stats), load = undisturbed(v.run, wait, v.name, tries=1, pattern=WAIT_PATTERN)
            v.load.append(load)
            v.seconds.append(seconds)
            v.stats.append(stats)
            say(f"  round {r + 1}/{repeat} {v.name:<24} {seconds:8.2f} s  {v.rates()[-1]:9,.0f} sample tokens/s  "
                f"(other load {v.load[-1]:.2f} cores)")


# ---------------------------------------------------------------------------------------------------- profiling

def ours_steps(base: Path, shape: Shape, out: Path) -> Callable[[], None]:
    """A callable running ``shape.steps`` train steps of a trainer already past its warmup."""
    trainer = new_sft_trainer(base, shape, out)
    trainer.model.train()
    return after_warmup(trainer, shape.warmup, shape.steps)


def hf_profiled(base: Path, shape: Shape, data: HFData, out: Path) -> str:
    """torch.profiler table of the HF Trainer's timed steps (profiler started/stopped by a callback)."""
    prof = torch_profiler("cpu")
    window = profile_window(prof, shape.warmup, shape.total_steps)
    new_hf_trainer(base, shape, data, out, "sequential", [window]).train()
    return operator_table(prof.key_averages(), "cpu")


def profile_sections(base: Path, shape: Shape, data: HFData, runs: Path) -> list[str]:
    """--profile: cProfile of our loop, operator tables of ours and HF (separate, untimed runs)."""
    return ["", f"cProfile of our loop ({shape.steps} steps after {shape.warmup} warmup; a separate, untimed run, "
            "profiler overhead included), `train/` functions by cumulative time:", "",
            cprofile_table(ours_steps(base, shape, runs / "prof"), 14, "/train/"),
            "", "torch.profiler, the same steps, top operators by self CPU time. Ours (packed):", "",
            torch_profile_table(ours_steps(base, shape, runs / "prof"), "cpu"), "", "HF Trainer (padded):", "",
            hf_profiled(base, shape, data, runs / "hf-prof")]


# ---------------------------------------------------------------------------------------------------- report

def fmt(x: float) -> str:
    return f"{x:,.0f}"


def results_table(variants: list[Variant], shape: Shape) -> tuple[str, dict[str, float]]:
    """The main table and the median sample tokens/s per variant."""
    rows, medians = [], {}
    for v in variants:
        rates = v.rates()
        med = statistics.median(rates)
        medians[v.name] = med
        secs = statistics.median(v.seconds)
        st = sum_stats([b for run in v.stats for b in run])
        n = len(v.stats)
        label_rate = statistics.median([sum(b.labels for b in bs) / s for s, bs in zip(v.seconds, v.stats)])
        rows.append([v.name, v.config, f"{shape.steps} x {shape.batch}", f"{secs:.2f}", f"{shape.steps / secs:.2f}",
                     f"{st.samples / n / shape.steps:.1f}", f"{st.length}",
                     f"{100 * fill([b for run in v.stats for b in run]):.1f} %", f"**{fmt(med)}**",
                     f"{fmt(min(rates))}–{fmt(max(rates))}", fmt(label_rate), f"{max(v.load):.2f}"])
    head = ["loop", "config", "timed steps x rows", "median s", "steps/s", "samples / step", "mean batch length",
            "non-pad fraction", "sample tokens/s (median)", "range", "label tokens/s", "max other load (cores)"]
    return markdown(head, rows, "ll" + "r" * 10), medians


def fill_table(trainer: Any, data: HFData, shape: Shape) -> str:
    """How full the batches are over a whole epoch: packed rows (ours) vs padded batches (HF), same order."""
    from train.sft_data import PACK_WINDOW

    ex, B = trainer.prepared.train, shape.batch
    ours = f"ours: packed rows (`sft_data.pack`, first-fit over a window of {PACK_WINDOW} open rows)"
    packed = epoch_stats(ex, trainer._rows(0), B)
    padded = epoch_stats(ex, [[i] for row in trainer._rows(0) for i in row], B)
    order = [i for row in trainer._rows(0) for i in row]
    ff = epoch_stats(ex, first_fit(ex, order, shape.max_len), B)
    ffd = epoch_stats(ex, first_fit(ex, sorted(order, key=lambda i: -len(ex[i].ids)), shape.max_len), B)
    rows = []
    for name, batches, per_row in ((ours, packed, shape.max_len),
                                   ("HF: one sample per row, padded", padded, None),
                                   ("what-if: first-fit packing in the same order (not timed)", ff, shape.max_len),
                                   ("what-if: first-fit-decreasing packing (not timed)", ffd, shape.max_len)):
        st = sum_stats(batches)
        to_max = f"{100 * st.tokens / (st.rows * per_row):.1f} %" if per_row else "-"
        rows.append([name, f"{len(batches):,}", f"{st.rows:,}", f"{st.samples / st.rows:.2f}", f"{st.length}",
                     f"{100 * fill(batches):.1f} %", to_max, f"{st.tokens / st.rows:.0f}"])
    return markdown(["layout (epoch 0, micro-batches of " + str(B) + " rows)", "micro-batches", "rows",
                     "samples / row", "mean batch length", "non-pad fraction (rows x longest)",
                     f"fill of max_len {shape.max_len}", "sample tokens / row"], rows)


def data_line(trainer: Any) -> str:
    s = next(iter(trainer.prepared.summary.values()))
    lengths = [len(e.ids) for e in trainer.prepared.train]
    return (f"- data: `{ALPACA}` ({s.get('records', 0)} records, {s.get('train', 0)} train, {s.get('heldout', 0)} "
            f"held out, {sum(v for k, v in s.items() if k.startswith('assistant tokens cut'))} dropped by max_len); "
            f"sample length mean {statistics.mean(lengths):.0f}, median {statistics.median(lengths):.0f}, max "
            f"{max(lengths)} tokens; tokenizer {TOKENIZER_VOCAB} BPE (`train tokenizer`), mixlab's default chat format")


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=8, help="rows per micro-batch, both loops (default 8)")
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before them (>= 1)")
    p.add_argument("--repeat", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="both loops (default 0.05, `train sft`'s)")
    p.add_argument("--hf-sampling", choices=["sequential", "random", "group_by_length"], default="sequential",
                   help="HF Trainer sampler (default sequential: ours' epoch order)")
    p.add_argument("--family", choices=sorted(FAMILY_EXTRA), default="llama",
                   help="the base model's family, same shape (default llama)")
    p.add_argument("--profile", action="store_true", help="cProfile of our loop, operator tables of both")
    p.add_argument("--no-wait", action="store_true", help="time at once even if other benchmarks run")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mixlab import logs

    logs.setup(quiet=True)
    import transformers

    transformers.logging.set_verbosity_error()
    wait = not args.no_wait
    command, commit = command_line(), git_commit()
    shape = Shape(args.batch_size, args.max_len, args.warmup, args.steps, args.lora_dropout)
    if wait:
        wait_until_quiet(pattern=WAIT_PATTERN)
    base = build_setup(OUT, args.family)
    runs = OUT / "runs"

    probe = new_sft_trainer(base, shape, runs / "probe")
    data = hf_data(probe)
    checks = loss_checks(probe, data)
    say(f"loss checks: padded batch ours {checks.ours_padded:.6f} / HF collator {checks.hf_padded:.6f}; packed "
        f"batch {checks.packed:.6f} / its samples one by one {checks.packed_per_sample:.6f}")
    trainable = sum(p.numel() for p in probe.module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in probe.module.parameters())
    claimed = shape.batch * shape.max_len  # SFTTrainer.tokens_per_step: what run()'s tokens_per_s counts

    variants = [
        Variant("ours (packed)", "SFTTrainer.train_step, packing (restarting position ids)",
                lambda: time_ours(base, shape, runs / "ours")),
        Variant("HF Trainer (padded)", f"peft + Trainer, DataCollatorForSeq2Seq, {args.hf_sampling} sampler",
                lambda: time_hf(base, shape, data, runs / "hf", args.hf_sampling)),
    ]
    say(f"timing {len(variants)} loops x {args.repeat} rounds ({shape.warmup} + {shape.steps} steps, "
        f"{shape.batch} rows, max_len {shape.max_len})")
    alternate(variants, args.repeat, wait)
    table, medians = results_table(variants, shape)
    ratio = medians["ours (packed)"] / medians["HF Trainer (padded)"]
    ours_stats = [b for run in variants[0].stats for b in run]
    real_per_step = sum(b.tokens for b in ours_stats) / len(ours_stats)

    met = "met" if ratio >= RATIO_TARGET else "NOT met"
    lines = [
        f"- base: untrained {args.family} {MODEL}, vocab {TOKENIZER_VOCAB}, tied embeddings "
        f"(`{base.relative_to(ROOT)}`); LoRA r {LORA_R}, alpha {LORA_ALPHA:g}, dropout {shape.lora_dropout:g} on "
        f"every decoder linear layer: {trainable:,} trainable of {total:,} parameters",
        data_line(probe),
        f"- micro-batch {shape.batch} rows (max_len {shape.max_len}), grad_accum 1, fp32 CPU, {shape.warmup} warmup "
        f"+ {shape.steps} timed optimizer steps per run, {args.repeat} alternating rounds (A/B), median; AdamW "
        f"(fused torch.optim.AdamW both) lr {LR:g}, betas {BETAS}, no weight decay, clip {GRAD_CLIP}, warmup "
        f"{shape.lr_warmup} then cosine to {MIN_LR_RATIO:g} x lr",
        "- throughput = sample tokens (pad excluded) of the micro-batches of the timed steps / seconds; non-pad "
        "fraction = sample tokens / (rows x longest row in the batch)",
        f"- loss checks (same weights, dropout off): first padded batch, ours {checks.ours_padded:.6f} vs HF "
        f"collator {checks.hf_padded:.6f}; first packed batch {checks.packed:.6f} vs its samples one at a time "
        f"{checks.packed_per_sample:.6f}",
    ]
    summary = [
        f"- ours (packed) / HF Trainer (padded), sample tokens/s: **{ratio:.2f}x** (issue target >= "
        f"{RATIO_TARGET:.1f}x on CPU: {met})",
        f"- `SFTTrainer.tokens_per_step` (what `run()`'s `tokens_per_s` counts) is rows x max_len = {claimed:,} per "
        f"step; the timed steps held {real_per_step:,.0f} sample tokens per step ({100 * real_per_step / claimed:.1f} "
        "%)",
    ]
    sections = [table, "", *summary, "", "Batch fill over one epoch (the same examples, the same order):", "",
                fill_table(probe, data, shape)]
    if args.profile:
        sections += profile_sections(base, shape, data, runs)

    title = f"SFT throughput ({args.family}): `train sft` (LoRA, packed) vs peft + HF Trainer (padded)"
    entry = "\n".join([*header(title, command, commit, torch_machine_line("cpu", "transformers", "peft")), *lines,
                        "", *sections])
    print("\n" + entry)
    if not args.no_record:
        append_results(entry)
        say("\nappended to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
