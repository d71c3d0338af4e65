"""`train generate`: sample from a base model, an SFT adapter or a merged model, with the same chat format the
model was tuned with (`train/sft_data.py`)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from mixlab.errors import ConfigError
from train.sft import TIED_WARNINGS
from train.sft_data import ChatFormat
from train.tokenizer import load_tokenizer


def load(path: Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a saved model directory: a full model (``config.json``: the final/ of
    `train pretrain`, final/merged of `train sft`) or a peft adapter (``adapter_config.json``: final/adapter), whose
    base model is the local directory recorded in it. Raises ConfigError naming the path when it does not exist, is
    not a directory, holds neither file, has no usable tokenizer or chat template, or cannot be loaded."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    hint = "give a saved model: the final/ of `train pretrain`, or final/adapter or final/merged of `train sft`"
    if not path.exists():
        raise ConfigError(f"model: {path} does not exist ({hint}; nothing is downloaded)")
    if not path.is_dir():
        raise ConfigError(f"model: {path} is a file, not a model directory ({hint})")
    adapter = (path / "adapter_config.json").is_file()
    if not adapter and not (path / "config.json").is_file():
        what = "a curated corpus" if (path / "manifest.json").is_file() else \
            "a tokenizer" if (path / "tokenizer_config.json").is_file() else "no model"
        raise ConfigError(f"model: {path} holds {what}, not a model (no config.json or adapter_config.json); {hint}")
    base = _adapter_base(path) if adapter else ""
    tokenizer = load_tokenizer(path, "model")
    ChatFormat(tokenizer)
    try:
        if adapter:
            from peft import AutoPeftModelForCausalLM

            with warnings.catch_warnings():  # about adapters on tied embeddings: exact when not merged
                warnings.filterwarnings("ignore", message=TIED_WARNINGS)
                model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, SafetensorError) as e:  # a damaged directory
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        source = f"{path} (base model {base})" if adapter else str(path)
        raise ConfigError(f"model: {source}: cannot be loaded ({reason})") from None
    return model.eval(), tokenizer


def _adapter_base(path: Path) -> str:
    """The base model directory an adapter names; ConfigError when it is unreadable or not a local directory."""
    config = path / "adapter_config.json"
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise ConfigError(f"model: {config} is not a readable adapter config ({e})") from None
    if not isinstance(base, str) or not Path(base).is_dir():
        raise ConfigError(f"model: {config}: its base model {base!r} is not a local directory (models are never "
                          "downloaded); restore it or train the adapter again")
    return base


@torch.no_grad()
def reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int = 128,
          temperature: float = 0.7, top_p: float = 0.9, seed: int = 0) -> str:
    """The model's next assistant message after ``messages``, prompted with exactly the ids that
    ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)`` gives; greedy when ``temperature`` is 0,
    else nucleus sampling seeded by ``seed``. Raises ConfigError when the chat template cannot be rendered."""
    chat = ChatFormat(tokenizer)
    ids, _ = chat.encode(messages, add_generation_prompt=True)
    torch.manual_seed(seed)
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                         temperature=temperature if temperature > 0 else None, top_p=top_p if temperature > 0 else None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


def interactive(model: Any, tokenizer: Any, **kwargs: Any) -> None:
    """Chat on stdin/stdout, keeping the conversation; ``kwargs`` go to :func:`reply`."""
    history: list[dict[str, str]] = []
    print("chat with the model; an empty line or Ctrl-D ends it", file=sys.stderr)
    for line in sys.stdin:
        if not line.strip():
            break
        history.append({"role": "user", "content": line.rstrip("\n")})
        answer = reply(model, tokenizer, history, **kwargs)
        history.append({"role": "assistant", "content": answer})
        print(answer, flush=True)
