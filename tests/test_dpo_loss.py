"""`train dpo`'s loss equals trl's `DPOTrainer` loss on the same batch and model (DPO, IPO, DPO + SFT term; a LoRA
policy whose reference is the adapter disabled, and a full policy with a separate reference model), and cDPO equals
its formula on log-probabilities computed here independently."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import ROOT
from tests.families import build_family
from train.config import DPOConfig
from train.dpo import DPOTrainer, collate
from train.loop import IGNORE

PAIRS = ROOT / "recipes" / "data" / "dpo" / "gsm8k_pairs.jsonl"


def _trainer(tmp_path: Path, base: Path, **settings: Any) -> DPOTrainer:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(PAIRS.read_text(encoding="utf-8").splitlines(keepends=True)[:6]), encoding="utf-8")
    cfg = DPOConfig(**{"base": str(base), "out": str(tmp_path / "dpo"),
                       "data": {"files": [{"path": str(data)}], "max_len": 200, "heldout_fraction": 0.0},
                       "peft": {"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
                       "optim": {"batch_size": 3, "max_steps": 1, "warmup_steps": 0}, **settings})
    return DPOTrainer(cfg)


def _perturb(module: torch.nn.Module, only_lora: bool) -> None:
    """Move the trainable weights away from the reference so that the loss is not log 2."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad and (not only_lora or "lora_B.default" in name):
                p.add_(torch.randn_like(p) * (3.0 if only_lora else 0.1))


def _trl(trainer: DPOTrainer, tmp_path: Path, ref_model: Any, **args: Any) -> tuple[Any, dict[str, Any]]:
    """trl's DPOTrainer on our policy (``trainer.module``; on a peft model trl keeps a copy of the adapter as it
    starts, "ref", as its reference), and the batch of our first three pairs as trl's collator makes it from the
    pairs' prompt and answer ids."""
    from datasets import Dataset
    from trl import DPOConfig as TrlConfig
    from trl import DPOTrainer as TrlTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    examples = []
    for pair in trainer.prepared.train[:3]:
        parts = []
        for seq in (pair.chosen, pair.rejected):
            labelled = (seq.labels != IGNORE).nonzero()[0]
            start = int(labelled[0])
            assert (seq.labels[start:] != IGNORE).all()  # the answer is the sequence's last tokens, all labelled
            parts.append((seq.ids[:start].tolist(), seq.ids[start:].tolist()))
        assert parts[0][0] == parts[1][0]  # one prompt
        examples.append({"prompt_ids": parts[0][0], "chosen_ids": parts[0][1], "rejected_ids": parts[1][1]})
    records = [{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}]}]
    config = TrlConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, max_length=None,
                       precompute_ref_log_probs=False, **args)
    trl = TrlTrainer(model=trainer.module, ref_model=ref_model, args=config, train_dataset=Dataset.from_list(records),
                     processing_class=trainer.tokenizer)
    return trl, DataCollatorForPreference(pad_token_id=trainer.tokenizer.pad_token_id)(examples)


def _trl_loss(trl: Any, inputs: dict[str, Any]) -> float:
    trl.model.eval()
    with torch.no_grad():
        return float(trl.compute_loss(trl.model, inputs))


def _our_loss(trainer: DPOTrainer) -> float:
    trainer.model.eval()
    batch = collate(trainer.prepared.train[:3], trainer.tokenizer.pad_token_id, trainer.dist.device)
    with torch.no_grad():
        return float(trainer.loss(batch))


@pytest.mark.parametrize(("dpo", "trl_args"), [
    ({}, {"loss_type": ["sigmoid"], "beta": 0.1}),
    ({"loss": "ipo", "beta": 0.5}, {"loss_type": ["ipo"], "beta": 0.5}),
    ({"sft_weight": 0.7}, {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.7], "beta": 0.1}),
], ids=["dpo", "ipo", "dpo+sft"])
def test_loss_equals_trl_on_a_lora_policy_whose_reference_is_the_adapter_disabled(
        tmp_path: Path, dpo: dict[str, Any], trl_args: dict[str, Any]) -> None:
    trainer = _trainer(tmp_path, build_family("qwen2", tmp_path / "base"), dpo=dpo)
    trl, inputs = _trl(trainer, tmp_path, None, **trl_args)
    _perturb(trainer.module, only_lora=True)
    ours, theirs = _our_loss(trainer), _trl_loss(trl, inputs)
    assert abs(ours - math.log(2)) > 0.01, ours  # policy and reference differ
    assert ours == pytest.approx(theirs, abs=1e-5)


def test_loss_equals_trl_with_a_full_policy_and_a_separate_reference_model(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, build_family("qwen2", tmp_path / "base"), peft={"method": "full"})
    trl, inputs = _trl(trainer, tmp_path, trainer.reference, loss_type=["sigmoid"], beta=0.1)
    _perturb(trainer.module, only_lora=False)
    ours, theirs = _our_loss(trainer), _trl_loss(trl, inputs)
    assert abs(ours - math.log(2)) > 0.01, ours
    assert ours == pytest.approx(theirs, abs=1e-5)


def test_label_smoothing_is_cdpo_on_independently_computed_log_probabilities(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    base = build_family("qwen2", tmp_path / "base")
    eps, beta = 0.2, 0.1
    trainer = _trainer(tmp_path, base, dpo={"label_smoothing": eps, "beta": beta})
    _perturb(trainer.module, only_lora=True)
    ours = _our_loss(trainer)

    reference = AutoModelForCausalLM.from_pretrained(str(base)).eval()

    def answer_logp(model: Any, ids: Any, labels: Any) -> float:
        """log p(answer | prompt), one token at a time from the softmax of the logits."""
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        probs = torch.softmax(logits.double(), dim=-1)
        return sum(float(torch.log(probs[t - 1, ids[t]])) for t in range(1, len(ids)) if labels[t] != IGNORE)

    expected = []
    for pair in trainer.prepared.train[:3]:
        ratio = [answer_logp(trainer.module, s.ids.tolist(), s.labels)
                 - answer_logp(reference, s.ids.tolist(), s.labels) for s in (pair.chosen, pair.rejected)]
        z = beta * (ratio[0] - ratio[1])
        sig = 1 / (1 + torch.exp(torch.tensor(-z, dtype=torch.float64)))
        expected.append(float(-(1 - eps) * torch.log(sig) - eps * torch.log(1 - sig)))
    assert ours == pytest.approx(sum(expected) / len(expected), abs=1e-5)
