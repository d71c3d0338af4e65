"""Preference data for `train dpo`: records of a prompt, a chosen and a rejected answer -> checked pairs of
conversations -> token ids with labels on each answer's tokens only.

Record formats (``format: auto`` tells them by their fields, in this order):

- ``prompt`` (trl, LLaMA-Factory): ``{prompt, chosen, rejected}``; the prompt is a string (one user turn) or a message
  list (system and earlier turns allowed), each answer a string or a list of one assistant message. Without
  ``prompt``, ``chosen`` and ``rejected`` may be whole conversations (trl's implicit prompt): the prompt is the
  messages they share.
- ``messages``: ``{messages, chosen, rejected}``, the prompt as OpenAI messages.
- ``sharegpt`` (LLaMA-Factory): ``{conversations, chosen, rejected}`` with a top-level ``system``; the answers are
  ``{from: gpt, value}`` turns or strings.
- ``alpaca`` (LLaMA-Factory): ``{instruction, input, system, history, chosen, rejected}``.

A pair's two conversations (prompt + answer) go through `train.sft_data`'s checks and chat format
(:class:`~train.sft_data.ChatFormat`): the same template `train sft` trained with and `train generate` prompts with.
Labels fall on the answer's tokens and the end-of-turn token that closes it; ids after that are dropped (nothing
there is a target). Records that break the rules are reported with file and line and skipped, as in SFT.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import sft_data
from train.loop import IGNORE
from train.sft_data import ChatFormat, Message, Prepared, Problem

FORMATS = {"prompt": "prompt", "messages": "messages", "sharegpt": "conversations", "alpaca": "instruction"}
"""each record format and the field that tells it; ``prompt`` is also told by ``chosen`` alone (implicit prompt)"""
RECORD_FIELDS = {"prompt": {"prompt", "chosen", "rejected", "system"},
                 "messages": {"messages", "chosen", "rejected"},
                 "sharegpt": {"conversations", "chosen", "rejected", "system"},
                 "alpaca": {"instruction", "input", "system", "history", "chosen", "rejected"}}
"""the fields of a record that mixlab reads, per format; any other is counted and reported, never used"""


@dataclass
class PreferencePair:
    """One record as messages: the prompt (ending with a user turn) and the two assistant answers."""

    prompt: list[Message]
    chosen: Message
    rejected: Message


@dataclass
class Sequence:
    """Token ids of prompt + one answer, and labels: the ids of the answer's tokens, IGNORE elsewhere."""

    ids: np.ndarray
    labels: np.ndarray


@dataclass
class Pair:
    chosen: Sequence
    rejected: Sequence
    name: str
    """the data file the pair comes from"""

    @property
    def tokens(self) -> int:
        return len(self.chosen.ids) + len(self.rejected.ids)


class _Bad(ValueError):
    """a record that breaks a format's rules; its message is the reason"""


def detect(record: Any, fmt: str) -> str | None:
    """The format of one record: ``fmt``, or for ``auto`` the first of :data:`FORMATS` whose field it has (a record
    with ``chosen`` and no other telling field is ``prompt``: the implicit prompt), None when it has none."""
    if fmt != "auto":
        return fmt
    if not isinstance(record, dict):
        return None
    found = next((f for f, key in FORMATS.items() if key in record), None)
    return found or ("prompt" if "chosen" in record else None)


def _answer(value: Any, what: str) -> Message:
    """An answer (``chosen`` or ``rejected``): a string, a ``{role: assistant, content}`` or ``{from: gpt, value}``
    message, or a list of one such message."""
    if isinstance(value, list):
        if len(value) != 1:
            raise _Bad(f"'{what}': needs one assistant message, not {len(value)}")
        value = value[0]
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    if isinstance(value, dict) and "from" in value:
        if sft_data.SHAREGPT_ROLES.get(str(value["from"]).lower()) != "assistant":
            raise _Bad(f"'{what}': from {value['from']!r} is not an assistant")
        return {"role": "assistant", "content": sft_data._text(value.get("value"), f"'{what}' value")}
    if isinstance(value, dict) and "role" in value:
        if value["role"] != "assistant":
            raise _Bad(f"'{what}': role {value['role']!r} is not assistant")
        return {"role": "assistant", "content": sft_data._text(value.get("content"), f"'{what}' content")}
    raise _Bad(f"'{what}': needs a string, an assistant message or a list of one")


def _implicit(record: dict[str, Any]) -> tuple[list[Message], Message, Message]:
    """trl's implicit prompt: ``chosen`` and ``rejected`` are whole conversations; the prompt is what they share."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not (isinstance(chosen, list) and isinstance(rejected, list)) or len(chosen) < 2 or len(rejected) < 2:
        raise _Bad("missing 'prompt' (or 'chosen' and 'rejected' as whole conversations that share it)")
    c, r = sft_data._openai_messages(chosen), sft_data._openai_messages(rejected)
    if c[:-1] != r[:-1]:
        raise _Bad("'chosen' and 'rejected' differ before their last message: no shared prompt")
    return c[:-1], _answer(c[-1], "chosen"), _answer(r[-1], "rejected")


def _prompt(record: dict[str, Any], kind: str) -> list[Message]:
    if kind == "alpaca":
        return sft_data._alpaca_messages({**record, "output": ""})[:-1]
    key = FORMATS[kind]
    value = record.get(key)
    if kind == "prompt" and isinstance(value, str):
        if not value.strip():
            raise _Bad("empty 'prompt'")
        msgs = [{"role": "user", "content": value}]
    elif not isinstance(value, list) or not value:
        raise _Bad(f"missing or empty '{key}'")
    elif kind == "sharegpt":
        return sft_data._sharegpt_messages(record, value)
    else:
        msgs = sft_data._openai_messages(value)
    if kind == "prompt" and isinstance(record.get("system"), str) and record["system"].strip() \
            and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": record["system"]}, *msgs]
    return msgs


def parse(record: Any, fmt: str) -> tuple[PreferencePair | None, str | None]:
    """One record in format ``fmt`` (auto|prompt|messages|sharegpt|alpaca, see the module) as a checked
    preference pair, or the reason it cannot be read: a prompt must end with a user turn, each answer be a
    non-empty assistant message, the two answers differ, and prompt + answer follow `train.sft_data.check`."""
    if not isinstance(record, dict):
        return None, "not a JSON object"
    kind = detect(record, fmt)
    if kind is None:
        return None, "unknown format (no prompt, messages, conversations, instruction or chosen field)"
    try:
        if kind == "prompt" and "prompt" not in record:
            prompt, chosen, rejected = _implicit(record)
        else:
            prompt = _prompt(record, kind)
            for key in ("chosen", "rejected"):
                if key not in record:
                    raise _Bad(f"missing '{key}'")
            chosen, rejected = _answer(record["chosen"], "chosen"), _answer(record["rejected"], "rejected")
    except _Bad as e:
        return None, str(e)
    except sft_data._Bad as e:
        return None, str(e)
    if not prompt or prompt[-1]["role"] != "user":
        return None, "the prompt must end with a user turn"
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if answer.get("tool_calls"):
            return None, f"'{name}': tool calls are not taken in preference pairs"
        why = sft_data.check([*prompt, answer])
        if why:
            return None, why if name == "chosen" or "empty assistant" not in why else "an empty rejected answer"
    if chosen["content"] == rejected["content"]:
        return None, "chosen and rejected are the same"
    return PreferencePair(prompt, chosen, rejected), None


def load(path: Path, fmt: str, unused: Counter[str] | None = None
         ) -> tuple[list[tuple[int, str, PreferencePair]], list[Problem]]:
    """The checked pairs of one data file, each with its record index and location, and the records skipped with
    their line (or list index) and reason. ``unused`` counts the records that have each field mixlab does not read.
    Raises ConfigError when the file is missing or unreadable, or is a .json list that is not valid JSON."""
    if not path.is_file():
        raise ConfigError(f"data.files: {path} does not exist")
    pairs, problems = [], []
    try:
        for i, (loc, rec, err) in enumerate(sft_data._records(path)):
            pair, why = (None, err) if err else parse(rec, fmt)
            kind = None if err else detect(rec, fmt)
            if unused is not None and kind is not None and isinstance(rec, dict):
                unused.update(k for k in rec if k not in RECORD_FIELDS[kind])
            if pair is None:
                problems.append(Problem(path.name, loc, why or "unreadable"))
            else:
                pairs.append((i, loc, pair))
    except OSError as e:
        raise ConfigError(f"data.files: {path}: cannot read ({e.strerror or e})") from None
    return pairs, problems


ANSWER_CUT = "answer cut by max_len"


def encode(prompt: list[Message], answer: Message, chat: ChatFormat, max_len: int) -> tuple[Sequence | None, bool]:
    """The sequence of ``prompt`` + ``answer`` in the chat format: labels on the answer's tokens (its content and
    the end-of-turn token after it), ids after the last label dropped, then cut to ``max_len``. Returns (None, True)
    when the cut leaves no answer token to learn from, else (sequence, whether it was cut)."""
    ids, owner = chat.encode([*prompt, answer])
    mine = np.asarray(owner) == len(prompt)
    end = int(np.flatnonzero(mine)[-1]) + 1
    ids_a = np.asarray(ids[:end], dtype=np.int64)
    labels = np.where(mine[:end], ids_a, IGNORE)
    cut = end > max_len
    ids_a, labels = ids_a[:max_len], labels[:max_len]
    if not (labels[1:] != IGNORE).any():
        return None, True
    return Sequence(ids_a, labels), cut


def prepare(files: list[tuple[Path, str, float]], chat: ChatFormat, max_len: int, heldout_fraction: float,
            seed: int) -> Prepared[Pair]:
    """Load, check, split (seeded, by record: the same split as `train sft` makes of a file) and tokenize every
    file; weights repeat or subsample a file's training pairs so each file's share of an epoch follows its weight.
    Raises ConfigError when no training pair is left."""
    out: Prepared[Pair] = Prepared()
    per_file: list[tuple[str, float, list[Pair]]] = []
    counts = Counter(path.name for path, _, _ in files)
    for path, fmt, weight in files:
        name = path.name if counts[path.name] == 1 else str(path)  # two files of one name stay apart
        unused: Counter[str] = Counter()
        pairs, problems = load(path, fmt, unused)
        out.problems += problems
        if unused:
            out.unused[name] = dict(sorted(unused.items()))
        stats: Counter[str] = Counter(records=len(pairs) + len(problems), malformed=len(problems))
        train: list[Pair] = []
        for index, loc, p in pairs:
            chosen, cut_c = encode(p.prompt, p.chosen, chat, max_len)
            rejected, cut_r = encode(p.prompt, p.rejected, chat, max_len)
            if chosen is None or rejected is None:
                stats[ANSWER_CUT] += 1
                continue
            stats["truncated"] += int(cut_c or cut_r)
            pair = Pair(chosen, rejected, name)
            key = xxhash.xxh3_64_intdigest(f"{name}:{index}:{seed}".encode())
            if key % 10_000 < round(heldout_fraction * 10_000):
                out.heldout.append(pair)
                stats["heldout"] += 1
            else:
                train.append(pair)
                stats["train"] += 1
                stats["train_tokens"] += pair.tokens
        out.summary[name] = dict(stats)
        per_file.append((name, weight, train))
    out.train = sft_data.draw_epoch(per_file, out.summary, np.random.default_rng([seed, 0xD90]))
    if not out.train:
        report(out, logging.WARNING)
        records = sum(s.get("records", 0) for s in out.summary.values())
        raise ConfigError(f"data: no training pairs left after the data checks ({records:,} records in {len(files)} "
                          f"files, {len(out.problems):,} malformed, {len(out.heldout):,} held out; see the summary "
                          "above)")
    return out


def report(prepared: Prepared[Pair], level: int = logging.INFO, listed: int = 20) -> None:
    """Log the per-file table (records, malformed, dropped because max_len cut an answer away, held out, train
    pairs and tokens, pairs cut to max_len), the first ``listed`` skipped records with file, line and reason, and,
    at WARNING at least, each record field mixlab does not read."""
    rows = [f"{'file':<30}{'records':>9}{'malformed':>10}{'dropped':>9}{'heldout':>9}{'train':>8}"
            f"{'train tokens':>14}{'truncated':>11}"]
    for name, s in prepared.summary.items():
        rows.append(f"{name:<30}{s.get('records', 0):>9,}{s.get('malformed', 0):>10,}{s.get(ANSWER_CUT, 0):>9,}"
                    f"{s.get('heldout', 0):>9,}{s.get('train', 0):>8,}{s.get('train_tokens', 0):>14,}"
                    f"{s.get('truncated', 0):>11,}")
    log.log(level, "DPO data (pairs):\n" + "\n".join(rows))
    sft_data.report_problems(prepared.problems, prepared.unused, level, listed)
