"""Every `train` path on the six families users tune — Qwen2, Mistral, Gemma2, Phi-3, GPT-2 and GPT-NeoX — each a
tiny model with a tokenizer of its own kind and the chat template it ships (`tests/families.py`): continued
pretraining with document masking, SFT with LoRA on default targets, ``--merge``, and the merged model equal to base
+ adapter. The trained models keep their family's chat template, end tokens and (Mistral, Gemma2) sliding windows.

Labels of each template are checked token by token in `tests/test_chat_templates.py`, and packed rows against each
sample alone on untrained models in `tests/test_packed_attention.py`; here the same holds for models that went
through training and saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import SHARED_DATA, pretrain_config, sft_config
from tests.families import FAMILIES, build_family

SLIDING = {"mistral", "gemma2"}
BLOCKS = ("transformer.h.", "gpt_neox.layers.", "model.layers.")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-domain corpus (web and wiki, 40 documents each) by `curate run` with normalize only."""
    from curate.cli import main

    root = tmp_path_factory.mktemp("six-corpus")
    web = (SHARED_DATA / "corpus" / "web" / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    (root / "web.jsonl").write_text("\n".join(web) + "\n", encoding="utf-8")
    wiki = [line for line in (SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt").read_text(encoding="utf-8")
            .splitlines() if len(line) > 200][:40]
    (root / "wiki.txt").write_text("\n".join(wiki) + "\n", encoding="utf-8")
    recipe = {"name": "six-families", "seed": 1,
              "sources": [{"path": str(root / "web.jsonl"), "format": "jsonl", "domain": "web"},
                          {"path": str(root / "wiki.txt"), "format": "lines", "domain": "wiki"}],
              "steps": [{"normalize": {}}], "output": {"dir": str(root / "corpus")}, "executor": {"workers": 1}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["--quiet", "run", str(root / "recipe.yaml")]) == 0
    return root / "corpus"


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 Alpaca records, one with a system prompt."""
    records = json.loads((SHARED_DATA / "sft" / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:60]
    records[0] = {**records[0], "system": "Answer briefly."}
    path = tmp_path_factory.mktemp("six-chat") / "chat.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _decoder_linear_layers(model: Any) -> set[str]:
    from transformers.pytorch_utils import Conv1D

    return {n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and n.startswith(BLOCKS)}


def _packed_logits_equal_each_alone(model: Any, vocab: int, lengths: list[int]) -> float:
    """The largest logit difference between one packed row of segments of ``lengths`` and each segment alone."""
    from train.packing import POSITION_IDS, segment_inputs

    g = torch.Generator().manual_seed(0)
    segments = [torch.randint(3, vocab, (n,), generator=g) for n in lengths]
    row = torch.cat(segments)[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    ids = torch.cat([torch.full((n,), k) for k, n in enumerate(lengths)])[None]
    with torch.no_grad():
        packed = model(**segment_inputs(row, positions, ids, POSITION_IDS)).logits[0]
        alone = torch.cat([model(input_ids=s[None], use_cache=False).logits[0] for s in segments])
    return float((packed - alone).abs().max())


@pytest.mark.parametrize("family", FAMILIES)
def test_continued_pretraining_then_lora_sft_and_merge_on_each_family(
        family: str, tmp_path: Path, small_corpus: Path, chat_file: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from train.cli import main

    base = build_family(family, tmp_path / "base")
    shipped_template = AutoTokenizer.from_pretrained(str(base)).chat_template
    shipped_eos = GenerationConfig.from_pretrained(str(base)).eos_token_id

    cfg = pretrain_config(tmp_path / "pt", small_corpus, base, model={"path": str(base)},
                          data={"seq_len": 64, "heldout_fraction": 0.1, "workers": 1, "document_masking": True},
                          optim={"max_steps": 2, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1},
                          eval={"every": 2, "tokens_per_domain": 500}, checkpoint={"every": 2, "keep": 1})
    assert main(["--quiet", "pretrain", str(cfg)]) == 0
    pretrained = tmp_path / "pt" / "run" / "final"
    assert json.loads((pretrained / "config.json").read_text())["model_type"] == family

    sft = sft_config(tmp_path / "sft", pretrained, [{"path": str(chat_file), "format": "alpaca"}],
                     data={"files": [{"path": str(chat_file), "format": "alpaca"}], "max_len": 128,
                           "heldout_fraction": 0.1},
                     optim={"max_steps": 2, "batch_size": 2}, eval={"every": 2}, checkpoint={"every": 2, "keep": 1})
    assert main(["--quiet", "sft", str(sft), "--merge"]) == 0
    final = tmp_path / "sft" / "sft" / "final"

    reference = AutoModelForCausalLM.from_pretrained(str(pretrained), dtype=torch.float32)
    adapter = json.loads((final / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == _decoder_linear_layers(reference)

    ids = torch.randint(3, reference.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    merged = AutoModelForCausalLM.from_pretrained(str(final / "merged"), dtype=torch.float32).eval()
    with torch.no_grad():
        expected = PeftModel.from_pretrained(reference, str(final / "adapter")).eval()(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), float((got - expected).abs().max())

    from train.sft_data import DEFAULT_JINJA

    saved_template = AutoTokenizer.from_pretrained(str(final / "merged")).chat_template
    assert saved_template == (shipped_template or DEFAULT_JINJA)  # GPT-2 and GPT-NeoX ship none: mixlab's is saved
    assert GenerationConfig.from_pretrained(str(final / "merged")).eos_token_id == shipped_eos
    if family in SLIDING:
        window = merged.config.sliding_window
        assert window and _packed_logits_equal_each_alone(merged, merged.config.vocab_size,
                                                          [5, 3 * window, window + 3]) < 1e-5
