"""The model: a local Hugging Face checkpoint (continued pretraining) or a Llama-style config (from scratch).
Nothing is downloaded: a hub name that is not a local directory is refused with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mixlab.errors import ConfigError
from train.config import ModelConfig

LLAMA_DEFAULTS: dict[str, Any] = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                                  "num_attention_heads": 4, "max_position_embeddings": 2048,
                                  "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "attention_dropout": 0.0}


def build(cfg: ModelConfig, vocab_size: int, seq_len: int, special: dict[str, int | None]) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if cfg.path is not None:
        path = Path(cfg.path)
        if not path.is_dir():
            raise ConfigError(f"model.path: {cfg.path} is not a local directory. Models are never downloaded "
                              "(this runs offline, HF_HUB_OFFLINE=1): a hub name must first be saved to a local "
                              "directory, e.g. the output of `train pretrain`")
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        if model.config.vocab_size < vocab_size:
            raise ConfigError(f"model.path: the checkpoint's vocabulary ({model.config.vocab_size}) is smaller than "
                              f"the tokenizer's ({vocab_size}); use the tokenizer it was trained with")
        return model
    values = {**LLAMA_DEFAULTS, **cfg.config}
    values.setdefault("max_position_embeddings", max(seq_len, 2048))
    try:
        config = LlamaConfig(vocab_size=vocab_size, bos_token_id=special.get("bos"), eos_token_id=special.get("eos"),
                             pad_token_id=special.get("pad"), **values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model.config: {e}") from None
    if config.max_position_embeddings < seq_len:
        raise ConfigError(f"model.config.max_position_embeddings ({config.max_position_embeddings}) < data.seq_len "
                          f"({seq_len})")
    return LlamaForCausalLM(config)


def parameter_count(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside the embeddings)."""
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    return total, total - emb


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12 * layers * width * seq_len for attention (PaLM)."""
    c = model.config  # type: ignore[attr-defined]
    _, non_emb = parameter_count(model)
    return 6.0 * non_emb + 12.0 * c.num_hidden_layers * c.hidden_size * seq_len
