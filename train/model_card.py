"""Model cards for what `train sft` saves: the README.md of final/adapter and final/merged.

A card says what the model is and how it was made: the base model (a path relative to the card's directory, or the
model's name; never this machine's absolute path), the data files (names) and their counts, the method and its
hyper-parameters, the held-out loss, the mixlab version and the date. Its metadata block follows the Hugging Face
model card's (``library_name``, ``tags``, ``pipeline_tag``). peft's ``save_pretrained`` writes an empty template
there; the card replaces it."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import mixlab

SUMMARY_COLUMNS = (("records", "records"), ("malformed", "skipped"), ("heldout", "held out"),
                   ("train", "train examples"), ("drawn_per_epoch", "drawn per epoch"),
                   ("train_tokens", "train tokens"), ("label_tokens", "label tokens"), ("truncated", "truncated"))
"""(summary key, column title) of the data table, from `train.sft_data.prepare`'s per-file summary"""
LOSS_ON = {"assistant": "assistant turns", "last": "the last assistant turn", "all": "every token"}
"""what ``data.train_on`` labels, in words"""


def sft_facts(cfg: Any, summary: dict[str, dict[str, int]], heldout: dict[str, float] | None, steps: int,
              trainable: int, chat_format: str, heldout_examples: int) -> dict[str, Any]:
    """What a card of an SFT run states, as JSON-ready values (saved beside the adapter, so that `--merge` writes
    the merged model's card from them): ``cfg`` is the run's `train.config.SFTConfig`, ``summary`` the prepared
    data's per-file counts, ``heldout`` the last evaluation's ``{"loss", "ppl"}`` (None: no held-out data),
    ``chat_format`` "tokenizer" (the base's template) or "default" (mixlab's)."""
    return {"base": cfg.base, "method": cfg.peft.method, "peft": cfg.peft.model_dump(mode="json"),
            "optim": cfg.optim.model_dump(mode="json"), "seed": cfg.seed,
            "data": {k: v for k, v in cfg.data.model_dump(mode="json").items() if k != "files"},
            "files": [{"name": Path(f.path).name, "format": f.format, "weight": f.weight} for f in cfg.data.files],
            "summary": summary, "heldout": heldout, "heldout_examples": heldout_examples, "steps": steps,
            "trainable_parameters": trainable, "chat_format": chat_format, "mixlab_version": mixlab.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def base_reference(base: str, home: Path) -> str:
    """``base`` as a card in ``home`` names it: a path relative to ``home`` when ``base`` is a local directory,
    else ``base`` itself (a model's name)."""
    if not Path(base).is_absolute():
        return base
    try:
        return Path(os.path.relpath(base, home.resolve())).as_posix()
    except ValueError:  # another drive: no relative path exists
        return Path(base).name


def _value(v: Any) -> str:
    return "default" if v is None else ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def sft_card(facts: dict[str, Any], home: Path, merged: bool = False) -> str:
    """The Markdown card (with its YAML metadata block) of an SFT adapter, or with ``merged`` of the adapter folded
    into its base, whose README.md lies in ``home``."""
    method, base = facts["method"], base_reference(facts["base"], home)
    full = method == "full"  # every weight trained: a whole model, nothing merged
    lines = ["---", f"library_name: {'transformers' if merged else 'peft'}", "pipeline_tag: text-generation",
             f"tags: [mixlab, sft, {method}]", "---", "",
             f"# {'SFT model' if full else 'Merged SFT model' if merged else 'SFT adapter'} ({method})", "",
             f"Supervised fine-tuning with `train sft` of mixlab {facts['mixlab_version']}, {facts['date']} (UTC): "
             f"{facts['steps']:,} optimizer steps, seed {facts['seed']}.", "",
             "## Base model", "",
             f"`{base}` (relative to this directory)" if base != facts["base"] else f"`{base}`", ""]
    chat = "the base tokenizer's own" if facts["chat_format"] == "tokenizer" else "mixlab's default format"
    data = facts["data"]
    loss_on = LOSS_ON.get(data["train_on"], data["train_on"])
    lines += ["## Data", "",
              f"Chat template: {chat} (saved with the tokenizer). Samples of at most {data['max_len']:,} tokens, "
              f"loss on {loss_on}"
              f"{', packed' if data['packing'] else ''}; {data['heldout_fraction']:.0%} of each file's records "
              "held out.", "",
              "| file | format | weight | " + " | ".join(t for _, t in SUMMARY_COLUMNS) + " |",
              "|---" * (3 + len(SUMMARY_COLUMNS)) + "|"]
    for f in facts["files"]:
        counts = facts["summary"].get(f["name"], {})
        lines.append(f"| {f['name']} | {f['format']} | {f['weight']:g} | "
                     + " | ".join(f"{counts.get(k, 0):,}" for k, _ in SUMMARY_COLUMNS) + " |")
    lines += ["", "## Method and hyper-parameters", "",
              f"{'every weight trained' if full else f'{method} through peft'}; "
              f"{facts['trainable_parameters']:,} trainable parameters"
              f"{' (now merged into the weights)' if merged and not full else ''}.", "",
              "| setting | value |", "|---|---|"]
    lines += [f"| peft.{k} | {_value(v)} |" for k, v in facts["peft"].items()]
    lines += [f"| optim.{k} | {_value(v)} |" for k, v in facts["optim"].items()]
    held = facts["heldout"]
    lines += ["", "## Evaluation", "",
              f"Held-out loss {held['loss']:.4f} (perplexity {held['ppl']:.2f}) over the label tokens of "
              f"{facts['heldout_examples']:,} held-out examples, after the last step." if held else
              "No held-out evaluation (no records were held out).", "",
              "## Use", "",
              "`train generate <this directory>` chats with it in the format it was tuned on"
              + ("." if merged or full else "; `train sft ... --merge` folds it into the base weights."), ""]
    return "\n".join(lines)


def write_sft_card(home: Path, facts: dict[str, Any], merged: bool = False, final_home: Path | None = None) -> Path:
    """Write :func:`sft_card` to ``home``/README.md (replacing peft's template) and return its path. The base
    model's relative path is taken from ``final_home``, where ``home`` will be renamed to (default ``home``)."""
    path = home / "README.md"
    path.write_text(sft_card(facts, final_home or home, merged), encoding="utf-8")
    return path
