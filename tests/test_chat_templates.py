"""SFT on the chat templates the families ship (Qwen2.5's ChatML, Mistral v0.3, Gemma 2, Phi-3, and mixlab's default
format for GPT-2 and GPT-NeoX, which ship none): the ids are the template's own, and the labels are exactly each
assistant's content and its end-of-turn token, what `train generate` prompts for and stops on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.families import FAMILIES, build_family, tokenizer_of
from train import sft_data

SYSTEM = {"role": "system", "content": "Be brief."}
TURNS = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
END_OF_TURN = {"qwen2": "<|im_end|>", "mistral": "</s>", "gemma2": "<end_of_turn>", "phi3": "<|end|>",
               "gpt2": "<|endoftext|>", "gpt_neox": "<|endoftext|>"}
BEFORE_REPLY = {"mistral": " "}
"""what a template writes between its generation prompt and the reply, which the model generates (Mistral: a
space, SentencePiece's ``▁`` of the reply's first word)"""


def _chat(family: str) -> sft_data.ChatFormat:
    return sft_data.ChatFormat(tokenizer_of(family))


def _labelled_text(chat: sft_data.ChatFormat, messages: list[dict[str, str]]) -> dict[int, str]:
    """Per assistant message, the characters of the rendered conversation its labelled tokens cover."""
    ids, owner = chat.encode(messages)
    text = chat.render(chat.conform(messages))
    offsets = chat.tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    spans: dict[int, list[int]] = {}
    for (a, b), o in zip(offsets, owner):
        if o >= 0:
            spans.setdefault(o, [a, b])[1] = b
    return {o: text[a:b] for o, (a, b) in spans.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_are_exactly_each_assistant_content_and_its_end_of_turn_token(family: str) -> None:
    messages = [SYSTEM, *TURNS]
    expected = {i: BEFORE_REPLY.get(family, "") + m["content"] + END_OF_TURN[family]
                for i, m in enumerate(messages) if m["role"] == "assistant"}
    assert _labelled_text(_chat(family), messages) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_the_ids_are_those_of_apply_chat_template(family: str) -> None:
    chat = _chat(family)
    for messages in (TURNS, [SYSTEM, *TURNS]):
        ids, _ = chat.encode(messages)
        expected = chat.tok.apply_chat_template(chat.conform(messages), chat_template=chat.template, tokenize=True,
                                                return_dict=False)
        assert ids == list(expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_labelled_reply_after_its_generation_prompt_is_the_conversation_up_to_a_token_generate_stops_on(
        family: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from train.generate import end_token_ids

    directory = build_family(family, tmp_path / family)
    chat = sft_data.ChatFormat(tokenizer_of(family))
    stops = end_token_ids(AutoModelForCausalLM.from_pretrained(str(directory)), chat.tok)
    for messages in (TURNS, [SYSTEM, *TURNS]):
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        for i in turns if messages is TURNS else turns[-1:]:
            ids, owner = chat.encode(messages[: i + 1])
            prompt, _ = chat.encode(messages[:i], add_generation_prompt=True)
            reply = [t for t, o in zip(ids, owner) if o == i]
            assert prompt + reply == ids[: len(prompt) + len(reply)]
            assert reply[-1] in stops
            assert chat.tok.decode(reply, skip_special_tokens=True).strip() == messages[i]["content"]


def test_phi3s_template_that_ends_a_conversation_with_eos_is_accepted_and_that_eos_is_not_labelled() -> None:
    chat = _chat("phi3")
    ids, owner = chat.encode(TURNS)
    assert ids[-1] == chat.tok.convert_tokens_to_ids("<|endoftext|>") and owner[-1] == -1
    assert chat.tok.convert_ids_to_tokens(ids[-3:]) == ["<|end|>", "<0x0A>", "<|endoftext|>"]
    assert owner[-3:] == [3, -1, -1]


def test_qwen2_labels_neither_the_role_header_nor_the_newline_after_im_end() -> None:
    chat = _chat("qwen2")
    ids, owner = chat.encode(TURNS)
    first = owner.index(1)
    assert chat.tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert chat.tok.decode([t for t, o in zip(ids, owner) if o == 1]) == "Hello!<|im_end|>"
    assert chat.tok.decode(ids[len(owner) - owner[::-1].index(1):][:1]) == "\n"


def test_gemma2s_refused_system_message_is_folded_into_the_first_user_turn() -> None:
    chat = _chat("gemma2")
    assert chat.render(chat.conform([SYSTEM, *TURNS])).startswith(
        "<bos><start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n")


def test_mistrals_system_message_goes_where_its_template_puts_it_when_prompting_for_a_reply() -> None:
    chat = _chat("mistral")
    messages = [SYSTEM, *TURNS]
    assert "Be brief." not in chat.tok.apply_chat_template(messages, tokenize=False)
    trained = chat.render(chat.conform(messages))
    assert trained.startswith(chat.tok.apply_chat_template(messages[:-1], tokenize=False))
    assert "[INST] Be brief.\n\nWhat is 2+2?[/INST] It is 4.</s>" in trained


MARKED_CHATML = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}"
    "{{ m['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
"""ChatML with TRL's ``{% generation %}`` marks around each reply and its ``<|im_end|>``"""


def test_a_template_with_generation_marks_labels_what_it_marks() -> None:
    tok = tokenizer_of("qwen2")
    tok.chat_template = MARKED_CHATML
    chat = sft_data.ChatFormat(tok)
    assert chat.marked
    ids, owner = chat.encode([SYSTEM, *TURNS])
    assert {o: chat.tok.decode([t for t, w in zip(ids, owner) if w == o]) for o in (2, 4)} == {
        2: "Hello!<|im_end|>", 4: "It is 4.<|im_end|>"}
    unmarked = tokenizer_of("qwen2")
    unmarked.chat_template = MARKED_CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert sft_data.ChatFormat(unmarked).encode([SYSTEM, *TURNS]) == (ids, owner)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_saves_a_model_whose_vocabulary_is_its_tokenizers(family: str, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    directory = build_family(family, tmp_path / family)
    config: Any = AutoConfig.from_pretrained(str(directory))
    assert config.model_type == family and config.vocab_size == len(AutoTokenizer.from_pretrained(str(directory)))
