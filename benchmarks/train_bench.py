"""The training-loop benchmarks' shared setup and timing (``train_throughput.py``, ``sft_throughput.py``): keeping
the Hugging Face libraries offline, running the project's ``curate``/``train`` commands, training their tokenizer,
the step counts of a timed run, device synchronisation, warm-up, and the ``TrainerCallback``s that stamp the time
and run a profiler over a window of steps.

Not a benchmark itself; nothing to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from report import ROOT, say


def hf_offline() -> None:
    """Keep the Hugging Face libraries offline and tokenizers single-threaded; call before importing them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_cli(tool: str, args: list[str]) -> None:
    """Run a project command (``curate`` or ``train``) from this virtualenv; fail loudly."""
    exe = Path(sys.executable).parent / tool
    cmd = [str(exe), "--quiet", *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"setup failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")


def train_tokenizer(out: Path, corpus: Path, vocab: int) -> Path:
    """A SentencePiece BPE tokenizer trained on the corpus by `train tokenizer` (once)."""
    if not (out / "tokenizer.json").exists():
        say(f"setup: train tokenizer --vocab-size {vocab} -> {out.relative_to(ROOT)}")
        run_cli("train", ["tokenizer", "--corpus", str(corpus), "--out", str(out), "--vocab-size", str(vocab)])
    return out


class StepSchedule:
    """Step counts of a timed run: ``warmup`` untimed steps, then ``steps`` timed ones."""

    warmup: int
    steps: int

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    @property
    def lr_warmup(self) -> int:
        return max(1, self.total_steps // 10)


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def after_warmup(trainer: Any, warmup: int, steps: int) -> Callable[[], None]:
    """Runs ``warmup`` train steps of ``trainer`` now; returns a callable running ``steps`` more."""
    for _ in range(warmup):
        trainer.train_step()

    def run() -> None:
        for _ in range(steps):
            trainer.train_step()

    return run


def step_clock(start_step: int, end_step: int, device: str = "cpu") -> Any:
    """A TrainerCallback that stamps the time (``t0``, ``t1``) at the end of ``start_step`` and of ``end_step``."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        t0: float = float("nan")
        t1: float = float("nan")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == start_step:
                synchronize(device)
                self.t0 = time.perf_counter()
            elif state.global_step == end_step:
                synchronize(device)
                self.t1 = time.perf_counter()

    return StepClock()


def profile_window(prof: Any, start_step: int, end_step: int) -> Any:
    """A TrainerCallback that runs the profiler ``prof`` from the end of ``start_step`` to the end of ``end_step``."""
    from transformers import TrainerCallback

    class Window(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == start_step:
                prof.__enter__()
            elif state.global_step == end_step:
                prof.__exit__(None, None, None)

    return Window()
