"""What `train sft` saves serves as it was trained: a merged adapter on tied embeddings gives base + adapter's
logits, the saved chat template gives the training ids through `apply_chat_template`, `AutoModelForCausalLM.generate`
says what `train generate` says, templates render in a sandbox, and `train generate` refuses what is not a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import SHARED_DATA, sft_config
from train import sft_data
from train.cli import main

ALPACA = {"path": str(SHARED_DATA / "sft" / "alpaca_en_demo.json"), "format": "alpaca"}
IDS = torch.tensor([[1, 50, 60, 70, 80, 90, 100, 110]])

SYSTEM = {"role": "system", "content": "You answer briefly."}
TURNS = [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."},
         {"role": "user", "content": " leading space,\ttab and\r\nCRLF"},
         {"role": "assistant", "content": "  two spaces, 中文 and 🙂 \n"}]
CONVERSATIONS = {"one turn": TURNS[:2], "multi-turn": TURNS, "system, one turn": [SYSTEM, *TURNS[:2]],
                 "system, multi-turn": [SYSTEM, *TURNS]}
HOSTILE_TEMPLATES = [
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(['touch', 'MARKER']) }}{% endif %}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
]


def _sft(config: Path, *args: str) -> int:
    return main(["--quiet", "sft", str(config), *args])


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pretrained_model: Path) -> Path:
    """final/ of a short LoRA SFT with --merge: adapter/ and merged/."""
    d = tmp_path_factory.mktemp("served")
    assert _sft(sft_config(d, pretrained_model, [ALPACA], optim={"max_steps": 4, "lr": 1e-2}), "--merge") == 0
    return d / "sft" / "final"


# -- LoRA on tied input and output embeddings -------------------------------------------------------------------

@pytest.mark.parametrize("targets", [["q_proj", "v_proj", "lm_head"], ["embed_tokens"], ["lm_head", "embed_tokens"]])
def test_lora_on_a_tied_embedding_merges_to_base_plus_adapter(tmp_path: Path, pretrained_model: Path,
                                                               targets: list[str]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], peft={"target_modules": targets},
                     optim={"max_steps": 2, "lr": 5e-2})
    assert _sft(cfg, "--merge") == 0
    final = tmp_path / "sft" / "final"
    base = AutoModelForCausalLM.from_pretrained(str(pretrained_model), dtype=torch.float32)
    assert base.config.tie_word_embeddings
    emb0, head0 = (base.get_input_embeddings().weight.detach().clone(),
                   base.get_output_embeddings().weight.detach().clone())
    merged = AutoModelForCausalLM.from_pretrained(str(final / "merged"), dtype=torch.float32).eval()
    with torch.no_grad():
        reference = PeftModel.from_pretrained(base, str(final / "adapter")).eval()(IDS).logits
        got = merged(IDS).logits
    assert (reference - got).abs().max().item() < 1e-5
    assert not json.loads((final / "merged" / "config.json").read_text())["tie_word_embeddings"]
    emb, head = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr()
    assert torch.equal(emb, emb0) == ("embed_tokens" not in targets)
    assert torch.equal(head, head0) == ("lm_head" not in targets)


def test_a_merge_that_leaves_the_embeddings_alone_keeps_them_tied(served: Path) -> None:
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(served / "merged"))
    assert json.loads((served / "merged" / "config.json").read_text())["tie_word_embeddings"]
    assert merged.get_input_embeddings().weight.data_ptr() == merged.get_output_embeddings().weight.data_ptr()


# -- the saved chat template --------------------------------------------------------------------------------------

@pytest.mark.parametrize("saved", ["adapter", "merged"])
@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_the_saved_template_gives_the_training_ids(served: Path, pretrained_model: Path, saved: str,
                                                   name: str) -> None:
    messages = CONVERSATIONS[name]
    training = sft_data.ChatFormat(_tokenizer(pretrained_model))
    ids, owner = training.encode(messages)
    tok = _tokenizer(served / saved)
    assert list(tok.apply_chat_template(messages, tokenize=True, return_dict=False)) == ids
    assert ids[0] == tok.bos_token_id and ids.count(tok.eos_token_id) == sum(m["role"] == "assistant"
                                                                             for m in messages)
    assert sorted(set(owner) - {-1}) == [i for i, m in enumerate(messages) if m["role"] == "assistant"]


@pytest.mark.parametrize("saved", ["adapter", "merged"])
@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_the_saved_generation_prompt_is_the_one_train_generate_uses(served: Path, saved: str, name: str) -> None:
    from train import generate

    prompt = CONVERSATIONS[name][:-1]
    model, tok = generate.load(served / saved)
    seen: list[list[int]] = []
    real = model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["input_ids"][0].tolist())
        return real(*args, **kwargs)

    model.generate = spy
    generate.reply(model, tok, prompt, max_new_tokens=1, temperature=0)
    expected = _tokenizer(served / saved).apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                                              return_dict=False)
    assert seen == [list(expected)]


@pytest.mark.parametrize("saved", ["adapter", "merged"])
@pytest.mark.parametrize("system", [None, SYSTEM["content"]])
def test_greedy_generate_from_transformers_says_what_train_generate_says(served: Path, saved: str,
                                                                         system: str | None, capsys) -> None:
    from transformers import AutoModelForCausalLM

    args = ["--prompt", "Name a color."] + (["--system", system] if system else [])
    assert main(["--quiet", "generate", str(served / saved), *args, "--max-new-tokens", "12",
                 "--temperature", "0"]) == 0
    said = capsys.readouterr().out
    tok = _tokenizer(served / saved)
    messages = ([{"role": "system", "content": system}] if system else []) + [TURNS[0]]
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=False)
    model = AutoModelForCausalLM.from_pretrained(str(served / saved), dtype=torch.float32).eval()
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    assert said == tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) + "\n"


def _own_template(prompt_end: str) -> str:
    return ("{% for m in messages %}{{ '[' + m['role'] + ']:" + prompt_end + "' + m['content'] }}"
            "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '[assistant]:" + prompt_end + "' }}{% endif %}")


def test_labels_of_a_models_own_template_are_its_assistant_text_and_eos(pretrained_model: Path) -> None:
    tok = _tokenizer(pretrained_model)
    tok.chat_template = _own_template("\\n")
    chat = sft_data.ChatFormat(tok)
    ids, owner = chat.encode(TURNS[:2])
    assert chat.own and ids == list(tok.apply_chat_template(TURNS[:2], tokenize=True, return_dict=False))
    assert tok.decode([t for t, o in zip(ids, owner) if o == 1]) == "Blue.</s>"
    assert chat.merged_starts == 0


def test_a_reply_that_merges_into_its_generation_prompt_is_counted(pretrained_model: Path) -> None:
    tok = _tokenizer(pretrained_model)
    tok.chat_template = _own_template(" ")
    chat = sft_data.ChatFormat(tok)
    chat.encode(TURNS[:2])
    assert chat.merged_starts == 1


class _WithoutOffsets:
    """A tokenizer as Python-only tokenizers are: no character offsets."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def __call__(self, text: str, **kwargs: Any) -> Any:
        if kwargs.pop("return_offsets_mapping", False):
            raise NotImplementedError("return_offset_mapping is not available when using Python tokenizers")
        return self._tok(text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_a_tokenizer_without_offsets_gets_the_same_ids_and_labels(pretrained_model: Path, name: str) -> None:
    tok = _tokenizer(pretrained_model)
    messages = CONVERSATIONS[name]
    assert sft_data.ChatFormat(_WithoutOffsets(tok)).encode(messages) == sft_data.ChatFormat(tok).encode(messages)


def test_a_template_saved_by_earlier_versions_encodes_as_the_default(pretrained_model: Path) -> None:
    tok = _tokenizer(pretrained_model)
    default = sft_data.ChatFormat(tok).encode(TURNS)
    tok.chat_template = sft_data.OLD_DEFAULT_JINJA
    chat = sft_data.ChatFormat(tok)
    assert not chat.own and chat.encode(TURNS) == default


# -- templates render in a sandbox --------------------------------------------------------------------------------

@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
def test_a_hostile_chat_template_runs_nothing_and_is_refused_in_one_line(served: Path, tmp_path: Path,
                                                                         template: str, monkeypatch,
                                                                         capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(served / "merged", model)
    tok = _tokenizer(model)
    tok.chat_template = template
    tok.save_pretrained(str(model))
    monkeypatch.chdir(tmp_path)
    assert main(["--quiet", "generate", str(model), "--prompt", "hi", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "MARKER").exists()
    assert err.count("\n") == 1 and str(model) in err and "chat template" in err and "Traceback" not in err


def test_sft_with_a_hostile_tokenizer_template_is_refused_before_training(tmp_path: Path, pretrained_model: Path,
                                                                          monkeypatch, capsys) -> None:
    tokenizer = tmp_path / "tok"
    tok = _tokenizer(pretrained_model)
    tok.chat_template = HOSTILE_TEMPLATES[0]
    tok.save_pretrained(str(tokenizer))
    monkeypatch.chdir(tmp_path)
    cfg = sft_config(tmp_path, pretrained_model, [ALPACA], tokenizer=str(tokenizer))
    assert _sft(cfg) == 2
    assert "sandbox" in capsys.readouterr().err and not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "sft" / "checkpoints").exists()


# -- train generate refuses what is not a model -------------------------------------------------------------------

def _not_models(tmp: Path, served: Path, corpus: Path) -> dict[str, Path]:
    (tmp / "empty").mkdir()
    (tmp / "file.txt").write_text("not a model\n")
    orphan = tmp / "orphan-adapter"
    shutil.copytree(served / "adapter", orphan)
    config = json.loads((orphan / "adapter_config.json").read_text())
    (orphan / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tmp / "gone")}))
    tokenizer_only = tmp / "tokenizer-only"
    _tokenizer(served / "merged").save_pretrained(str(tokenizer_only))
    broken = tmp / "broken"
    shutil.copytree(served / "merged", broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"\0" * 64)
    return {"missing": tmp / "missing", "empty": tmp / "empty", "file": tmp / "file.txt", "corpus": corpus,
            "tokenizer only": tokenizer_only, "adapter without its base": orphan,
            "damaged weights": broken}


@pytest.mark.parametrize("kind", ["missing", "empty", "file", "corpus", "tokenizer only",
                                  "adapter without its base", "damaged weights"])
def test_generate_on_a_path_that_is_not_a_model_says_so_in_one_line(tmp_path: Path, served: Path,
                                                                    quickstart_out: Path, kind: str,
                                                                    capsys) -> None:
    path = _not_models(tmp_path, served, quickstart_out)[kind]
    assert main(["--quiet", "generate", str(path), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train: error:") and err.count("\n") == 1 and str(path) in err
