"""Throughput of `train dpo` (LoRA) against trl's `DPOTrainer` on the same CPU, model, pairs and order, in one run.

What it measures:

* **ours**: mixlab's DPO loop, ``DPOTrainer(cfg).train_step()`` called in a loop (the body of ``Trainer.run`` in
  ``train/loop.py`` that `train dpo` runs; evaluation, checkpoints and logging set beyond the run). A micro-batch of
  B pairs is 2B right-padded rows (chosen, then rejected); the reference is the policy with its adapter disabled.
* **trl**: ``trl.DPOTrainer`` (trl 1.16.0) on the same base model with the same ``peft.LoraConfig`` (built by
  ``train.sft.peft_config``; the same seed, so the same initial adapter), ``loss_type=["sigmoid"]``, β 0.1, no
  reference model (trl then disables the adapter, as ours does), ``precompute_ref_log_probs=False``,
  ``gradient_checkpointing=False`` and ``bf16=False`` (trl defaults both to on: bf16 autocast makes its CPU steps
  ~10x slower here, and ours runs fp32), fed *the same tokenized pairs in the same
  order*: its train dataset is replaced by ours' ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` (from
  ``train.dpo_data.prepare``: identical ids) in ours' epoch order, read sequentially
  (``train_sampling_strategy="sequential"``), B pairs per device batch, the same optimizer (``adamw_torch_fused``,
  lr, betas, no weight decay, clipping 1.0, warmup then cosine to 10 % of lr), no eval, saving or logging.
* Both: fp32 on CPU, LoRA r 8 / alpha 16 / dropout 0 on every linear layer, B = 4 pairs per step, max_len 512,
  ``--warmup`` untimed steps then ``--steps`` timed ones in a freshly built trainer; the two loops alternate
  ``--repeat`` times and the median of each is reported with the median paired ratio.
* **Throughput is sequence tokens per second**: prompt + answer of both sequences of every pair trained on (pad
  excluded), the same count for both since they read the same pairs.
* **Check** (before timing, on the first batch, adapter weights moved away from zero so the loss is not log 2):
  ours' loss equals trl's within 1e-5.

Setup: the base model, tokenizer and corpus of ``benchmarks/sft_throughput.py`` (an untrained ~4.2M-parameter
Llama, 4000-token tokenizer; built once under ``benchmarks/.work/sft_throughput/``), the chat template mixlab's
default (the tokenizer has none), and the 600 pairs of ``recipes/data/dpo/gsm8k_pairs.jsonl``.

Run (from the project root, with the project's virtualenv; trl is in the dev extra):

    .venv/bin/python benchmarks/dpo_throughput.py                  # 3 + 10 steps, 3 rounds
    .venv/bin/python benchmarks/dpo_throughput.py --warmup 1 --steps 2 --repeat 1 --no-record   # smoke

Prints a table and appends an entry to ``benchmarks/RESULTS.md`` (unless ``--no-record``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contention import LoadMeter  # noqa: E402
from report import (ROOT, WORK, command_line, git_commit, markdown, print_and_record, say,  # noqa: E402
                    torch_machine_line)
from sft_throughput import build_setup  # noqa: E402
from train_bench import after_warmup, hf_offline, step_clock  # noqa: E402

hf_offline()

import torch  # noqa: E402

OUT = WORK / "dpo_throughput"
PAIRS = ROOT / "recipes" / "data" / "dpo" / "gsm8k_pairs.jsonl"
LR, BETAS, GRAD_CLIP, MIN_LR_RATIO, SEED, BETA = 5e-5, (0.9, 0.95), 1.0, 0.1, 0, 0.1
LORA_R, LORA_ALPHA, BATCH, MAX_LEN = 8, 16.0, 4, 512


def our_config(base: Path, out: Path, total_steps: int) -> Any:
    from train.config import DPOConfig

    never = 10**9
    return DPOConfig.model_validate({
        "base": str(base), "out": str(out), "seed": SEED,
        "data": {"files": [{"path": str(PAIRS)}], "max_len": MAX_LEN, "heldout_fraction": 0.0},
        "dpo": {"loss": "sigmoid", "beta": BETA},
        "peft": {"method": "lora", "r": LORA_R, "alpha": LORA_ALPHA, "dropout": 0.0},
        "optim": {"batch_size": BATCH, "max_steps": total_steps, "lr": LR, "min_lr_ratio": MIN_LR_RATIO,
                  "warmup_steps": max(1, total_steps // 10), "weight_decay": 0.0, "betas": list(BETAS),
                  "grad_clip": GRAD_CLIP, "precision": "fp32"},
        "eval": {"every": never}, "checkpoint": {"every": never}, "log": {"every": never, "tensorboard": False}})


def ours(base: Path, run: Path, total_steps: int) -> Any:
    from train.dpo import DPOTrainer

    return DPOTrainer(our_config(base, run, total_steps))


def trl_trainer(base: Path, run: Path, total_steps: int, ours_trainer: Any) -> Any:
    """trl's DPOTrainer on ``base`` with our LoRA config, fed our tokenized pairs in our order."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig as TrlConfig
    from trl import DPOTrainer as TrlTrainer

    from train.sft import peft_config
    from train.sft_data import DEFAULT_JINJA

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lora = peft_config(ours_trainer.cfg, model)
    tok = ours_trainer.tokenizer
    tok.chat_template = DEFAULT_JINJA
    args = TrlConfig(output_dir=str(run), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
                     max_steps=total_steps, learning_rate=LR, weight_decay=0.0, adam_beta1=BETAS[0],
                     adam_beta2=BETAS[1], max_grad_norm=GRAD_CLIP, lr_scheduler_type="cosine_with_min_lr",
                     lr_scheduler_kwargs={"min_lr_rate": MIN_LR_RATIO}, warmup_steps=max(1, total_steps // 10),
                     optim="adamw_torch_fused", eval_strategy="no", save_strategy="no", logging_strategy="no",
                     report_to=[], dataloader_num_workers=0, use_cpu=True, seed=SEED, disable_tqdm=True,
                     train_sampling_strategy="sequential", beta=BETA, loss_type=["sigmoid"], max_length=None,
                     precompute_ref_log_probs=False, gradient_checkpointing=False, bf16=False)
    first = [{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],
              "rejected": [{"role": "assistant", "content": "b"}]}]
    trainer = _build_trl(TrlTrainer, model, args, Dataset.from_list(first), tok, lora)
    trainer.train_dataset = Dataset.from_list(trl_examples(ours_trainer, total_steps * BATCH))
    return trainer


def _build_trl(cls: Any, model: Any, args: Any, dataset: Any, tok: Any, lora: Any) -> Any:
    """trl's trainer, its warnings about our choices (e.g. no gradient checkpointing) kept quiet."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=lora)


def trl_examples(trainer: Any, count: int) -> list[dict[str, list[int]]]:
    """Our first ``count`` training pairs, in our order, as trl's tokenized columns."""
    from train.loop import IGNORE

    out = []
    for position in range(count):
        pair = trainer.prepared.train[int(trainer._order(position // len(trainer.prepared.train))[
            position % len(trainer.prepared.train)])]
        parts = []
        for seq in (pair.chosen, pair.rejected):
            start = int((seq.labels != IGNORE).nonzero()[0][0])
            parts.append((seq.ids[:start].tolist(), seq.ids[start:].tolist()))
        out.append({"prompt_ids": parts[0][0], "chosen_ids": parts[0][1], "rejected_ids": parts[1][1]})
    return out


def pair_tokens(trainer: Any, first: int, count: int) -> int:
    """Sequence tokens of the pairs at positions [first, first + count) of our order."""
    n = len(trainer.prepared.train)
    return sum(trainer.prepared.train[int(trainer._order(p // n)[p % n])].tokens for p in range(first, first + count))


def check_losses(base: Path) -> tuple[float, float]:
    """Ours' and trl's loss on our first batch, with the same moved adapter weights."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from train.dpo import collate

    run = OUT / "check"
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    a = ours(base, run / "ours", 2)
    t = trl_trainer(base, run / "trl", 2, a)
    torch.manual_seed(1)
    with torch.no_grad():
        theirs_params = dict(t.model.named_parameters())
        for name, p in a.module.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
                theirs_params[name].copy_(p)
            elif "lora_A" in name:
                theirs_params[name].copy_(p)
    pairs = [a.prepared.train[int(a._order(0)[i])] for i in range(BATCH)]
    a.model.eval()
    t.model.eval()
    with torch.no_grad():
        mine = float(a.loss(collate(pairs, a.tokenizer.pad_token_id, a.dist.device)))
        inputs = DataCollatorForPreference(pad_token_id=a.tokenizer.pad_token_id)(trl_examples(a, BATCH))
        theirs = float(t.compute_loss(t.model, inputs))
    return mine, theirs


def time_ours(base: Path, warmup: int, steps: int, round_: int) -> float:
    trainer = ours(base, OUT / f"runs/ours-{round_}", warmup + steps)
    run = after_warmup(trainer, warmup, steps)
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def time_trl(base: Path, warmup: int, steps: int, round_: int) -> float:
    a = ours(base, OUT / f"runs/order-{round_}", warmup + steps)  # our data and order, for trl's dataset
    trainer = trl_trainer(base, OUT / f"runs/trl-{round_}", warmup + steps, a)
    del a
    clock = step_clock(warmup, warmup + steps)
    trainer.add_callback(clock)
    trainer.train()
    return clock.t1 - clock.t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, ours and trl alternating (default 3)")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    import shutil

    commit = git_commit()
    base = build_setup(WORK / "sft_throughput")
    mine, theirs = check_losses(base)
    say(f"check: first-batch loss ours {mine:.7f}, trl {theirs:.7f} (|diff| {abs(mine - theirs):.2e})")
    assert abs(mine - theirs) < 1e-5
    probe = ours(base, OUT / "runs/probe", args.warmup + args.steps)
    tokens = pair_tokens(probe, args.warmup * BATCH, args.steps * BATCH)
    del probe
    times: dict[str, list[float]] = {"ours": [], "trl": []}
    meter = LoadMeter()
    meter.start()
    for r in range(args.repeat):
        shutil.rmtree(OUT / "runs", ignore_errors=True)
        times["ours"].append(time_ours(base, args.warmup, args.steps, r))
        times["trl"].append(time_trl(base, args.warmup, args.steps, r))
        say(f"round {r + 1}: ours {tokens / times['ours'][-1]:,.0f} tokens/s, trl {tokens / times['trl'][-1]:,.0f} "
            "tokens/s")
    other = meter.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [b / a for a, b in zip(times["ours"], times["trl"])]
    rows = [[name, f"{tokens / med[name]:,.0f}", f"{args.steps / med[name]:.3f}",
             ", ".join(f"{tokens / t:,.0f}" for t in times[name])] for name in ("ours", "trl")]
    body = "\n".join([
        f"- {torch_machine_line('cpu', 'transformers', 'peft', 'trl')}",
        f"- base: untrained Llama (~4.2M parameters, 4000-token tokenizer) from `benchmarks/sft_throughput.py`; "
        f"LoRA r {LORA_R} / alpha {LORA_ALPHA:g} / dropout 0 on every linear layer; fp32; {BATCH} pairs per step "
        f"(8 rows), max_len {MAX_LEN}; `recipes/data/dpo/gsm8k_pairs.jsonl` (600 pairs), the same pairs in the "
        f"same order for both; {args.warmup} untimed + {args.steps} timed steps per run, {args.repeat} rounds "
        "alternating",
        f"- check: first-batch loss ours {mine:.7f}, trl {theirs:.7f} (|diff| {abs(mine - theirs):.1e})",
        "- trl in fp32 (`bf16=False`, `gradient_checkpointing=False`; its defaults turn both on)",
        f"- tokens per timed run: {tokens:,} sequence tokens (prompt + answer, both answers, no padding)",
        f"- cores kept busy by other processes during the timing: {other:.2f}", "",
        markdown(["loop", "tokens/s (median)", "steps/s", "each round"], rows, "lrrr"), "",
        f"**ours / trl: {med['trl'] / med['ours']:.2f}x** (median of the paired round ratios "
        f"{statistics.median(ratios):.2f}x; rounds {', '.join(f'{x:.2f}' for x in ratios)})"])
    print_and_record("DPO throughput: train dpo vs trl DPOTrainer (CPU)", command_line(), commit, body,
                     not args.no_record)


if __name__ == "__main__":
    main()
