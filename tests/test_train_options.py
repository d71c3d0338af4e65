"""The training options users of LLaMA-Factory, torchtune and XTuner look for: full-parameter SFT, DoRA, LoRA during
continued pretraining, continuing an adapter, plain completion with `train generate --raw`, checks before any work,
a held-out split that does not depend on the seed, and pretraining weights that leave domains out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED_DATA, pretrain_config, sft_config
from train.cli import main

ALPACA = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
IDS = torch.tensor([[1, 20, 30, 40, 50, 60, 70]])


def _sft(config: Path, *args: str) -> int:
    return main(["--quiet", "sft", str(config), *args])


def _logits(path: Path) -> torch.Tensor:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    cls = AutoPeftModelForCausalLM if (path / "adapter_config.json").exists() else AutoModelForCausalLM
    with torch.no_grad():
        return cls.from_pretrained(str(path)).eval()(input_ids=IDS).logits


def _adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.fixture
def no_data_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if `train sft` starts loading its data files."""
    from train import sft_data

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was loaded before the check")

    monkeypatch.setattr(sft_data, "prepare", refuse)


# -- full-parameter SFT --------------------------------------------------------------------------------------------
def test_full_sft_trains_every_weight_and_saves_a_whole_model_with_its_chat_template(
        tmp_path: Path, pretrained_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"method": "full"}, optim={"max_steps": 3})
    assert _sft(cfg) == 0
    final = tmp_path / "sft" / "final"
    plan = json.loads((tmp_path / "sft" / "plan.json").read_text())
    assert plan["trainable_parameters"] == plan["parameters"]
    assert (final / "config.json").is_file() and not (final / "adapter").exists()
    assert json.loads((final / "mixlab_sft.json").read_text())["method"] == "full"
    card = (final / "README.md").read_text()
    assert "library_name: transformers" in card and "every weight trained; " in card and "through peft" not in card
    assert not torch.allclose(_logits(final), _logits(pretrained_model), atol=1e-4)
    capsys.readouterr()
    assert main(["--quiet", "generate", str(final), "--prompt", "Name a color.", "--max-new-tokens", "4",
                 "--temperature", "0"]) == 0


def test_merge_with_full_sft_is_refused_before_any_work(tmp_path: Path, pretrained_model: Path, no_data_loading: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"method": "full"})
    assert _sft(cfg, "--merge") == 2
    assert "--merge: peft.method full" in capsys.readouterr().err
    assert not (tmp_path / "sft").exists()


# -- DoRA ----------------------------------------------------------------------------------------------------------
def test_dora_adapter_is_saved_as_dora_and_merges_to_the_same_logits(tmp_path: Path, pretrained_model: Path) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"use_dora": True}, optim={"max_steps": 4, "lr": 1e-2})
    assert _sft(cfg, "--merge") == 0
    final = tmp_path / "sft" / "final"
    assert json.loads((final / "adapter" / "adapter_config.json").read_text())["use_dora"] is True
    assert any("lora_magnitude_vector" in k for k in _adapter_weights(final / "adapter"))
    assert torch.allclose(_logits(final / "adapter"), _logits(final / "merged"), atol=1e-5)


def test_dora_with_a_method_other_than_lora_is_a_config_error(tmp_path: Path, pretrained_model: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"method": "ia3", "use_dora": True})
    assert _sft(cfg) == 2
    assert "peft.use_dora: DoRA is a kind of LoRA" in capsys.readouterr().err


# -- LoRA during continued pretraining -----------------------------------------------------------------------------
def test_pretrain_with_a_peft_section_trains_an_adapter_that_merges(tmp_path: Path, quickstart_out: Path,
                                                                      tokenizer_dir: Path,
                                                                      pretrained_model: Path) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"path": str(pretrained_model)},
                          data={"seq_len": 64}, peft={"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
                          optim={"max_steps": 4, "lr": 1e-2, "warmup_steps": 1})
    assert main(["--quiet", "pretrain", str(cfg), "--merge"]) == 0
    final = tmp_path / "run" / "final"
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert 0 < plan["trainable_parameters"] < plan["parameters"] / 5
    config = json.loads((final / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and Path(config["base_model_name_or_path"]) == pretrained_model
    adapter, merged = _logits(final / "adapter"), _logits(final / "merged")
    assert torch.allclose(adapter, merged, atol=1e-5)
    assert not torch.allclose(adapter, _logits(pretrained_model), atol=1e-4)


def test_pretrain_peft_without_a_model_to_continue_is_a_config_error(tmp_path: Path, quickstart_out: Path,
                                                                       tokenizer_dir: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, peft={"method": "lora"})
    assert main(["--quiet", "pretrain", str(cfg)]) == 2
    assert "peft: an adapter continues a trained model: set model.path" in capsys.readouterr().err


def test_pretrain_merge_without_an_adapter_is_refused(tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir)
    assert main(["--quiet", "pretrain", str(cfg), "--merge"]) == 2
    assert "--merge: without a peft section" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- continuing an adapter -----------------------------------------------------------------------------------------
def test_base_pointing_at_an_adapter_trains_that_adapter_further(tmp_path: Path, pretrained_model: Path) -> None:
    first = sft_config(tmp_path / "one", pretrained_model, [ALPACA], optim={"max_steps": 4, "lr": 1e-2})
    assert _sft(first) == 0
    adapter = tmp_path / "one" / "sft" / "final" / "adapter"
    # a learning rate too small to move the weights: the continued adapter starts where the first one ended
    second = sft_config(tmp_path / "two", adapter, [ALPACA], optim={"max_steps": 1, "lr": 1e-12, "warmup_steps": 0})
    assert _sft(second) == 0
    continued = tmp_path / "two" / "sft" / "final" / "adapter"
    before, after = _adapter_weights(adapter), _adapter_weights(continued)
    assert before.keys() == after.keys()  # one adapter, not a second one stacked on the first
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert any(v.abs().sum() > 0 for k, v in before.items() if "lora_B" in k)  # not a fresh (zero) adapter
    config = json.loads((continued / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == pretrained_model
    meta = json.loads((continued / "mixlab_sft.json").read_text())
    assert Path(meta["base"]) == pretrained_model and Path(meta["continued_from"]) == adapter


def test_continuing_an_adapter_with_other_peft_settings_is_refused(tmp_path: Path, pretrained_model: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first = sft_config(tmp_path / "one", pretrained_model, [ALPACA], optim={"max_steps": 1})
    assert _sft(first) == 0
    adapter = tmp_path / "one" / "sft" / "final" / "adapter"
    second = sft_config(tmp_path / "two", adapter, [ALPACA], peft={"r": 16})
    assert _sft(second) == 2
    assert "peft.r 16 here, 4 in the adapter" in capsys.readouterr().err


# -- train generate --raw ------------------------------------------------------------------------------------------
def test_generate_raw_continues_plain_text_after_the_end_of_document_token(pretrained_model: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    capsys.readouterr()
    assert main(["--quiet", "generate", str(pretrained_model), "--raw", "--prompt", "The history of",
                 "--max-new-tokens", "6", "--temperature", "0"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    tok = AutoTokenizer.from_pretrained(str(pretrained_model))
    model = AutoModelForCausalLM.from_pretrained(str(pretrained_model)).eval()
    ids = [tok.eos_token_id, *tok("The history of", add_special_tokens=False)["input_ids"]]
    expected = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    assert printed == tok.decode(expected[0, len(ids):], skip_special_tokens=True)


def test_generate_raw_refuses_a_system_message(pretrained_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "generate", str(pretrained_model), "--raw", "--prompt", "x", "--system", "y"]) == 2
    assert "--system" in capsys.readouterr().err


# -- checks before work --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning", "p_tuning"])
def test_merge_with_a_method_that_cannot_merge_is_refused_before_the_data_is_loaded(
        tmp_path: Path, pretrained_model: Path, no_data_loading: None, capsys: pytest.CaptureFixture[str],
        method: str) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"method": method})
    assert _sft(cfg, "--merge") == 2
    err = capsys.readouterr().err
    assert f"--merge: {method} adds virtual tokens" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sft").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_qlora_without_cuda_is_refused_before_the_data_is_loaded(tmp_path: Path, pretrained_model: Path,
                                                                  no_data_loading: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"qlora": True})
    assert _sft(cfg) == 2
    assert "peft.qlora: 4-bit QLoRA needs a CUDA GPU" in capsys.readouterr().err


def test_a_data_file_in_an_unknown_format_is_refused_before_the_data_is_loaded(
        tmp_path: Path, pretrained_model: Path, no_data_loading: None, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "chat.csv"
    table.write_text("instruction,output\nName a color.,Blue.\n", encoding="utf-8")
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA, {"path": str(table)}])
    assert _sft(cfg) == 2
    err = capsys.readouterr().err
    assert f"data.files: {table}: unknown data format" in err and len(err.strip().splitlines()) == 1


# -- the held-out split --------------------------------------------------------------------------------------------
def test_heldout_documents_do_not_depend_on_the_seed_so_stage_two_never_evaluates_on_stage_one_training(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, pretrained_model: Path) -> None:
    from mixlab.config import load_config
    from train.config import PretrainConfig
    from train.pretrain import Pretrainer

    data = {"seq_len": 64, "heldout_fraction": 0.05, "workers": 1}  # as the stage 1 run, `pretrained_model`
    stage1 = pretrain_config(tmp_path / "one", quickstart_out, tokenizer_dir, data=data, seed=0)
    stage2 = pretrain_config(tmp_path / "two", quickstart_out, tokenizer_dir, data=data, seed=7,
                             model={"path": str(pretrained_model)})
    one, two = (Pretrainer(load_config(PretrainConfig, c)) for c in (stage1, stage2))
    assert one.data.heldout.keys() == two.data.heldout.keys()
    for d in one.data.heldout:
        held1, held2 = one.data.heldout[d], two.data.heldout[d]
        assert held1.tokens > 0
        assert (held1.span_start == held2.span_start).all() and (held1.span_cum == held2.span_cum).all()
        assert (one.data.train[d].span_start == two.data.train[d].span_start).all()
        assert (one._eval[d] == two._eval[d]).all()


# -- data.weights that leave domains out ---------------------------------------------------------------------------
def test_pretrain_weights_that_leave_domains_out_say_those_get_zero(quickstart_out: Path, tokenizer_dir: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from train import data as data_mod
    from train.config import DataConfig
    from train.corpus import Corpus

    domains = Corpus(quickstart_out).domains
    assert len(domains) >= 2
    with caplog.at_level(logging.INFO, logger="mixlab"):
        data = data_mod.prepare(quickstart_out, tokenizer_dir, DataConfig(weights={domains[0]: 1.0}, workers=1))
    assert list(data.weights) == [domains[0]]
    assert (f"data.weights: no weight for the domain(s) {', '.join(domains[1:])}; each gets weight 0"
            in caplog.text)

