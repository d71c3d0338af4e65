"""`train generate`: sample from a base model, an SFT adapter or a merged model, with the same chat format the
model was tuned with (`train/sft_data.py`), or (``--raw``) continue plain text as pretraining saw it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from train.model import check_model_directory, load_errors, load_failure
from train.sft import PEFT_WARNINGS
from train.sft_data import ChatFormat
from train.tokenizer import load_tokenizer


def load(path: Path, raw: bool = False) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a saved model directory: a full model (``config.json``: the final/ of
    `train pretrain`, final/merged of `train sft`) or a peft adapter (``adapter_config.json``: final/adapter), whose
    base model is the local directory recorded in it. Raises ConfigError naming the path when it does not exist, is
    not a directory, is not a whole model (see :func:`train.model.check_model_directory`), has no usable tokenizer or
    (unless ``raw``: plain completion needs none) chat template, or cannot be loaded."""
    from transformers import AutoModelForCausalLM

    adapter = check_model_directory(path)
    tokenizer = load_tokenizer(path, "model")
    if not raw:
        ChatFormat(tokenizer)
    try:
        if adapter:
            from peft import AutoPeftModelForCausalLM

            with warnings.catch_warnings():  # about adapters on tied embeddings: exact when not merged
                for message in PEFT_WARNINGS:
                    warnings.filterwarnings("ignore", message=message)
                model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except load_errors() as e:
        raise load_failure("", path, e) from None
    return model.eval(), tokenizer


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end a reply: every ``eos_token_id`` of the model's ``generation_config`` (an int or a
    list, e.g. Qwen's ``<|im_end|>`` and ``<|endoftext|>``), then the tokenizer's eos if not among them; in order,
    without repeats."""
    config = getattr(model, "generation_config", None)
    listed = getattr(config, "eos_token_id", None)
    ids = [listed] if isinstance(listed, int) else list(listed or [])
    ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


@torch.no_grad()
def reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int = 128,
          temperature: float = 0.7, top_p: float = 0.9, seed: int = 0) -> str:
    """The model's next assistant message after ``messages``, prompted with exactly the ids that
    ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)`` gives; greedy when ``temperature`` is 0,
    else nucleus sampling seeded by ``seed``. Generation stops at any of :func:`end_token_ids`. Raises ConfigError when the chat template cannot be rendered."""
    chat = ChatFormat(tokenizer)
    ids, _ = chat.encode(messages, add_generation_prompt=True)
    torch.manual_seed(seed)
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                         temperature=temperature if temperature > 0 else None, top_p=top_p if temperature > 0 else None,
                         eos_token_id=end_token_ids(model, tokenizer), pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


@torch.no_grad()
def complete(model: Any, tokenizer: Any, text: str, max_new_tokens: int = 128, temperature: float = 0.7,
             top_p: float = 0.9, seed: int = 0) -> str:
    """The model's continuation of plain ``text``, without a chat template: the prompt is the end-of-document token
    (EOS; `train pretrain` streams documents separated by it, so a document always starts right after one) and then
    ``text``'s tokens, without other special tokens. Greedy when ``temperature`` is 0, else nucleus sampling seeded
    by ``seed``; stops at any of :func:`end_token_ids` (the end of the document)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = [tokenizer.eos_token_id, *ids]
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                         temperature=temperature if temperature > 0 else None, top_p=top_p if temperature > 0 else None,
                         eos_token_id=end_token_ids(model, tokenizer), pad_token_id=pad)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


def interactive(model: Any, tokenizer: Any, raw: bool = False, **kwargs: Any) -> None:
    """Chat on stdin/stdout, keeping the conversation; with ``raw``, each line is completed on its own by
    :func:`complete`. ``kwargs`` go to :func:`reply` (or :func:`complete`)."""
    history: list[dict[str, str]] = []
    print("complete text with the model" if raw else "chat with the model", "; an empty line or Ctrl-D ends it",
          sep="", file=sys.stderr)
    for line in sys.stdin:
        if not line.strip():
            break
        if raw:
            print(complete(model, tokenizer, line.rstrip("\n"), **kwargs), flush=True)
            continue
        history.append({"role": "user", "content": line.rstrip("\n")})
        answer = reply(model, tokenizer, history, **kwargs)
        history.append({"role": "assistant", "content": answer})
        print(answer, flush=True)
