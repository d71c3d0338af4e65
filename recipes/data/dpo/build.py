"""Build the DPO quickstart's preference pairs from GSM8K (openai/grade-school-math, MIT) in shared/data/sft.

Records 1,301-2,100 of GSM8K's train file (after the 1,300 the SFT quickstart uses; a question also in the SFT files
is skipped). In each pair the chosen answer is GSM8K's worked answer; the rejected one is that answer with every
number in it replaced, one occurrence at a time, by a different nearby number (seeded), so its arithmetic, its
calculator annotations (``<<48/2=24>>24``) and its final answer are wrong and disagree with the question:

* ``gsm8k_pairs.jsonl``: the first 600, as trl / LLaMA-Factory preference records: ``prompt`` (a message list: the
  question, after a system message in every third record), ``chosen`` and ``rejected`` (one assistant message each);
* ``gsm8k_followup_pairs.jsonl``: the next 200, in ShareGPT form: ``system``, ``conversations`` (the question, the
  worked answer without its ``#### N`` line, and "So what is the final answer? Just the number."), ``chosen`` (the
  number ``N``) and ``rejected`` (a different number) as ``{from: gpt, value}`` turns.

Run from the project root: ``python recipes/data/dpo/build.py`` (deterministic: the same files every time)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GSM8K = ROOT.parent / "shared" / "data" / "sft" / "gsm8k_train.jsonl"
SFT_FILES = [ROOT / "recipes" / "data" / "sft" / name for name in ("gsm8k_1k.jsonl", "gsm8k_multiturn.jsonl")]
SYSTEM = "You are a careful math tutor. Show your reasoning step by step."
FOLLOW_UP = "So what is the final answer? Just the number."
NUMBER = re.compile(r"\d+(?:\.\d+)?")
FIRST, PAIRS, FOLLOWUPS = 1300, 600, 200


def other_number(text: str, rng: random.Random) -> str:
    """A number near ``text`` (an integer or a decimal) that differs from it, written the same way."""
    if "." in text:
        whole, frac = text.split(".")
        return f"{other_number(whole, rng)}.{frac}"
    n = int(text)
    spread = max(3, n // 4)
    while True:
        m = n + rng.choice([-1, 1]) * rng.randint(1, spread)
        if m >= 0 and m != n:
            return str(m)


def corrupt(answer: str, rng: random.Random) -> str:
    """``answer`` with every number replaced, each occurrence on its own, by :func:`other_number`."""
    return NUMBER.sub(lambda m: other_number(m.group(), rng), answer)


def sft_questions() -> set[str]:
    seen = set()
    for path in SFT_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            seen.add(r["instruction"] if "instruction" in r else r["messages"][1]["content"])
    return seen


def main() -> None:
    seen = sft_questions()
    records = [json.loads(x) for x in GSM8K.read_text(encoding="utf-8").splitlines()[FIRST:]]
    records = [r for r in records if r["question"] not in seen][: PAIRS + FOLLOWUPS]
    pairs, followups = [], []
    for i, r in enumerate(records):
        rng = random.Random(i)
        work, final = r["answer"].rsplit("####", 1)
        if i < PAIRS:
            prompt = ([{"role": "system", "content": SYSTEM}] if i % 3 == 0 else []) + \
                [{"role": "user", "content": r["question"]}]
            pairs.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": r["answer"]}],
                          "rejected": [{"role": "assistant", "content": corrupt(r["answer"], rng)}]})
        else:
            final = final.strip()
            followups.append({"system": SYSTEM, "conversations": [
                {"from": "human", "value": r["question"]}, {"from": "gpt", "value": work.strip()},
                {"from": "human", "value": FOLLOW_UP}],
                "chosen": {"from": "gpt", "value": final},
                "rejected": {"from": "gpt", "value": corrupt(final, rng)}})
    for name, rows in (("gsm8k_pairs.jsonl", pairs), ("gsm8k_followup_pairs.jsonl", followups)):
        (HERE / name).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
        print(f"{HERE / name}: {len(rows)} pairs")


if __name__ == "__main__":
    main()
