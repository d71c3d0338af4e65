"""`train sft` end to end on a model pretrained by `train pretrain`: real Alpaca data, every peft method,
adapter/merge equivalence, exact resume, and the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED_DATA, sft_config
from train.cli import main

ALPACA = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}


def _sft(config: Path, *args: str) -> int:
    return main(["--quiet", "sft", str(config), *args])


def _evals(out: Path) -> list[float]:
    return [json.loads(x)["eval"]["heldout"]["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()
            if "eval" in json.loads(x)]


def test_heldout_loss_falls_on_real_alpaca_data(tmp_path: Path, pretrained_model: Path) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], optim={"max_steps": 30, "batch_size": 8, "lr": 3e-3},
                     eval={"every": 5, "tokens_per_domain": 6000})
    assert _sft(cfg) == 0
    losses = _evals(tmp_path / "sft")
    assert losses[-1] < losses[0]
    plan = json.loads((tmp_path / "sft" / "plan.json").read_text())
    assert plan["trainable_parameters"] < plan["parameters"] / 5 and plan["packing"]


def test_adapter_and_merged_model_give_the_same_logits(tmp_path: Path, pretrained_model: Path) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], optim={"max_steps": 6, "lr": 1e-2})
    assert _sft(cfg, "--merge") == 0
    final = tmp_path / "sft" / "final"
    ids = torch.tensor([[1, 20, 30, 40, 50, 60, 70]])
    with torch.no_grad():
        adapter = AutoPeftModelForCausalLM.from_pretrained(str(final / "adapter")).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(str(final / "merged")).eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(pretrained_model)).eval()(input_ids=ids).logits
    assert torch.allclose(adapter, merged, atol=1e-5)  # tolerance: float32 re-association in the merge
    assert not torch.allclose(adapter, base, atol=1e-4)  # and the adapter did change the model


def test_generate_answers_with_the_adapter_and_the_merged_model(tmp_path: Path, pretrained_model: Path,
                                                                  capsys) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], optim={"max_steps": 2})
    assert _sft(cfg, "--merge") == 0
    capsys.readouterr()
    for model in ("adapter", "merged"):
        assert main(["--quiet", "generate", str(tmp_path / "sft" / "final" / model), "--prompt", "Name a color.",
                     "--max-new-tokens", "8", "--temperature", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 2 and out[0] == out[-1]  # greedy: adapter and merged model say the same


@pytest.mark.parametrize("method", ["lora", "adalora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"])
def test_every_peft_method_trains_and_saves(tmp_path: Path, pretrained_model: Path, method: str) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"method": method}, optim={"max_steps": 3})
    assert _sft(cfg) == 0
    assert (tmp_path / "sft" / "final" / "adapter" / "adapter_config.json").exists()
    losses = [json.loads(x)["loss"] for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(x == x for x in losses)
    plan = json.loads((tmp_path / "sft" / "plan.json").read_text())
    assert plan["packing"] == (method not in ("prompt_tuning", "prefix_tuning", "p_tuning"))


def test_stopping_and_resuming_sft_is_exact(tmp_path: Path, pretrained_model: Path) -> None:
    a = sft_config(tmp_path / "a", pretrained_model, [ALPACA])
    b = sft_config(tmp_path / "b", pretrained_model, [ALPACA])
    assert _sft(a) == 0
    assert _sft(b, "--stop-at", "2") == 0 and _sft(b, "--resume") == 0
    la = [json.loads(x)["loss"] for x in (tmp_path / "a" / "sft" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "b" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_malformed_records_are_skipped_or_fail_the_run(tmp_path: Path, pretrained_model: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    good = [{"instruction": f"Say {w}", "output": w} for w in ["yes", "no", "maybe", "sure", "ok"] * 8]
    bad.write_text("".join(json.dumps(r) + "\n" for r in good + [{"instruction": "x"}]), encoding="utf-8")
    files = [{"path": str(bad)}]
    assert _sft(sft_config(tmp_path / "skip", pretrained_model, files, optim={"max_steps": 1})) == 0
    assert _sft(sft_config(tmp_path / "fail", pretrained_model, files, data={"on_error": "fail"})) == 2
    assert "bad.jsonl line 41: missing 'output'" in capsys.readouterr().err


def test_qlora_without_a_gpu_says_so(tmp_path: Path, pretrained_model: Path, capsys) -> None:
    assert _sft(sft_config(tmp_path, pretrained_model, [ALPACA], peft={"qlora": True})) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_a_base_that_is_not_a_local_directory_is_refused(tmp_path: Path, capsys) -> None:
    assert _sft(sft_config(tmp_path, Path("Qwen/Qwen2.5-0.5B"), [ALPACA])) == 2
    assert "never downloaded" in capsys.readouterr().err
