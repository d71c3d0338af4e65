"""`train generate`: sample from a base model, an SFT adapter or a merged model, with the same chat format the
model was tuned with (`train/sft_data.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from mixlab.errors import ConfigError
from train.sft_data import ChatFormat


def load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise ConfigError(f"{path}: not a local model directory (models are never downloaded here)")
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(path))


@torch.no_grad()
def reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int = 128,
          temperature: float = 0.7, top_p: float = 0.9, seed: int = 0) -> str:
    chat = ChatFormat(tokenizer)
    ids, _ = chat.encode(messages, add_generation_prompt=True)
    torch.manual_seed(seed)
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                         temperature=temperature if temperature > 0 else None, top_p=top_p if temperature > 0 else None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


def interactive(model: Any, tokenizer: Any, **kwargs: Any) -> None:
    history: list[dict[str, str]] = []
    print("chat with the model; an empty line or Ctrl-D ends it", file=sys.stderr)
    for line in sys.stdin:
        if not line.strip():
            break
        history.append({"role": "user", "content": line.rstrip("\n")})
        answer = reply(model, tokenizer, history, **kwargs)
        history.append({"role": "assistant", "content": answer})
        print(answer, flush=True)
