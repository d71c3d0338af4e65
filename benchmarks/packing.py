"""Step time of document-masked pretraining: the hand-made 4D block-causal mask against restarting position ids
(the model's own masks, `train/packing.py`), with no masking as the floor.

One tiny Llama (``train.model.LLAMA_DEFAULTS``, vocab 4000, ~4.2M parameters), one batch of 8 rows x 512 tokens with
documents of geometric lengths (mean ~200 tokens, EOS between them), a full training step each time (forward,
cross-entropy, backward, fused AdamW). The three modes alternate ``--repeat`` times, 2 steps each, after 2 untimed
steps per mode; CPU time (``time.process_time``) on ``--threads`` threads, median per mode. On CPU both masked paths
build a full (B, 1, L, L) mask, so no speed-up is expected: the point is that keeping the model's attention semantics
(sliding windows) costs nothing.

    .venv/bin/python benchmarks/packing.py [--repeat 5] [--threads 1] [--no-record]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import command_line, git_commit, markdown, print_and_record, torch_machine_line  # noqa: E402

VOCAB, SEQ, BATCH, EOS, MEAN_DOC = 4000, 512, 8, 2, 200


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from train import packing
    from train.model import LLAMA_DEFAULTS
    from train.pretrain import model_inputs

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = LlamaForCausalLM(LlamaConfig(**LLAMA_DEFAULTS, vocab_size=VOCAB, eos_token_id=EOS)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, VOCAB, (BATCH, SEQ + 1))
    for r in range(BATCH):
        at = int(rng.integers(0, MEAN_DOC))
        while at < SEQ + 1:
            tokens[r, at] = EOS
            at += int(rng.geometric(1 / MEAN_DOC)) + 1
    t = torch.from_numpy(tokens)
    docs = [int((row == EOS).sum()) + 1 for row in t[:, :-1]]

    def step(mode: str | None) -> None:
        inputs = model_inputs(t[:, :-1], EOS, True, torch.float32, mode) if mode else {"input_ids": t[:, :-1]}
        logits = model(**{"use_cache": False, **inputs}).logits
        F.cross_entropy(logits.float().reshape(-1, VOCAB), t[:, 1:].reshape(-1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    modes = {"4D block mask (before)": packing.BLOCK_MASK, "position ids (now)": packing.POSITION_IDS,
             "no document masking": None}
    times: dict[str, list[float]] = {k: [] for k in modes}
    for m in modes.values():
        step(m)
        step(m)
    for _ in range(args.repeat):
        for name, m in modes.items():
            t0 = time.process_time()
            step(m)
            step(m)
            times[name].append((time.process_time() - t0) / 2)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["4D block mask (before)"]
    rows = [(k, f"{v * 1000:.1f}", f"{BATCH * SEQ / v:,.0f}", f"{v / base:.3f}") for k, v in med.items()]
    body = "\n".join([
        f"- tiny Llama ({sum(p.numel() for p in model.parameters()):,} parameters), {BATCH} x {SEQ} tokens, "
        f"documents per row {docs}; full training step; CPU time on {args.threads} thread(s), median of "
        f"{args.repeat} alternating rounds of 2 steps", "",
        markdown(["mode", "ms/step (CPU)", "tokens/s", "vs block mask"], rows, align="lrrr")])
    print_and_record("document masking: block mask vs position ids (benchmarks/packing.py)", command_line(),
                     git_commit(), body + "\n\n" + torch_machine_line("cpu", "transformers"), not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
