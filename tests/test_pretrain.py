"""`train pretrain` on the real quickstart corpus: exact resume, mixture, per-domain evaluation, continued
pretraining, document masking, and the errors a user meets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import pretrain_config, torchrun_train
from train.cli import main


def _run(config: Path, *args: str) -> int:
    return main(["--quiet", "pretrain", str(config), *args])


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(out / "final")).state_dict()


def test_stopping_and_resuming_gives_bitwise_identical_losses_and_parameters(tmp_path: Path, quickstart_out: Path,
                                                                              tokenizer_dir: Path) -> None:
    straight = pretrain_config(tmp_path / "a", quickstart_out, tokenizer_dir)
    assert _run(straight) == 0
    split = pretrain_config(tmp_path / "b", quickstart_out, tokenizer_dir)
    assert _run(split, "--stop-at", "3") == 0
    assert not (tmp_path / "b" / "run" / "final").exists()
    assert _run(split, "--resume") == 0
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert _losses(a) == _losses(b) and len(_losses(a)) == 6
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_per_domain_heldout_loss_decreases_on_real_data(tmp_path: Path, quickstart_out: Path,
                                                         tokenizer_dir: Path) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 40, "batch_size": 8},
                          eval={"every": 5, "tokens_per_domain": 3000})
    assert _run(cfg) == 0
    evals = [json.loads(x)["eval"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "eval" in json.loads(x)]
    first, last = evals[0], evals[-1]
    assert set(first) == {"books", "code", "web", "wiki"}
    assert all(last[d]["loss"] < first[d]["loss"] for d in first)


def test_tokens_drawn_follow_the_corpus_mixture(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 25, "batch_size": 16})
    assert _run(cfg) == 0
    drawn = json.loads((tmp_path / "run" / "summary.json").read_text())["tokens_by_domain"]
    weights = json.loads((quickstart_out / "mixture.json").read_text())["weights"]
    total = sum(drawn.values())
    assert total == 25 * 16 * 32
    for d, w in weights.items():
        assert abs(drawn[d] / total - w) < 1 / 400 + 1e-9  # exact up to one sequence in 400


def test_the_plan_is_written_before_training(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    assert _run(pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 2})) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["tokens"] == 2 * 4 * 32 and plan["parameters"] > 0 and plan["flops"] > 0
    assert plan["domains"]["web"]["tokens_available"] > plan["domains"]["web"]["tokens_to_draw"]


def test_continued_pretraining_from_a_checkpoint_on_another_mixture(tmp_path: Path, quickstart_out: Path,
                                                                     tokenizer_dir: Path) -> None:
    first = pretrain_config(tmp_path / "a", quickstart_out, tokenizer_dir)
    assert _run(first) == 0
    second = pretrain_config(tmp_path / "b", quickstart_out, tokenizer_dir,
                             model={"path": str(tmp_path / "a" / "run" / "final")},
                             data={"seq_len": 32, "weights": {"code": 0.8, "wiki": 0.2}, "workers": 1})
    assert _run(second) == 0
    drawn = json.loads((tmp_path / "b" / "run" / "summary.json").read_text())["tokens_by_domain"]
    assert set(drawn) == {"code", "wiki"}
    start = json.loads((tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    scratch = json.loads((tmp_path / "a" / "run" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert start < scratch  # it starts from the trained weights, not from scratch


def test_a_mixture_the_corpus_cannot_satisfy_is_refused_before_training(tmp_path: Path, quickstart_out: Path,
                                                                          tokenizer_dir: Path, capsys) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 5000, "batch_size": 64},
                          data={"seq_len": 32, "max_repetition": 1, "workers": 1})
    assert _run(cfg) == 2
    err = capsys.readouterr().err
    assert "cannot be drawn under max_repetition 1" in err and "too small" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_hub_model_name_fails_with_an_offline_message(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                          capsys) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"path": "meta-llama/Llama-3.2-1B"})
    assert _run(cfg) == 2
    err = capsys.readouterr().err
    assert "not a local directory" in err and "never downloaded" in err


def test_resuming_with_another_config_is_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                 capsys) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir)
    assert _run(cfg, "--stop-at", "3") == 0
    assert _run(cfg, "--resume", "data.seq_len=64") == 2
    assert "data.seq_len 32 there, 64 here" in capsys.readouterr().err


def test_document_masking_makes_each_document_see_only_itself(tokenizer_dir: Path) -> None:
    from train.config import ModelConfig
    from train.model import build
    from train.pretrain import model_inputs

    torch.manual_seed(0)
    model = build(ModelConfig(config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                      "num_attention_heads": 2}), 1000, 32, {"eos": 2}).eval()
    doc_a, doc_b = [10, 11, 12, 13, 2], [20, 21, 22, 23]
    packed = torch.tensor([doc_a + doc_b])
    with torch.no_grad():
        masked = model(**model_inputs(packed, 2, True, torch.float32)).logits[0, len(doc_a):]
        alone = model(input_ids=torch.tensor([doc_b])).logits[0]
        leaky = model(input_ids=packed).logits[0, len(doc_a):]
    assert torch.allclose(masked, alone, atol=1e-5)
    assert not torch.allclose(leaky, alone, atol=1e-3)


def test_document_masking_trains(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 3},
                          data={"seq_len": 32, "document_masking": True, "workers": 1})
    assert _run(cfg) == 0
    assert all(x == x for x in _losses(tmp_path / "run"))


def test_two_processes_with_ddp_train_like_one_process_with_their_joint_batch(tmp_path: Path, quickstart_out: Path,
                                                                               tokenizer_dir: Path) -> None:
    """torchrun (gloo, loopback) with 2 x batch 2 reads the same sequences as 1 x batch 4 and averages gradients."""
    ddp = pretrain_config(tmp_path / "ddp", quickstart_out, tokenizer_dir, optim={"max_steps": 4, "batch_size": 2},
                          eval={"every": 100}, checkpoint={"every": 100})
    single = pretrain_config(tmp_path / "one", quickstart_out, tokenizer_dir, optim={"max_steps": 4, "batch_size": 4},
                             eval={"every": 100}, checkpoint={"every": 100})
    proc = torchrun_train("pretrain", ddp, port=29511)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _run(single) == 0
    a, b = _losses(tmp_path / "ddp" / "run"), _losses(tmp_path / "one" / "run")
    assert len(a) == 4 and a == pytest.approx(b, abs=1e-4)
    wa, wb = _weights(tmp_path / "ddp" / "run"), _weights(tmp_path / "one" / "run")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


def _deepspeed(config: Path, *args: str) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29522", "TORCH_EXTENSIONS_DIR": str(ROOT / ".venv" / "torch_extensions")}
    proc = subprocess.run([sys.executable, "-m", "train.cli", "--quiet", "pretrain", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_deepspeed_zero2_trains_like_the_plain_loop_and_resumes_exactly(tmp_path: Path, quickstart_out: Path,
                                                                        tokenizer_dir: Path) -> None:
    """One CPU process (gloo on loopback); DeepSpeed's JIT-built ops are cached in .venv/torch_extensions."""
    pytest.importorskip("deepspeed", reason="install the `deepspeed` extra (make test does)")
    ds = {"backend": "deepspeed", "zero_stage": 2}
    straight = pretrain_config(tmp_path / "a", quickstart_out, tokenizer_dir, distributed=ds, eval={"every": 100})
    _deepspeed(straight)
    split = pretrain_config(tmp_path / "b", quickstart_out, tokenizer_dir, distributed=ds, eval={"every": 100})
    _deepspeed(split, "--stop-at", "3")
    _deepspeed(split, "--resume")
    plain = pretrain_config(tmp_path / "c", quickstart_out, tokenizer_dir, eval={"every": 100})
    assert _run(plain) == 0
    a, b, c = (_losses(tmp_path / x / "run") for x in "abc")
    assert a == b and len(a) == 6
    assert a == pytest.approx(c, abs=1e-4)


def test_gradient_checkpointing_gives_the_same_losses(tmp_path: Path, quickstart_out: Path,
                                                      tokenizer_dir: Path) -> None:
    plain = pretrain_config(tmp_path / "a", quickstart_out, tokenizer_dir, optim={"max_steps": 3})
    ckpt = pretrain_config(tmp_path / "b", quickstart_out, tokenizer_dir,
                           optim={"max_steps": 3, "gradient_checkpointing": True})
    assert _run(plain) == 0 and _run(ckpt) == 0
    assert _losses(tmp_path / "a" / "run") == pytest.approx(_losses(tmp_path / "b" / "run"), abs=1e-5)
