"""The model families users tune (GPT-2, GPT-NeoX, Phi-3, Qwen2, Llama), as tiny models built from their configs:
LoRA and IA3 adapt the decoder's own linear layers, explicit targets match by module-name component, `train
generate` stops on every end token of the model's generation_config, and the plan counts embeddings of any name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mixlab.errors import ConfigError
from tests.conftest import SHARED_DATA, TINY_MODEL, sft_config
from train.config import ModelConfig, SFTConfig

VOCAB = 128


def _tiny(family: str, vocab_size: int = VOCAB) -> Any:
    """A two-layer model of ``family`` with hidden size 32, built from its transformers config."""
    import transformers as tf

    common = {"vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    if family == "gpt2":
        config = tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128, **common)
    elif family == "gpt_neox":
        config = tf.GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=128, **common)
    elif family == "phi3":
        config = tf.Phi3Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                               intermediate_size=64, max_position_embeddings=128, **common)
    else:
        config = tf.Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                intermediate_size=64, max_position_embeddings=128, **common)
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(config)


def _cfg(**peft: Any) -> SFTConfig:
    return SFTConfig.model_validate({"base": "unused", "out": "unused", "data": {"files": [{"path": "unused"}]},
                                     "peft": {"r": 4, "alpha": 8, "dropout": 0.0, **peft}})


def _decoder_linear_layers(model: Any) -> set[str]:
    """Every Linear or Conv1D layer inside the decoder blocks (not the output head), by full name."""
    from transformers.pytorch_utils import Conv1D

    blocks = ("transformer.h.", "gpt_neox.layers.", "model.layers.")
    return {n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and n.startswith(blocks)}


def _wrap(model: Any, cfg: SFTConfig) -> Any:
    from train.sft import attach_adapter

    return attach_adapter(cfg, model)


def _adapted(peft_model: Any) -> set[str]:
    from train.sft import adapted_modules

    return {n.removeprefix("base_model.model.") for n in adapted_modules(peft_model)}


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "phi3", "qwen2"])
def test_default_lora_adapts_every_linear_layer_of_the_decoder_blocks(family: str) -> None:
    model = _tiny(family)
    expected = _decoder_linear_layers(model)
    assert expected and not any(n.endswith("lm_head") for n in expected)
    assert _adapted(_wrap(model, _cfg())) == expected


def test_default_lora_on_phi3_adapts_the_fused_projections() -> None:
    adapted = _adapted(_wrap(_tiny("phi3"), _cfg()))
    assert {n.rsplit(".", 1)[-1] for n in adapted} == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}


def test_an_explicit_target_that_is_only_a_suffix_of_a_fused_layer_is_refused() -> None:
    from train.sft import check_target_modules

    with pytest.raises(ConfigError) as e:
        check_target_modules(_cfg(target_modules=["v_proj"]), _tiny("phi3"))
    assert str(e.value).startswith("peft.target_modules: v_proj names no module of the base model")
    assert "qkv_proj" in str(e.value) and "gate_up_proj" in str(e.value)


def test_an_explicit_target_is_passed_to_peft_unchanged() -> None:
    model = _tiny("phi3")
    adapted = _adapted(_wrap(model, _cfg(target_modules=["qkv_proj"])))
    assert adapted == {f"model.layers.{i}.self_attn.qkv_proj" for i in range(2)}


def test_a_target_that_names_a_block_rather_than_a_layer_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as e:
        _wrap(_tiny("qwen2"), _cfg(target_modules=["mlp"]))
    assert str(e.value) == ("peft.target_modules: a target names a Qwen2MLP, which lora cannot adapt; its linear "
                            "layers are down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj")


def test_the_adapted_modules_and_trainable_count_are_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    from train import sft

    lines: list[str] = []
    monkeypatch.setattr(sft.log, "info", lines.append)
    model = _wrap(_tiny("gpt2"), _cfg())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lines == [f"lora: adapters on 8 modules (c_attn, c_fc, c_proj); {trainable:,} trainable parameters"]


def test_ia3_keeps_the_targets_the_user_gives() -> None:
    from train.sft import peft_config

    model = _tiny("qwen2")
    config = peft_config(_cfg(method="ia3", target_modules=["q_proj", "o_proj", "up_proj"]), model)
    assert set(config.target_modules) == {"q_proj", "o_proj", "up_proj"}
    assert set(config.feedforward_modules) == {"up_proj"}
    assert {n.rsplit(".", 1)[-1] for n in _adapted(_wrap(model, _cfg(method="ia3", target_modules=[
        "q_proj", "o_proj", "up_proj"])))} == {"q_proj", "o_proj", "up_proj"}


@pytest.mark.parametrize("family", ["gpt2", "phi3"])
def test_default_ia3_scales_every_decoder_linear_layer_and_treats_the_mlp_as_feedforward(family: str) -> None:
    from train.sft import peft_config

    model = _tiny(family)
    expected = _decoder_linear_layers(model)
    config = peft_config(_cfg(method="ia3"), model)
    assert set(config.feedforward_modules) == {n for n in expected if ".mlp." in n}
    assert _adapted(_wrap(model, _cfg(method="ia3"))) == expected


@pytest.mark.parametrize("family", ["gpt2", "phi3"])
def test_sft_with_default_targets_trains_and_saves_an_adapter_on_every_decoder_linear_layer(
        tmp_path: Path, tokenizer_dir: Path, family: str) -> None:
    import json

    from transformers import AutoTokenizer

    from train.cli import main

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = _tiny(family, vocab_size=len(tokenizer))
    model.save_pretrained(str(tmp_path / "base"))
    tokenizer.save_pretrained(str(tmp_path / "base"))
    alpaca = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
    cfg = sft_config(tmp_path, tmp_path / "base", [alpaca], optim={"max_steps": 2}, eval={"every": 2},
                     checkpoint={"every": 2, "keep": 1})
    assert main(["--quiet", "sft", str(cfg)]) == 0
    saved = json.loads((tmp_path / "sft" / "final" / "adapter" / "adapter_config.json").read_text())
    assert set(saved["target_modules"]) == _decoder_linear_layers(model)


def test_sft_longer_than_the_base_models_positions_is_refused_naming_max_len(tmp_path: Path, tokenizer_dir: Path,
                                                                              capsys: Any) -> None:
    from transformers import AutoTokenizer

    from train.cli import main

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    _tiny("gpt2", vocab_size=len(tokenizer)).save_pretrained(str(tmp_path / "base"))  # 128 positions
    tokenizer.save_pretrained(str(tmp_path / "base"))
    alpaca = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
    cfg = sft_config(tmp_path, tmp_path / "base", [alpaca], data={"max_len": 256}, optim={"max_steps": 2})
    assert main(["--quiet", "sft", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "data.max_len: 256 is longer than the 128 positions" in err and "Traceback" not in err


def test_generate_stops_on_every_end_token_of_the_generation_config(tmp_path: Path, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from train import generate

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    eos = tokenizer.eos_token_id
    other = eos + 1
    config = LlamaConfig(vocab_size=len(tokenizer), eos_token_id=eos, **TINY_MODEL)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[other, eos], bos_token_id=config.bos_token_id)
    model.save_pretrained(str(tmp_path / "model"))
    tokenizer.save_pretrained(str(tmp_path / "model"))

    loaded, tok = generate.load(tmp_path / "model")
    seen: dict[str, Any] = {}
    real = loaded.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*args, **kwargs)

    loaded.generate = spy
    generate.reply(loaded, tok, [{"role": "user", "content": "hi"}], max_new_tokens=1, temperature=0)
    assert seen["eos_token_id"] == [other, eos]


def test_the_tokenizer_eos_ends_a_reply_when_the_generation_config_names_another() -> None:
    from types import SimpleNamespace

    from train.generate import end_token_ids

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=7))
    assert end_token_ids(model, SimpleNamespace(eos_token_id=2)) == [7, 2]
    assert end_token_ids(model, SimpleNamespace(eos_token_id=7)) == [7]


def test_gpt2_position_and_token_embeddings_are_not_counted_as_weights() -> None:
    from train.model import parameter_count

    model = _tiny("gpt2")
    total, non_embedding = parameter_count(model)
    t = model.transformer
    assert model.lm_head.weight is t.wte.weight
    assert total == sum(p.numel() for p in model.parameters())
    assert total - non_embedding == t.wte.weight.numel() + t.wpe.weight.numel()


@pytest.mark.parametrize("tied", [True, False])
def test_the_built_llama_counts_its_embeddings_once_when_tied(tied: bool) -> None:
    from train.model import build, parameter_count

    model = build(ModelConfig(config={**TINY_MODEL, "tie_word_embeddings": tied}), VOCAB, 32,
                  {"bos": 1, "eos": 2, "pad": 0})
    total, non_embedding = parameter_count(model)
    embedding = VOCAB * TINY_MODEL["hidden_size"]
    assert total - non_embedding == (embedding if tied else 2 * embedding)
    assert non_embedding == sum(p.numel() for n, p in model.named_parameters()
                                if "embed_tokens" not in n and "lm_head" not in n)


@pytest.mark.parametrize("kind, config", [
    ("qwen2", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "num_key_value_heads": 2, "max_position_embeddings": 256}),
    ("gpt2", {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256}),
    ("gpt_neox", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "max_position_embeddings": 256})])
def test_a_model_of_any_causal_lm_family_builds_from_scratch(kind: str, config: dict[str, Any]) -> None:
    from train.model import build

    by_key = build(ModelConfig(architecture=kind, config=config), VOCAB, 64, {"bos": 1, "eos": 2, "pad": 0})
    by_type = build(ModelConfig(config={"model_type": kind, **config}), VOCAB, 64, {"bos": 1, "eos": 2, "pad": 0})
    assert by_key.config.model_type == by_type.config.model_type == kind
    assert by_key.config.vocab_size == VOCAB and by_key.config.eos_token_id == 2


def test_an_unknown_architecture_is_refused_with_the_nearest_names() -> None:
    from train.model import build

    with pytest.raises(ConfigError) as e:
        build(ModelConfig(architecture="qwen"), VOCAB, 64, {})
    assert str(e.value).startswith("model.architecture: 'qwen' is not a transformers model type with a causal-LM "
                                   "class (did you mean ")
    assert "qwen2" in str(e.value)


def test_a_family_without_a_causal_lm_class_is_refused() -> None:
    from train.model import build

    with pytest.raises(ConfigError, match="model.config.model_type: 't5' is not a transformers model type"):
        build(ModelConfig(config={"model_type": "t5"}), VOCAB, 64, {})


def test_too_few_positions_are_named_by_the_familys_own_key() -> None:
    from train.model import build

    with pytest.raises(ConfigError) as e:
        build(ModelConfig(architecture="gpt2", config={"n_positions": 16}), VOCAB, 64, {})
    assert str(e.value) == "model.config.n_positions (16) < data.seq_len (64)"


def test_architecture_and_a_different_model_type_are_refused_together() -> None:
    with pytest.raises(ValueError, match="model.architecture is 'qwen2' but model.config.model_type is 'gpt2'"):
        ModelConfig(architecture="qwen2", config={"model_type": "gpt2"})


def test_pretraining_builds_the_architecture_the_config_names(tmp_path: Path, quickstart_out: Path,
                                                              tokenizer_dir: Path) -> None:
    import json

    from tests.conftest import pretrain_config
    from train.cli import main

    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, optim={"max_steps": 2, "batch_size": 2},
                          eval={"every": 2}, model={"architecture": "gpt_neox", "config": {
                              "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 2, "max_position_embeddings": 64}})
    assert main(["--quiet", "pretrain", str(cfg)]) == 0
    saved = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert saved["model_type"] == "gpt_neox" and saved["hidden_size"] == 32
