"""`train dpo` end to end on a model pretrained by `train pretrain`: held-out reward accuracy on GSM8K preference
pairs, `train generate` and `--merge` on the result, exact resume, an SFT adapter as base (the reference is the
adapter as it starts), and the user errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import ROOT, SHARED_DATA, sft_config, torchrun_train
from train.cli import main

PAIRS = ROOT / "recipes" / "data" / "dpo" / "gsm8k_pairs.jsonl"


def dpo_config(tmp_path: Path, base: Path, files: list[dict[str, Any]] | None = None, **sections: Any) -> Path:
    """A small `train dpo` config in ``tmp_path`` (LoRA, 4 pairs a step); sections are merged over the defaults (a
    section given as None is left out)."""
    if files is None:
        data = tmp_path / "pairs.jsonl"
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_text("".join(PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
        files = [{"path": str(data)}]
    cfg: dict[str, Any] = {
        "base": str(base), "out": str(tmp_path / "dpo"), "seed": 0,
        "data": {"files": files, "max_len": 160, "heldout_fraction": 0.2},
        "peft": {"method": "lora", "r": 8, "alpha": 16, "dropout": 0.0},
        "optim": {"batch_size": 4, "max_steps": 4, "lr": 3e-3, "warmup_steps": 1},
        "eval": {"every": 2}, "checkpoint": {"every": 2, "keep": 2}, "log": {"every": 1, "tensorboard": False},
    }
    for key, value in sections.items():
        if value is None:
            cfg.pop(key, None)
            continue
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _dpo(config: Path, *args: str) -> int:
    return main(["--quiet", "dpo", str(config), *args])


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory: pytest.TempPathFactory, pretrained_model: Path) -> Path:
    """A short DPO run (LoRA, --merge) on the 300 shortest GSM8K preference pairs of the demo set (so that max_len
    cuts few answers), a fifth of them held out."""
    d = tmp_path_factory.mktemp("dpo")
    data = d / "pairs.jsonl"
    data.write_text("".join(sorted(PAIRS.read_text(encoding="utf-8").splitlines(keepends=True), key=len)[:300]),
                    encoding="utf-8")
    cfg = dpo_config(d, pretrained_model, [{"path": str(data)}], data={"max_len": 224},
                     optim={"max_steps": 24, "batch_size": 8}, eval={"every": 12}, checkpoint={"every": 24, "keep": 1})
    assert _dpo(cfg, "--merge") == 0
    return d / "dpo"


def test_heldout_reward_accuracy_rises_well_above_half_on_gsm8k_pairs(dpo_run: Path) -> None:
    final = [r["eval"]["heldout"] for r in _records(dpo_run) if "eval" in r][-1]
    n, right = final["pairs"], round(final["accuracy"] * final["pairs"])
    assert n >= 50 and final["accuracy"] >= 0.65 and final["margin"] > 0
    chance = sum(math.comb(n, k) for k in range(right, n + 1)) / 2 ** n
    assert chance < 0.01  # as many right by coin flips (accuracy 0.5): less than 1 in 100
    train = _records(dpo_run)[-1]
    assert {"loss", "rewards_chosen", "rewards_rejected", "margin", "accuracy"} <= set(train)


def test_generate_answers_with_the_dpo_adapter_and_the_merged_model(dpo_run: Path, capsys) -> None:
    capsys.readouterr()
    for model in ("adapter", "merged"):
        assert main(["--quiet", "generate", str(dpo_run / "final" / model), "--prompt", "What is 2 + 3?",
                     "--max-new-tokens", "8", "--temperature", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 2 and out[0] == out[-1]  # greedy: adapter and merged model say the same


def test_the_adapter_saves_only_the_trained_adapter_with_the_chat_template(dpo_run: Path) -> None:
    adapter = dpo_run / "final" / "adapter"
    assert not (adapter / "reference").exists()
    template = adapter / "chat_template.jinja"
    assert template.exists() or "chat_template" in (adapter / "tokenizer_config.json").read_text()
    meta = json.loads((adapter / "mixlab_dpo.json").read_text())
    assert meta["dpo"]["beta"] == 0.1 and meta["heldout"]["pairs"] >= 40
    assert (dpo_run / "final" / "merged" / "mixlab_dpo.json").exists()


def test_stopping_and_resuming_dpo_is_exact(tmp_path: Path, pretrained_model: Path) -> None:
    a = dpo_config(tmp_path / "a", pretrained_model)
    b = dpo_config(tmp_path / "b", pretrained_model)
    assert _dpo(a) == 0
    assert _dpo(b, "--stop-at", "2") == 0 and _dpo(b, "--resume") == 0
    losses = [[r["loss"] for r in _records(tmp_path / run / "dpo")] for run in ("a", "b")]
    assert losses[0] == losses[1]


def test_an_sft_adapter_trains_further_against_itself_as_it_started(tmp_path: Path, pretrained_model: Path) -> None:
    alpaca = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
    assert main(["--quiet", "sft", str(sft_config(tmp_path, pretrained_model, [alpaca], optim={"max_steps": 2}))]) == 0
    adapter = tmp_path / "sft" / "final" / "adapter"
    assert _dpo(dpo_config(tmp_path / "d", adapter, peft=None, optim={"max_steps": 1})) == 0
    first = _records(tmp_path / "d" / "dpo")[0]
    assert first["loss"] == pytest.approx(0.693147, abs=1e-5)  # policy == reference at the first step
    out = tmp_path / "d" / "dpo" / "final" / "adapter"
    assert json.loads((out / "mixlab_dpo.json").read_text())["continued_from"] == str(adapter)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(pretrained_model)


def test_a_full_policy_keeps_a_frozen_copy_as_reference(tmp_path: Path, pretrained_model: Path) -> None:
    assert _dpo(dpo_config(tmp_path, pretrained_model, peft={"method": "full"}, optim={"max_steps": 2})) == 0
    plan = json.loads((tmp_path / "dpo" / "plan.json").read_text())
    assert plan["reference"].startswith("a frozen copy of base") and plan["trainable_parameters"] == plan["parameters"]
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 20, 30, 40]])
    tuned = AutoModelForCausalLM.from_pretrained(str(tmp_path / "dpo" / "final")).eval()(input_ids=ids).logits
    base = AutoModelForCausalLM.from_pretrained(str(pretrained_model)).eval()(input_ids=ids).logits
    assert not torch.allclose(tuned, base, atol=1e-5)


def test_merge_with_a_full_policy_is_refused_before_any_work(tmp_path: Path, pretrained_model: Path, capsys) -> None:
    assert _dpo(dpo_config(tmp_path, pretrained_model, peft={"method": "full"}), "--merge") == 2
    assert "--merge: peft.method full" in capsys.readouterr().err
    assert not (tmp_path / "dpo").exists()


def test_a_reference_that_is_not_a_directory_is_refused(tmp_path: Path, pretrained_model: Path, capsys) -> None:
    assert _dpo(dpo_config(tmp_path, pretrained_model, reference=str(tmp_path / "missing"))) == 2
    assert "reference: " in capsys.readouterr().err


def test_a_prompt_tuning_method_is_refused_naming_the_key(tmp_path: Path, pretrained_model: Path, capsys) -> None:
    assert _dpo(dpo_config(tmp_path, pretrained_model, peft={"method": "prompt_tuning"})) == 2
    assert "peft" in capsys.readouterr().err


def test_two_processes_with_ddp_train_like_one_process_with_their_joint_batch(tmp_path: Path,
                                                                               pretrained_model: Path) -> None:
    """torchrun (gloo, loopback) with 2 x 2 pairs reads the same pairs as 1 x 4 pairs and averages gradients."""
    ddp = dpo_config(tmp_path / "ddp", pretrained_model, optim={"max_steps": 3, "batch_size": 2})
    single = dpo_config(tmp_path / "one", pretrained_model, optim={"max_steps": 3, "batch_size": 4})
    proc = torchrun_train("dpo", ddp, port=29531)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _dpo(single) == 0
    two, one = _records(tmp_path / "ddp" / "dpo"), _records(tmp_path / "one" / "dpo")
    for key in ("loss", "accuracy", "margin"):
        assert [r[key] for r in two] == pytest.approx([r[key] for r in one], abs=1e-5)


def test_a_reference_with_another_vocabulary_is_refused_in_one_line(tmp_path: Path, pretrained_model: Path,
                                                                    capsys) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other"
    LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(other)
    assert _dpo(dpo_config(tmp_path, pretrained_model, reference=str(other))) == 2
    err = capsys.readouterr().err
    assert "reference:" in err and "500 token embeddings" in err and "Traceback" not in err
