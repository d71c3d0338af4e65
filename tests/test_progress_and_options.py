"""What a training run shows and the options users look for: progress lines and printed evaluations without a
terminal, metrics.jsonl records per ``log.every`` steps, ``optim.epochs``, early stopping on held-out loss (best
checkpoint kept, final = best, state kept across resume), rank-0-only console, ZeRO-3 parameter counts, and a
plain single-process run free of DeepSpeed's and transformers' warnings."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import ROOT, pretrain_config, sft_config
from train.cli import main

PROGRESS = re.compile(r"^step (\d+)/(\d+)  loss \d+\.\d{4}  lr \d\.\d\de[-+]\d\d  [\d,]+ tokens/s  "
                      r"ETA (\d+:\d\d:\d\d|\?)$")


def _train(command: str, config: Path, *args: str) -> tuple[int, str]:
    """Run `train COMMAND CONFIG ARGS` (not quiet) as from a pipe; returns the exit code and what it printed."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([command, str(config), *args])
    return code, err.getvalue()


def _records(out: Path, name: str = "metrics.jsonl") -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / name).read_text().splitlines()]


def _pretrain(tmp_path: Path, corpus: Path, tokenizer: Path, **sections: Any) -> Path:
    return pretrain_config(tmp_path, corpus, tokenizer, **{"checkpoint": {"every": 100, "keep": 1}, **sections})


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory, quickstart_out: Path,
               tokenizer_dir: Path) -> tuple[Path, str]:
    """8 pretraining steps, a progress line every 2 and an evaluation every 4, printed to a pipe."""
    where = tmp_path_factory.mktemp("logged")
    cfg = _pretrain(where, quickstart_out, tokenizer_dir, optim={"max_steps": 8, "batch_size": 4},
                    log={"every": 2, "tensorboard": False}, eval={"every": 4})
    code, err = _train("pretrain", cfg)
    assert code == 0, err
    return where / "run", err


def test_without_a_terminal_a_progress_line_comes_every_log_every_steps(logged_run: tuple[Path, str]) -> None:
    lines = [m for m in map(PROGRESS.match, logged_run[1].splitlines()) if m]
    assert [(int(m[1]), int(m[2])) for m in lines] == [(2, 8), (4, 8), (6, 8), (8, 8)]


def test_every_intermediate_evaluation_is_printed_with_each_set(logged_run: tuple[Path, str]) -> None:
    evals = [line for line in logged_run[1].splitlines() if re.match(r"step \d+ eval: ", line)]
    assert [line.split()[1] for line in evals] == ["4", "8"]
    assert all(re.search(r"books loss \d+\.\d{4} ppl [\d.]+ \| code loss", line) and "mean loss" in line
               for line in evals)


def test_metrics_jsonl_has_one_record_per_log_every_steps_averaging_them(
        logged_run: tuple[Path, str], tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    records = _records(logged_run[0])
    assert [r["step"] for r in records] == [2, 4, 6, 8] and all(r["steps"] == 2 for r in records)
    assert [r["step"] for r in records if "eval" in r] == [4, 8]
    cfg = _pretrain(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 8, "batch_size": 4},
                    log={"every": 1, "tensorboard": False}, eval={"every": 4})
    assert main(["--quiet", "pretrain", str(cfg)]) == 0
    each = _records(tmp_path / "run")
    for r in records:
        pair = [x for x in each if r["step"] - 2 < x["step"] <= r["step"]]
        assert math.isclose(r["loss"], sum(x["loss"] for x in pair) / 2, rel_tol=1e-6)
        assert r["lr"] == pair[-1]["lr"]


# -- optim.epochs ------------------------------------------------------------------------------------------------
def test_an_epoch_of_a_mixture_ends_when_its_first_domain_runs_out() -> None:
    from train.sampler import epoch_sequences

    assert epoch_sequences({"a": 300, "b": 100}, {"a": 3, "b": 1}) == 400  # natural weights: every sequence
    assert epoch_sequences({"a": 300, "b": 100}, {"a": 1, "b": 1}) == 200  # b, half the draws, runs out first
    assert epoch_sequences({"a": 300, "b": 100}, {"a": 1, "b": 0}) == 300  # a domain weighted 0 is not drawn


def _small_sft_file(where: Path, n: int = 24) -> dict[str, str]:
    records = [{"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."} for i in range(n)]
    path = where / "small.json"
    where.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return {"path": str(path), "format": "alpaca"}


def _with_epochs(config: Path, epochs: float) -> Path:
    data = yaml.safe_load(config.read_text())
    data["optim"].pop("max_steps")
    data["optim"]["epochs"] = epochs
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_sft_epochs_set_the_steps_from_the_packed_rows_and_the_schedule_follows(tmp_path: Path,
                                                                                 pretrained_model: Path) -> None:
    from train.config import OptimConfig
    from train.loop import lr_at

    cfg = _with_epochs(sft_config(tmp_path, pretrained_model, [_small_sft_file(tmp_path)],
                                  optim={"batch_size": 2}, eval={"every": 100}), 2)
    assert main(["--quiet", "sft", str(cfg)]) == 0
    plan = json.loads((tmp_path / "sft" / "plan.json").read_text())
    steps = math.ceil(2 * plan["rows_per_epoch"] / 2)
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert summary["steps"] == steps and plan["epochs"] == 2
    optim = OptimConfig(lr=3e-3, warmup_steps=1, max_steps=steps, weight_decay=0.0)
    assert _records(tmp_path / "sft")[-1]["lr"] == lr_at(steps - 1, optim)


def test_pretrain_epochs_count_the_mixture_sequences(tmp_path: Path, quickstart_out: Path,
                                                     tokenizer_dir: Path) -> None:
    cfg = _with_epochs(_pretrain(tmp_path, quickstart_out, tokenizer_dir), 0.001)
    code, err = _train("pretrain", cfg)
    assert code == 0, err
    found = re.search(r"optim\.epochs 0\.001: (\d+) steps \(([\d,]+) rows per epoch, 4 rows per step\)", err)
    assert found is not None
    steps, rows = int(found[1]), int(found[2].replace(",", ""))
    assert rows > 1000 and steps == math.ceil(0.001 * rows / 4)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == steps


def test_max_steps_and_epochs_together_are_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                   capsys) -> None:
    cfg = _pretrain(tmp_path, quickstart_out, tokenizer_dir)
    assert main(["pretrain", str(cfg), "optim.epochs=1"]) == 2
    assert "give optim.max_steps or optim.epochs, not both" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- early stopping ----------------------------------------------------------------------------------------------
NEVER_BETTER = {"every": 1, "early_stopping": {"patience": 2, "min_delta": 100.0}}
"""an evaluation every step; after the first, none improves by 100 nats"""


def test_early_stopping_stops_and_the_final_model_is_the_kept_best_checkpoint(tmp_path: Path, quickstart_out: Path,
                                                                               tokenizer_dir: Path) -> None:
    from safetensors.torch import load_file

    cfg = _pretrain(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 10, "batch_size": 4},
                    eval=NEVER_BETTER)
    code, err = _train("pretrain", cfg)
    assert code == 0, err
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["early_stopping"]["stopped_early"]
    assert summary["early_stopping"]["final_step"] == 1 and summary["eval"] == summary["early_stopping"]["best_eval"]
    assert "the final model is the best checkpoint, step-0000001" in err
    assert f"final model: {run / 'final'}" in err and "continue with --resume" not in err
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000001", "step-0000003"]  # keep 1
    best = torch.load(run / "checkpoints" / "step-0000001" / "model.pt", weights_only=True)
    final = load_file(str(run / "final" / "model.safetensors"))
    assert final and all(torch.equal(final[k], best[k]) for k in final)
    last = torch.load(run / "checkpoints" / "step-0000003" / "model.pt", weights_only=True)
    assert not all(torch.equal(final[k], last[k]) for k in final)


def test_resume_keeps_the_early_stopping_state(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    sections = {"optim": {"max_steps": 10, "batch_size": 4},
                "eval": {**NEVER_BETTER, "early_stopping": {"patience": 3, "min_delta": 100.0}}}
    straight = _pretrain(tmp_path / "a", quickstart_out, tokenizer_dir, **sections)
    assert main(["--quiet", "pretrain", str(straight)]) == 0
    stopped = _pretrain(tmp_path / "b", quickstart_out, tokenizer_dir, **sections)
    assert main(["--quiet", "pretrain", str(stopped), "--stop-at", "2"]) == 0
    assert main(["--quiet", "pretrain", str(stopped), "--resume"]) == 0
    a, b = (json.loads((tmp_path / x / "run" / "summary.json").read_text()) for x in ("a", "b"))
    assert a["steps"] == b["steps"] == 4 and b["early_stopping"]["final_step"] == 1
    assert a["early_stopping"]["best_loss"] == b["early_stopping"]["best_loss"]


def test_under_deepspeed_zero3_the_plan_counts_every_parameter_and_early_stopping_keeps_the_best(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    """One CPU process (gloo on loopback); DeepSpeed's JIT-built ops are cached in .venv/torch_extensions."""
    pytest.importorskip("deepspeed", reason="install the `deepspeed` extra (make test does)")
    sections = {"optim": {"max_steps": 10, "batch_size": 4}, "eval": NEVER_BETTER}
    plain = _pretrain(tmp_path / "plain", quickstart_out, tokenizer_dir, optim={"max_steps": 1, "batch_size": 4})
    assert main(["--quiet", "pretrain", str(plain)]) == 0
    zero3 = _pretrain(tmp_path / "zero3", quickstart_out, tokenizer_dir, distributed={"backend": "deepspeed",
                                                                                       "zero_stage": 3}, **sections)
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29544", "TORCH_EXTENSIONS_DIR": str(ROOT / ".venv" / "torch_extensions")}
    done = subprocess.run([sys.executable, "-m", "train.cli", "pretrain", str(zero3)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    plans = [json.loads((tmp_path / x / "run" / "plan.json").read_text()) for x in ("plain", "zero3")]
    assert plans[1]["parameters"] == plans[0]["parameters"] > 0
    assert plans[1]["trainable_parameters"] == plans[0]["trainable_parameters"] > 0
    summary = json.loads((tmp_path / "zero3" / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["early_stopping"]["final_step"] == 1
    assert "the final model is the best checkpoint, step-0000001" in done.stderr


# -- processes and warnings --------------------------------------------------------------------------------------
def test_a_process_other_than_rank_0_prints_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from mixlab import logs
    from train.loop import Distributed

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        logs.setup()
        monkeypatch.setenv("RANK", "1")
        assert not Distributed("auto").main
        logs.log.info("progress")
        logs.log.warning("a warning")
        logs.log.error("a failure")
    logs.setup()
    assert err.getvalue() == "a failure\n"


def test_zero3_partitioned_parameters_count_at_their_full_size() -> None:
    from train.loop import numel
    from train.model import parameter_count

    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    for p in model.parameters():
        p.ds_numel = p.numel()  # as ZeRO-3 records it
        p.data = torch.empty(0)  # as ZeRO-3 leaves it on each process
    assert sum(numel(p) for p in model.parameters()) == 16 and parameter_count(model)[0] == 16


def test_a_single_process_sft_run_shows_no_deepspeed_or_deprecation_warning(tmp_path: Path,
                                                                            pretrained_model: Path) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [_small_sft_file(tmp_path, 80)], optim={"max_steps": 2})
    env = {**os.environ, "PYTHONWARNINGS": "default", "HF_HUB_OFFLINE": "1"}
    env.pop("DS_ACCELERATOR", None)
    done = subprocess.run([sys.executable, "-c", "import sys; from train.cli import main; sys.exit(main(sys.argv[1:]))",
                           "sft", str(cfg), "--merge"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "step 2 eval: heldout loss" in done.stderr
    for unwanted in ("Setting accelerator to CPU", "FutureWarning", "DeprecationWarning"):
        assert unwanted not in done.stderr
