"""SFT data: formats, checks with locations, the chat format, and labels on exactly the assistant tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixlab.errors import ConfigError
from train import sft_data
from train.loop import IGNORE

CONVO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
         {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2+2?"},
         {"role": "assistant", "content": "It is 4."}]


@pytest.fixture(scope="module")
def chat(tokenizer_dir: Path) -> sft_data.ChatFormat:
    from transformers import AutoTokenizer

    return sft_data.ChatFormat(AutoTokenizer.from_pretrained(str(tokenizer_dir)))


def _write(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_the_three_formats_become_the_same_messages(tmp_path: Path) -> None:
    alpaca = {"instruction": "Add", "input": "2 and 2", "output": "4"}
    sharegpt = {"conversations": [{"from": "human", "value": "Add\n\n2 and 2"}, {"from": "gpt", "value": "4"}]}
    openai = {"messages": [{"role": "user", "content": "Add\n\n2 and 2"}, {"role": "assistant", "content": "4"}]}
    got = [sft_data.load(_write(tmp_path / f"{i}.jsonl", [r]), "auto")[0][0].messages
           for i, r in enumerate([alpaca, sharegpt, openai])]
    assert got[0] == got[1] == got[2] == openai["messages"]


def test_malformed_records_are_listed_with_file_and_line(tmp_path: Path) -> None:
    records = [
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]},
        {"instruction": "no output"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
        {"messages": [{"role": "robot", "content": "beep"}]},
        {"messages": [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "no"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    ]
    path = _write(tmp_path / "d.jsonl", records)
    with open(path, "a") as f:
        f.write("{not json\n")
    convs, problems = sft_data.load(path, "auto")
    assert len(convs) == 1
    assert [(p.location, p.reason) for p in problems] == [
        ("line 2", "missing 'output'"), ("line 3", "an empty assistant turn"),
        ("line 4", "messages[0]: unknown role 'robot'"), ("line 5", "the first non-system turn must be the user's"),
        ("line 6", "two user turns in a row"), ("line 7", problems[-1].reason)]
    assert problems[-1].reason.startswith("malformed JSON")


def test_labels_cover_exactly_every_assistant_turn_and_its_eos(chat: sft_data.ChatFormat) -> None:
    conv = sft_data.Conversation(CONVO, "x", 0)
    ex, _ = sft_data.tokenize(conv, chat, 512, "assistant")
    labeled = ex.ids[ex.labels != IGNORE]
    expected = []
    for m in CONVO:
        if m["role"] == "assistant":
            expected += chat.tok(m["content"], add_special_tokens=False)["input_ids"] + [chat.eos]
    assert labeled.tolist() == expected
    assert (ex.labels[ex.labels != IGNORE] == ex.ids[ex.labels != IGNORE]).all()


def test_train_on_last_and_all(chat: sft_data.ChatFormat) -> None:
    conv = sft_data.Conversation(CONVO, "x", 0)
    last, _ = sft_data.tokenize(conv, chat, 512, "last")
    expected = chat.tok("It is 4.", add_special_tokens=False)["input_ids"] + [chat.eos]
    assert last.ids[last.labels != IGNORE].tolist() == expected
    every, _ = sft_data.tokenize(conv, chat, 512, "all")
    assert (every.labels != IGNORE).all()


def test_a_sample_whose_assistant_tokens_are_all_cut_is_dropped(chat: sft_data.ChatFormat) -> None:
    long_user = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]
    ex, why = sft_data.tokenize(sft_data.Conversation(long_user, "x", 0), chat, 64, "assistant")
    assert ex is None and why == "assistant tokens cut by max_len"


def test_file_weights_set_each_files_share_of_an_epoch(tmp_path: Path, chat: sft_data.ChatFormat) -> None:
    rec = lambda i: {"instruction": f"say {i}", "output": f"{i}"}  # noqa: E731
    a = _write(tmp_path / "a.jsonl", [rec(i) for i in range(40)])
    b = _write(tmp_path / "b.jsonl", [rec(i) for i in range(40)])
    prep = sft_data.prepare([(a, "auto", 3.0), (b, "auto", 1.0)], chat, 64, "assistant", 0.0, 0)
    names = [e.name for e in prep.train]
    assert names.count("a.jsonl") == 60 and names.count("b.jsonl") == 20


def _examples(*lengths: int) -> list[sft_data.Example]:
    return [sft_data.Example(np.zeros(n, np.int64), np.zeros(n, np.int64), "x") for n in lengths]


def test_packing_puts_each_sample_in_the_first_row_with_room() -> None:
    rows = sft_data.pack(_examples(50, 60, 30, 90, 20), np.arange(5), 100)
    assert rows == [[0, 2, 4], [1], [3]]


def test_packing_closes_the_oldest_row_beyond_its_window() -> None:
    rows = sft_data.pack(_examples(50, 60, 30, 90, 20), np.arange(5), 100, window=1)
    assert rows == [[0], [1, 2], [3], [4]]


def test_packing_never_exceeds_a_row_and_keeps_every_sample_once() -> None:
    lengths = np.random.default_rng(0).integers(1, 300, 2000)
    examples = _examples(*lengths.tolist())
    order = np.random.default_rng(1).permutation(len(examples))
    rows = sft_data.pack(examples, order, 512)
    assert sorted(i for r in rows for i in r) == list(range(len(examples)))
    assert max(sum(lengths[r]) for r in rows) <= 512
    assert lengths.sum() / (len(rows) * 512) > 0.95


def test_a_tokenizer_template_that_is_not_prefix_stable_is_refused(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ConfigError, match="prefix by prefix"):
        sft_data.ChatFormat(tok).encode(CONVO)
