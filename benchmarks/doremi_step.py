"""The cost of a DoReMi proxy step (`train doremi`) against a plain training step (`train pretrain`).

What it measures, in one process, for each model size: a ``Pretrainer`` (the loop `train pretrain` runs) and a
``DoReMiTrainer`` (the proxy of `train doremi`: one training step plus one reference forward in inference mode, the
per-domain excess loss, the weight update and the weighted loss) built from the same config and seed, so with the
same initial weights, both fed the same micro-batch (the first one of the sampler's uniform mixture). Their
``train_step()`` calls alternate (A, B, then B, A, ...) for ``--warmup`` untimed and ``--steps`` timed rounds; each
call is timed alone, the device synchronized around it. Reported: the medians, their ratio, the median of the
per-round ratios (DoReMi step / plain step of the same round, which load from other processes that changes between
rounds disturbs less; the issue's target, at most 1.5x, is judged on it), and the reference forward alone
(``train.doremi.token_losses`` under inference mode), the part the extra cost is expected to come from. The reference model is the plain model's initial weights, saved: its
values do not change the cost.

Setup: the corpus and tokenizer `make demo` builds (``out/quickstart``, ``out/tokenizer``; their token cache is
reused, nothing there is written), or ``--corpus``/``--tokenizer``. Runs go to ``benchmarks/.work/doremi_step/``.
On a shared 2-core machine ``--threads 1`` keeps other processes' load from stalling torch's threads; the load
average is reported.

Run (from the project root, with the project's virtualenv):

    python benchmarks/doremi_step.py --threads 1                 # CPU, tiny and small models; ~2 min
    python benchmarks/doremi_step.py --steps 3 --warmup 1 --no-record   # smoke run
    python benchmarks/doremi_step.py --device cuda --models small,125m  # GPU (bf16 autocast)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import (RESULTS, ROOT, WORK, append_results, command_line, git_commit, header, markdown,  # noqa: E402
                    say, torch_machine_line)
from train_bench import hf_offline, synchronize  # noqa: E402

MODELS = {
    "tiny": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 4},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4},
    "125m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
             "num_key_value_heads": 12},
}
TARGET = 1.5


def trainers(name: str, args: argparse.Namespace, work: Path) -> tuple[Any, Any, Any]:
    """A plain ``Pretrainer``, a ``DoReMiTrainer`` with the same config and seed, and their shared micro-batch."""
    from train.config import DataConfig, DoReMiParams, PretrainConfig
    from train.corpus import Corpus
    from train.doremi import DoReMiTrainer
    from train.pretrain import Pretrainer

    domains = Corpus(args.corpus).domains
    steps = args.warmup + args.steps
    cfg = PretrainConfig(
        corpus=str(args.corpus), tokenizer=str(args.tokenizer), out=str(work / f"plain-{name}"), seed=0,
        model={"config": MODELS[name]},
        data=DataConfig(seq_len=args.seq_len, weights={d: 1.0 for d in domains}, heldout_fraction=0.01, workers=1),
        optim={"batch_size": args.batch, "max_steps": 2 * steps + 1, "lr": 1e-3, "warmup_steps": 1,
               "precision": "bf16" if args.device == "cuda" else "fp32"},
        eval={"every": 10**6}, checkpoint={"every": 10**6}, log={"every": 10**6, "tensorboard": False})
    plain = Pretrainer(cfg)
    reference = work / f"reference-{name}" / "final"
    plain.module.save_pretrained(str(reference))
    proxy = DoReMiTrainer(cfg.model_copy(update={"out": str(work / f"doremi-{name}")}), reference, DoReMiParams())
    a, b = plain.module.state_dict(), proxy.module.state_dict()
    assert all(bool((a[k] == b[k]).all()) for k in a), "the two trainers must start from the same weights"
    batch = plain.micro_batch(0, 0)
    plain.micro_batch = proxy.micro_batch = lambda step, micro: batch  # type: ignore[method-assign]
    return plain, proxy, batch


def timed(run: Any, device: str) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - t0


def measure(name: str, args: argparse.Namespace, work: Path) -> list[Any]:
    """One table row: model, parameters, batch, medians of the plain step, the DoReMi step, their ratio, the
    median paired ratio, the target met, the reference forward and its share of a plain step."""
    import torch

    from train.doremi import token_losses
    from train.model import parameter_count

    plain, proxy, batch = trainers(name, args, work)
    times: dict[str, list[float]] = {"plain": [], "doremi": [], "reference": []}
    pair = [("plain", plain.train_step), ("doremi", proxy.train_step)]

    def reference_forward() -> None:
        with torch.inference_mode():
            token_losses(proxy.reference, batch, proxy.autocast)

    for i in range(args.warmup + args.steps):
        order = pair if i % 2 == 0 else pair[::-1]
        for label, step in order:
            t = timed(step, args.device)
            if i >= args.warmup:
                times[label].append(t)
        t = timed(reference_forward, args.device)
        if i >= args.warmup:
            times["reference"].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(d / p for d, p in zip(times["doremi"], times["plain"]))
    say(f"{name}: plain {med['plain'] * 1e3:.1f} ms, doremi {med['doremi'] * 1e3:.1f} ms (paired {ratio:.2f}x), "
        f"reference forward {med['reference'] * 1e3:.1f} ms")
    total, _ = parameter_count(plain.module)
    return [name, f"{total / 1e6:.2f}M", f"{args.batch} x {args.seq_len}", f"{med['plain'] * 1e3:.1f}",
            f"{med['doremi'] * 1e3:.1f}", f"{med['doremi'] / med['plain']:.2f}x", f"{ratio:.2f}x", "yes" if ratio <= TARGET else "**no**",
            f"{med['reference'] * 1e3:.1f}", f"{med['reference'] / med['plain']:.2f}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "out" / "quickstart")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / "out" / "tokenizer")
    ap.add_argument("--models", default="tiny,small", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30, help="timed rounds (each: one step of each trainer)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    hf_offline()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from mixlab import logs

    logs.setup(quiet=True)
    logs.configure_libraries()
    for p, what in ((args.corpus / "manifest.json", "corpus"), (args.tokenizer / "tokenizer.json", "tokenizer")):
        if not p.is_file():
            raise SystemExit(f"no {what} at {p.parent}: run `make demo` or give --{what}")
    work = WORK / "doremi_step"
    shutil.rmtree(work, ignore_errors=True)
    commit = git_commit()
    load_before = os.getloadavg()[0]
    rows = [measure(name, args, work) for name in args.models.split(",")]
    load_after = os.getloadavg()[0]
    head = ["model", "parameters", "batch x seq", "plain step ms", "DoReMi step ms", "ratio of medians",
            "median paired ratio",
            f"<= {TARGET}x", "reference forward ms", "forward / plain step"]
    body = "\n".join([
        f"Medians of {args.steps} alternating rounds after {args.warmup} warm-up rounds; same initial weights, the "
        f"same micro-batch; {'bf16 autocast' if args.device == 'cuda' else 'fp32'}. The paired ratio is each round's "
        f"DoReMi step over its plain step; the target applies to its median. Load average "
        f"{load_before:.2f} before, {load_after:.2f} after (other processes share this machine).", "",
        markdown(head, rows)])
    print("\n" + body)
    if not args.no_record:
        title = "DoReMi proxy step vs a plain training step"
        machine = torch_machine_line(args.device, "transformers")
        append_results("\n".join([*header(title, command_line(), commit, machine), "", body]))
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
