"""Preference records for `train dpo`: the formats trl and LLaMA-Factory write give the same pairs, system prompts
and multi-turn prompts included; labels fall on the answer only; bad records are listed with file and line and
skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.families import tokenizer_of
from train import dpo_data
from train.loop import IGNORE
from train.sft_data import ChatFormat

SYSTEM, Q, A, B = "Be brief.", "What is 2+2?", "4", "5"
EARLIER = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
EXPECTED = dpo_data.PreferencePair([{"role": "system", "content": SYSTEM}, *EARLIER, {"role": "user", "content": Q}],
                                   {"role": "assistant", "content": A}, {"role": "assistant", "content": B})


@pytest.mark.parametrize("record", [
    {"prompt": [{"role": "system", "content": SYSTEM}, *EARLIER, {"role": "user", "content": Q}],
     "chosen": [{"role": "assistant", "content": A}], "rejected": [{"role": "assistant", "content": B}]},
    {"prompt": [*EARLIER, {"role": "user", "content": Q}], "system": SYSTEM, "chosen": A, "rejected": B},
    {"messages": [{"role": "system", "content": SYSTEM}, *EARLIER, {"role": "user", "content": Q}],
     "chosen": {"role": "assistant", "content": A}, "rejected": {"role": "assistant", "content": B}},
    {"system": SYSTEM, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
                                         {"from": "human", "value": Q}],
     "chosen": {"from": "gpt", "value": A}, "rejected": {"from": "gpt", "value": B}},
    {"instruction": Q, "input": "", "system": SYSTEM, "history": [["Hi", "Hello."]], "chosen": A, "rejected": B},
    {"chosen": [{"role": "system", "content": SYSTEM}, *EARLIER, {"role": "user", "content": Q},
                {"role": "assistant", "content": A}],
     "rejected": [{"role": "system", "content": SYSTEM}, *EARLIER, {"role": "user", "content": Q},
                  {"role": "assistant", "content": B}]},
], ids=["prompt-messages", "prompt-strings", "messages", "sharegpt", "alpaca", "implicit-prompt"])
def test_every_preference_format_gives_the_same_pair(record: dict) -> None:
    assert dpo_data.parse(record, "auto") == (EXPECTED, None)


def test_labels_fall_on_the_answer_and_its_end_of_turn_token_only() -> None:
    tok = tokenizer_of("qwen2")
    seq, cut = dpo_data.encode(EXPECTED.prompt, {"role": "assistant", "content": "The answer is 4."}, ChatFormat(tok),
                               512)
    assert seq is not None and not cut
    labelled = seq.ids[seq.labels != IGNORE]
    assert tok.decode(labelled) == "The answer is 4.<|im_end|>"
    assert seq.ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")  # nothing after the last target is kept


def test_bad_records_are_listed_with_their_line_and_skipped(tmp_path: Path) -> None:
    good = {"prompt": Q, "chosen": A, "rejected": B}
    bad = [{"prompt": Q, "chosen": A}, {"prompt": Q, "chosen": A, "rejected": A},
           {"prompt": [{"role": "user", "content": Q}, {"role": "assistant", "content": "x"}], "chosen": A,
            "rejected": B},
           {"prompt": Q, "chosen": "", "rejected": B}, {"text": "no pair here"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]) + "{broken\n", encoding="utf-8")
    pairs, problems = dpo_data.load(path, "auto")
    assert len(pairs) == 1
    assert [(p.location, p.reason) for p in problems] == [
        ("line 2", "missing 'rejected'"), ("line 3", "chosen and rejected are the same"),
        ("line 4", "the prompt must end with a user turn"), ("line 5", "an empty assistant turn"),
        ("line 6", "unknown format (no prompt, messages, conversations, instruction or chosen field)"),
        ("line 7", problems[-1].reason)]
    assert problems[-1].reason.startswith("malformed JSON")


def test_a_pair_whose_answer_max_len_cuts_away_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    long_prompt = "word " * 400
    path.write_text(json.dumps({"prompt": long_prompt, "chosen": A, "rejected": B}) + "\n"
                    + json.dumps({"prompt": Q, "chosen": A, "rejected": B}) + "\n", encoding="utf-8")
    prepared = dpo_data.prepare([(path, "auto", 1.0)], ChatFormat(tokenizer_of("qwen2")), 160, 0.0, 0)
    assert len(prepared.train) == 1 and prepared.summary["pairs.jsonl"][dpo_data.ANSWER_CUT] == 1


def test_two_files_of_the_same_name_are_counted_apart(tmp_path: Path) -> None:
    rows = [{"prompt": f"{Q} ({i})", "chosen": A, "rejected": B} for i in range(5)]
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    first, second = tmp_path / "d1" / "pairs.jsonl", tmp_path / "d2" / "pairs.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]), encoding="utf-8")
    prepared = dpo_data.prepare([(first, "auto", 1.0), (second, "auto", 1.0)], ChatFormat(tokenizer_of("qwen2")),
                                160, 0.0, 0)
    assert {k: v["records"] for k, v in prepared.summary.items()} == {str(first): 5, str(second): 2}
