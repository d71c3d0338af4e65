"""SFT record formats users bring (OpenAI messages with tool calls, ShareGPT with system/tools/function_call/
observation, Alpaca with history, XTuner/MOSS conversations), nothing dropped silently, and the model card that
`train sft` writes beside the adapter and the merged model."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sft_config
from tests.families import build_family, tokenizer_of
from train import sft_data

SHARED_SFT = Path(__file__).resolve().parents[2] / "shared" / "data" / "sft"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather of a city",
                                           "parameters": {"type": "object", "required": ["city"],
                                                          "properties": {"city": {"type": "string"}}}}}]
TOOL_RECORD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp_c\": 18}"},
        {"role": "assistant", "content": "It is 18 degrees."}],
    "tools": TOOLS}
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def _conversation(record: dict[str, Any], fmt: str = "auto") -> sft_data.Conversation:
    conv, why = sft_data.parse(record, fmt)
    assert why is None and conv is not None
    assert sft_data.check(conv.messages) is None
    return conv


def _labelled(chat: sft_data.ChatFormat, conv: sft_data.Conversation) -> dict[int, str]:
    """Per message index, the decoded text of the tokens labelled for it."""
    ids, owner = chat.encode(conv.messages, tools=conv.tools)
    return {o: chat.tok.decode([t for t, w in zip(ids, owner) if w == o]) for o in sorted(set(owner) - {-1})}


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# -- OpenAI messages with tool calls --------------------------------------------------------------------------------
def test_openai_tool_calls_are_read_with_null_content_parsed_arguments_and_the_tools_list() -> None:
    conv = _conversation(TOOL_RECORD)
    assert conv.messages[2] == {"role": "assistant", "content": "", "tool_calls": [{**CALL, "id": "call_1"}]}
    assert conv.messages[3] == {"role": "tool", "content": "{\"temp_c\": 18}", "tool_call_id": "call_1",
                                "name": "get_weather"}
    assert conv.tools == TOOLS


def test_qwen2_template_labels_the_tool_call_text_and_the_reply_but_not_the_tool_result() -> None:
    chat = sft_data.ChatFormat(tokenizer_of("qwen2"))
    conv = _conversation(TOOL_RECORD)
    ids, _ = chat.encode(conv.messages, tools=conv.tools)
    assert ids == list(chat.tok.apply_chat_template(conv.messages, tools=conv.tools, tokenize=True,
                                                    return_dict=False))
    assert _labelled(chat, conv) == {
        2: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
        4: "It is 18 degrees.<|im_end|>"}
    assert "get_weather" in chat.render(conv.messages, tools=conv.tools).split("<|im_start|>user")[0]


def test_the_default_format_renders_tools_tool_calls_and_tool_results_and_labels_the_calls() -> None:
    chat = sft_data.ChatFormat(tokenizer_of("gpt2"))
    conv = _conversation(TOOL_RECORD)
    eos = chat.tok.eos_token
    assert chat.render(conv.messages, tools=conv.tools) == (
        f"{eos}<|tools|>\n{json.dumps(TOOLS[0])}\n<|system|>\nBe brief.\n<|user|>\nWeather in Paris?\n"
        f'<|assistant|>\n<tool_call>{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}</tool_call>{eos}\n'
        f'<|tool|>\n{{"temp_c": 18}}\n<|assistant|>\nIt is 18 degrees.{eos}\n')
    assert _labelled(chat, conv) == {
        2: f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}</tool_call>{eos}',
        4: f"It is 18 degrees.{eos}"}


def test_the_default_format_renders_a_conversation_without_tools_as_models_saved_before_it_were_trained() -> None:
    tok = tokenizer_of("gpt2")
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello!"}]
    for prompt in (False, True):
        assert tok.apply_chat_template(turns, chat_template=sft_data.DEFAULT_JINJA, tokenize=False,
                                       add_generation_prompt=prompt) == \
            tok.apply_chat_template(turns, chat_template=sft_data.DEFAULT_JINJA_WITHOUT_TOOLS, tokenize=False,
                                    add_generation_prompt=prompt)
    tok.chat_template = sft_data.DEFAULT_JINJA_WITHOUT_TOOLS
    chat = sft_data.ChatFormat(tok)
    assert not chat.own and chat.template == sft_data.DEFAULT_JINJA


def test_a_tool_call_with_text_labels_both_and_a_parallel_call_puts_one_call_per_line() -> None:
    chat = sft_data.ChatFormat(tokenizer_of("gpt2"))
    record = {"messages": [{"role": "user", "content": "Paris and Rome?"},
                           {"role": "assistant", "content": "Checking.", "tool_calls": [
                               CALL, {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]}]}
    eos = chat.tok.eos_token
    assert _labelled(chat, _conversation(record)) == {1: (
        'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "Rome"}}}}</tool_call>{eos}')}


def test_a_template_without_tool_support_skips_tool_records_with_the_reason_and_trains_on_the_rest(
        tmp_path: Path) -> None:
    chat = sft_data.ChatFormat(tokenizer_of("phi3"))
    path = _write(tmp_path / "tools.jsonl", [TOOL_RECORD, {"messages": [{"role": "user", "content": "Hi"},
                                                                       {"role": "assistant", "content": "Hello"}]}])
    prepared = sft_data.prepare([(path, "auto", 1.0)], chat, 256, "assistant", 0.0, 0)
    assert len(prepared.train) == 1 and prepared.summary["tools.jsonl"]["malformed"] == 1
    (problem,) = prepared.problems
    assert problem.location == "line 1" and "does not render tools" in problem.reason


def test_openai_content_given_as_text_parts_is_joined() -> None:
    parts = [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]
    record = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Hello"}]}
    assert _conversation(record).messages[0] == {"role": "user", "content": "Hi there"}


@pytest.mark.parametrize("turns, reason", [
    ([{"role": "user", "content": "Hi"}, {"role": "tool", "content": "18"}], "follows no assistant tool call"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}], "needs a string"),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}], "not valid JSON"),
])
def test_broken_tool_records_are_rejected_with_a_reason(turns: list[dict[str, Any]], reason: str) -> None:
    conv, why = sft_data.parse({"messages": turns}, "messages")
    why = why or sft_data.check(conv.messages)
    assert why is not None and reason in why


# -- ShareGPT, Alpaca, XTuner/MOSS ----------------------------------------------------------------------------------
def test_sharegpt_top_level_system_and_tools_and_function_call_and_observation_roles() -> None:
    record = {"system": "Be brief.", "tools": json.dumps([TOOLS[0]["function"]]), "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": "{\"temp_c\": 18}"},
        {"from": "gpt", "value": "It is 18 degrees."}]}
    conv = _conversation(record, "sharegpt")
    assert conv.tools == TOOLS
    assert conv.messages == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Weather in Paris?"},
                             {"role": "assistant", "content": "", "tool_calls": [CALL]},
                             {"role": "tool", "content": "{\"temp_c\": 18}"},
                             {"role": "assistant", "content": "It is 18 degrees."}]
    assert set(_labelled(sft_data.ChatFormat(tokenizer_of("qwen2")), conv)) == {2, 4}


def test_alpaca_history_becomes_the_earlier_turns() -> None:
    record = {"system": "Be brief.", "instruction": "And 3+3?", "input": "", "output": "6",
              "history": [["What is 1+1?", "2"], ["And 2+2?", "4"]]}
    assert _conversation(record).messages == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "2"}, {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"}]


def test_xtuner_and_moss_conversations_are_a_format_of_their_own_and_detected() -> None:
    from train.config import SFTFile

    record = {"conversation": [{"system": "Be brief.", "input": "Hi", "output": "Hello!"},
                               {"input": "2+2?", "output": "4"}]}
    expected = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}]
    assert _conversation(record).messages == _conversation(record, "xtuner").messages == expected
    assert SFTFile(path="x.jsonl", format="xtuner").format == "xtuner"


# -- nothing dropped silently ---------------------------------------------------------------------------------------
def test_fields_mixlab_does_not_read_are_counted_per_file_and_field_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [{"id": i, "instruction": "Say hi", "output": "hi", "tools": "[]"} for i in range(3)]
    records.append({"messages": [{"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello", "weight": 0}]})
    path = _write(tmp_path / "mixed.jsonl", records)
    unused: Counter[str] = Counter()
    sft_data.load(path, "auto", unused)
    assert unused == {"id": 3, "tools": 3, "messages[].weight": 1}
    prepared = sft_data.prepare([(path, "auto", 1.0)], sft_data.ChatFormat(tokenizer_of("gpt2")), 64,
                                "assistant", 0.0, 0)
    assert prepared.unused == {"mixed.jsonl": {"id": 3, "messages[].weight": 1, "tools": 3}}
    with caplog.at_level(logging.INFO, logger="mixlab"):
        sft_data.report(prepared)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "  unused field 'tools' in 3 records of mixed.jsonl: mixlab does not read it" in warnings
    assert any("'messages[].weight' in 1 records" in w for w in warnings)


def test_the_summary_table_is_printed_before_the_no_examples_error(tmp_path: Path, capsys: Any) -> None:
    from train.cli import main

    base = build_family("gpt2", tmp_path / "base")
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "x"}, {"messages": []}])
    cfg = sft_config(tmp_path, base, [{"path": str(bad)}])
    assert main(["--quiet", "sft", str(cfg)]) == 2
    err = capsys.readouterr().err
    table, error = err.index("SFT data:"), err.index("no training examples left")
    assert table < error
    assert re.search(r"bad\.jsonl\s+2\s+2\s", err) and "skipped bad.jsonl line 2: missing or empty 'messages'" in err


# -- the model card -------------------------------------------------------------------------------------------------
def test_train_sft_writes_a_model_card_for_the_adapter_and_the_merged_model(tmp_path: Path) -> None:
    from train.cli import main

    base = build_family("gpt2", tmp_path / "models" / "base")
    demo = json.loads((SHARED_SFT / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:24]
    alpaca = tmp_path / "data" / "alpaca_demo.json"
    alpaca.parent.mkdir()
    alpaca.write_text(json.dumps(demo), encoding="utf-8")
    tools = _write(tmp_path / "data" / "tools.jsonl", [{"messages": TOOL_RECORD["messages"][1:]}] * 8)
    cfg = sft_config(tmp_path / "run", base, [{"path": str(alpaca)}, {"path": str(tools), "format": "messages"}],
                     optim={"max_steps": 2}, eval={"every": 2}, checkpoint={"every": 2, "keep": 1},
                     data={"heldout_fraction": 0.25, "max_len": 256})
    assert main(["--quiet", "sft", str(cfg), "--merge"]) == 0
    final = tmp_path / "run" / "sft" / "final"
    summary = json.loads((final.parent / "summary.json").read_text())
    counts = json.loads((final.parent / "plan.json").read_text())["data"]
    for kind in ("adapter", "merged"):
        card = (final / kind / "README.md").read_text(encoding="utf-8")
        assert str(tmp_path) not in card and "/tmp" not in card
        assert "`../../../../models/base` (relative to this directory)" in card
        assert f"{summary['eval']['heldout']['loss']:.4f}" in card
        for name in ("alpaca_demo.json", "tools.jsonl"):
            s = counts[name]
            assert f"| {name} | " in card and f"| {s['records']:,} | {s.get('malformed', 0):,} | " \
                f"{s.get('heldout', 0):,} | {s['train']:,} |" in card
        assert "| peft.r | 4 |" in card and "| optim.lr | 0.003 |" in card and "mixlab 0.1.0" in card
        assert "library_name: " + ("peft" if kind == "adapter" else "transformers") in card
