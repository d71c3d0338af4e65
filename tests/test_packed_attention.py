"""Rows of several segments (document masking in `train pretrain`, packing in `train sft`) keep each model's own
attention: every segment of a packed row gets the logits it gets alone, sliding windows and Gemma2's alternating
local/global layers included; a model that ignores packed position ids falls back to a block mask, or is refused
when that mask would drop its sliding window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from tests.conftest import pretrain_config, sft_config
from train import packing

WINDOW = 8
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 2, "max_position_embeddings": 128}
FAMILIES: dict[str, dict[str, Any]] = {
    "mistral": {**TINY, "sliding_window": WINDOW},
    # max_window_layers 0: layers from index 0 on slide, i.e. every layer (Qwen2Config.layer_types)
    "qwen2": {**TINY, "use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 0},
    # layer_types left to Gemma2's default: sliding and full attention alternating
    "gemma2": {**TINY, "sliding_window": WINDOW, "head_dim": 16},
    "llama": dict(TINY),
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128},
}
SLIDING = ("mistral", "qwen2", "gemma2")
LENGTHS = (5, 20, 11)  # two segments longer than the window


def tiny_model(family: str, vocab: int = 128, **overrides: Any) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(family, vocab_size=vocab, **{**FAMILIES[family], **overrides})
    return AutoModelForCausalLM.from_config(config).eval()


def packed_row(lengths: tuple[int, ...], vocab: int = 128, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Token ids, positions and segment numbers (1, sum(lengths)) of random segments of ``lengths``."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, sum(lengths)), generator=g)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    seg = torch.cat([torch.full((n,), k) for k, n in enumerate(lengths)])[None]
    return ids, pos, seg


def logits_alone(model: torch.nn.Module, ids: torch.Tensor, lengths: tuple[int, ...]) -> torch.Tensor:
    """(sum(lengths), V): each segment of the row ``ids`` (1, L) run as its own sequence, concatenated."""
    starts = np.cumsum((0,) + lengths)
    with torch.no_grad():
        return torch.cat([model(input_ids=ids[:, a:b]).logits[0] for a, b in zip(starts, starts[1:])])


def logits_packed(model: torch.nn.Module, ids: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor,
                  mode: packing.Mode) -> torch.Tensor:
    with torch.no_grad():
        return model(**packing.segment_inputs(ids, pos, seg, mode)).logits[0]


@pytest.fixture
def models_ignore_packed_position_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' mask code as an architecture whose masks do not read packed position ids."""
    import transformers.masking_utils as masking_utils

    monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)


# -- the model's own packed-sequence masks --------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_fed_packed_rows_by_position_ids(family: str) -> None:
    assert packing.choose(tiny_model(family), "data.packing") == packing.POSITION_IDS


@pytest.mark.parametrize("family", FAMILIES)
def test_each_segment_of_a_packed_row_gets_its_logits_alone(family: str) -> None:
    model = tiny_model(family)
    ids, pos, seg = packed_row(LENGTHS)
    packed = logits_packed(model, ids, pos, seg, packing.POSITION_IDS)
    assert torch.allclose(packed, logits_alone(model, ids, LENGTHS), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_token_segments_get_their_logits_alone(family: str) -> None:
    model = tiny_model(family)
    lengths = (1, 13, 1, 1, 9)
    ids, pos, seg = packed_row(lengths, seed=1)
    packed = logits_packed(model, ids, pos, seg, packing.POSITION_IDS)
    assert torch.allclose(packed, logits_alone(model, ids, lengths), atol=1e-5)


@pytest.mark.parametrize("family", SLIDING)
def test_a_block_mask_would_drop_the_sliding_window(family: str) -> None:
    """Why the block mask is not used for these models: it replaces the model's mask, so tokens past the window
    see the whole segment and their logits change."""
    model = tiny_model(family)
    ids, pos, seg = packed_row(LENGTHS)
    alone = logits_alone(model, ids, LENGTHS)
    blocked = logits_packed(model, ids, pos, seg, packing.BLOCK_MASK)
    start, end = LENGTHS[0], LENGTHS[0] + LENGTHS[1]
    assert torch.allclose(blocked[start:start + WINDOW], alone[start:start + WINDOW], atol=1e-5)
    assert not torch.allclose(blocked[start + WINDOW:end], alone[start + WINDOW:end], atol=1e-3)


def test_padding_at_the_end_of_a_row_changes_no_real_token() -> None:
    model = tiny_model("mistral")
    ids, pos, seg = packed_row((5, 12, 9), seed=2)
    real = logits_packed(model, ids[:, :17], pos[:, :17], seg[:, :17], packing.POSITION_IDS)
    padded_ids = torch.cat([ids[:, :17], torch.zeros(1, 9, dtype=torch.long)], dim=1)  # pad id 0, positions 0..8
    padded = logits_packed(model, padded_ids, pos, seg, packing.POSITION_IDS)
    assert torch.allclose(padded[:17], real, atol=1e-6)


def test_a_row_that_starts_inside_a_document_sees_only_that_documents_tail() -> None:
    from train.pretrain import model_inputs

    eos = 2
    model = tiny_model("mistral")
    tail, doc = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, eos], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69]
    with torch.no_grad():
        packed = model(**model_inputs(torch.tensor([tail + doc]), eos, True)).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([part])).logits[0] for part in (tail, doc)])
    assert torch.allclose(packed, alone, atol=1e-5)


# -- the probe: fallback and refusal --------------------------------------------------------------------------------
@pytest.mark.usefixtures("models_ignore_packed_position_ids")
def test_a_full_attention_model_that_ignores_packed_position_ids_gets_a_block_mask() -> None:
    model = tiny_model("llama")
    mode = packing.choose(model, "data.document_masking")
    ids, pos, seg = packed_row(LENGTHS)
    assert mode == packing.BLOCK_MASK
    assert torch.allclose(logits_packed(model, ids, pos, seg, mode), logits_alone(model, ids, LENGTHS), atol=1e-5)


@pytest.mark.usefixtures("models_ignore_packed_position_ids")
@pytest.mark.parametrize("family", SLIDING)
def test_a_sliding_window_model_that_ignores_packed_position_ids_is_refused(family: str) -> None:
    with pytest.raises(ConfigError, match=r"^data\.packing: .*sliding_window 8.*set data\.packing: false$"):
        packing.choose(tiny_model(family), "data.packing")


class PlainCausal(torch.nn.Module):
    """A model that reads only the token ids: plain causal attention over the whole row, whatever it is given."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.inner.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Any:
        return self.inner(input_ids=input_ids, use_cache=False)


def test_a_model_that_keeps_segments_apart_neither_way_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^data\.document_masking: .*neither by their position ids nor by a 4D"):
        packing.choose(PlainCausal(tiny_model("llama")), "data.document_masking")


def test_the_probe_leaves_the_model_in_training_mode() -> None:
    model = tiny_model("llama").train()
    packing.choose(model, "data.packing")
    assert model.training


# -- through `train pretrain` and `train sft` -----------------------------------------------------------------------
def family_config(family: str) -> dict[str, Any]:
    return {"model_type": family, **FAMILIES[family]}


def load(kind: type, path: Path) -> Any:
    """A config file read as the command reads it."""
    from mixlab.config import load_config

    return load_config(kind, path).resolve(path.resolve().parent)


@pytest.mark.parametrize("family", FAMILIES)
def test_document_masked_pretraining_batches_give_each_document_its_logits_alone(
        family: str, tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path) -> None:
    from train.data import document_positions
    from train.config import PretrainConfig
    from train.pretrain import Pretrainer

    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"config": family_config(family)},
                          data={"seq_len": 96, "document_masking": True, "workers": 1},
                          optim={"batch_size": 4, "max_steps": 50})
    trainer = Pretrainer(load(PretrainConfig, cfg))
    assert trainer.attention == packing.POSITION_IDS
    for step in range(50):  # the first batch that holds a row of several documents
        batch = trainer.micro_batch(step, 0)
        tokens = batch.inputs["input_ids"]
        _, docs = document_positions(tokens.numpy(), trainer.eos)
        if max(len(np.unique(d)) for d in docs) >= 2:
            break
    else:
        pytest.fail("no batch of several documents in a row")
    model = trainer.module.eval()
    with torch.no_grad():
        packed = model(**batch.inputs).logits
        alone = torch.stack([torch.cat([model(input_ids=row[None, d == k]).logits[0] for k in np.unique(d)])
                             for row, d in zip(tokens, docs)])
        loss = trainer.loss(batch)
    assert torch.allclose(packed, alone, atol=1e-5)
    expected = F.cross_entropy(alone.reshape(-1, alone.shape[-1]), batch.labels.reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-5)


def base_model(family: str, where: Path, tokenizer_dir: Path) -> Path:
    """A tiny ``family`` model with the test tokenizer's vocabulary, saved with that tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tiny_model(family, vocab=len(tokenizer)).save_pretrained(str(where))
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, where / f.name)
    return where


def short_chats(path: Path, n: int = 60) -> Path:
    """``n`` short conversations (a few dozen tokens each, so that rows hold several), as OpenAI-messages JSONL."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        a, b = (int(x) for x in rng.integers(1, 500, 2))
        answer = f"{a} plus {b} is {a + b}." + (" Adding numbers is easy." if i % 3 else "")
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                              {"role": "assistant", "content": answer}]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_sft_loss_equals_the_loss_of_each_sample_alone(family: str, tmp_path: Path,
                                                                tokenizer_dir: Path) -> None:
    from train.config import SFTConfig
    from train.loop import IGNORE
    from train.sft import SFTTrainer

    base = base_model(family, tmp_path / "base", tokenizer_dir)
    cfg = sft_config(tmp_path, base, [{"path": str(short_chats(tmp_path / "chats.jsonl")), "format": "messages"}],
                     data={"max_len": 128})
    trainer = SFTTrainer(load(SFTConfig, cfg))
    assert trainer.packing and trainer.attention == packing.POSITION_IDS
    B = trainer.cfg.optim.batch_size
    rows = [[trainer.prepared.train[i] for i in trainer._row(p)] for p in range(B)]
    assert max(len(r) for r in rows) >= 2  # rows of several samples
    batch = trainer.micro_batch(0, 0)
    assert (batch.inputs["input_ids"] == trainer.tokenizer.pad_token_id).any()  # and padding
    model = trainer.module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        loss = trainer.loss(batch)
        for example in (e for r in rows for e in r):
            logits = model(input_ids=torch.from_numpy(example.ids)[None]).logits[0, :-1]
            labels = torch.from_numpy(example.labels[1:])
            total += F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum").item()
            count += int((labels != IGNORE).sum())
    assert abs(loss.item() - total / count) < 1e-5


@pytest.mark.usefixtures("models_ignore_packed_position_ids")
def test_pretraining_a_sliding_window_model_that_ignores_packed_positions_is_refused_before_training(
        tmp_path: Path, quickstart_out: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from train.cli import main

    cfg = pretrain_config(tmp_path, quickstart_out, tokenizer_dir, model={"config": family_config("mistral")},
                          data={"seq_len": 32, "document_masking": True, "workers": 1})
    assert main(["--quiet", "pretrain", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.document_masking" in err[0] and "sliding_window 8" in err[0]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
