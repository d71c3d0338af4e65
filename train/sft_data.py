"""SFT data: Alpaca, ShareGPT and OpenAI-messages records -> checked conversations -> token ids with labels on
assistant tokens only -> packed (or padded) rows.

Every record becomes ``[{"role": system|user|assistant, "content": str}, ...]``. Records that break the rules
(missing fields, empty assistant turns, unknown or out-of-order roles) are reported with file and line and skipped
(or fail the run, `on_error: fail`).

The chat template is the tokenizer's own when it has one, else :data:`DEFAULT_TEMPLATE`. Token ids are built turn by
turn, so which tokens belong to an assistant turn is known exactly; an assistant turn's tokens and the EOS that ends
it carry labels, everything else is ``-100``. Training and `train generate` use the same code.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

from mixlab.errors import ConfigError
from train.loop import IGNORE

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
DEFAULT_TEMPLATE = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n", "end": "\n"}
"""The default chat format: each turn is ``<|role|>\\n{content}`` followed by a newline, an assistant turn by EOS
then a newline; a prompt for generation ends with ``<|assistant|>\\n``. Markers are plain text, so any tokenizer
(e.g. one from `train tokenizer`) can use it. Its Jinja form is saved with trained models."""
DEFAULT_JINJA = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                 "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@dataclass
class Problem:
    file: str
    location: str
    reason: str


@dataclass
class Conversation:
    messages: list[dict[str, str]]
    source: str
    index: int


def _messages_from(record: Any, fmt: str) -> tuple[list[dict[str, str]] | None, str | None]:
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if fmt == "auto":
        fmt = "messages" if "messages" in record else "sharegpt" if "conversations" in record else \
            "alpaca" if "instruction" in record else ""
        if not fmt:
            return None, "unknown format (no messages, conversations or instruction field)"
    if fmt == "alpaca":
        inst, inp, outp = record.get("instruction"), record.get("input", ""), record.get("output")
        if not isinstance(inst, str) or not inst.strip():
            return None, "missing or empty 'instruction'"
        if not isinstance(outp, str):
            return None, "missing 'output'"
        user = inst if not (isinstance(inp, str) and inp.strip()) else f"{inst}\n\n{inp}"
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": outp}]
        if isinstance(record.get("system"), str) and record["system"].strip():
            msgs.insert(0, {"role": "system", "content": record["system"]})
        return msgs, None
    key, role_key, text_key = ("messages", "role", "content") if fmt == "messages" else ("conversations", "from", "value")
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        return None, f"missing or empty '{key}'"
    msgs = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or not isinstance(t.get(text_key), str):
            return None, f"{key}[{i}]: needs a string '{text_key}'"
        role = t.get(role_key)
        role = SHAREGPT_ROLES.get(str(role).lower()) if fmt == "sharegpt" else role
        if role not in ROLES:
            return None, f"{key}[{i}]: unknown role {t.get(role_key)!r}"
        msgs.append({"role": role, "content": t[text_key]})
    return msgs, None


def check(messages: list[dict[str, str]]) -> str | None:
    """The structural rules a conversation must follow; the reason it breaks one, or None."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        return "a system message after the first turn"
    if not body or body[0]["role"] != "user":
        return "the first non-system turn must be the user's"
    for a, b in zip(body, body[1:]):
        if a["role"] == b["role"]:
            return f"two {a['role']} turns in a row"
    if not any(m["role"] == "assistant" for m in body):
        return "no assistant turn"
    if any(m["role"] == "assistant" and not m["content"].strip() for m in body):
        return "an empty assistant turn"
    if any(m["role"] == "user" and not m["content"].strip() for m in body):
        return "an empty user turn"
    return None


def _records(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    """(location, record, parse error) for a .json list or a .jsonl file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        for i, rec in enumerate(data):
            yield f"record {i}", rec, None
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {n}", json.loads(line), None
            except json.JSONDecodeError as e:
                yield f"line {n}", None, f"malformed JSON: {e}"


def load(path: Path, fmt: str) -> tuple[list[Conversation], list[Problem]]:
    if not path.is_file():
        raise ConfigError(f"data.files: {path} does not exist")
    convs, problems = [], []
    for i, (loc, rec, err) in enumerate(_records(path)):
        msgs, why = (None, err) if err else _messages_from(rec, fmt)
        why = why or check(msgs or [])
        if why:
            problems.append(Problem(path.name, loc, why))
        else:
            convs.append(Conversation(msgs or [], path.name, i))
    return convs, problems


class ChatFormat:
    """Renders conversations to token ids with the tokenizer's chat template, or the default one."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        template = getattr(tokenizer, "chat_template", None)
        self.own = bool(template) and template != DEFAULT_JINJA  # ours is saved with models; encoded turn by turn
        self.eos = tokenizer.eos_token_id

    def _text(self, s: str) -> list[int]:
        return self.tok(s, add_special_tokens=False)["input_ids"] if s else []

    def encode(self, messages: list[dict[str, str]], add_generation_prompt: bool = False
               ) -> tuple[list[int], list[int]]:
        """Token ids and, per token, the index of the assistant message it belongs to (-1: not an assistant's)."""
        if self.own:
            return self._encode_own(messages, add_generation_prompt)
        ids: list[int] = []
        owner: list[int] = []
        bos = self.tok.bos_token_id
        if bos is not None:
            ids.append(bos)
            owner.append(-1)
        for i, m in enumerate(messages):
            head = self._text(DEFAULT_TEMPLATE[m["role"]])
            ids += head
            owner += [-1] * len(head)
            body = self._text(m["content"])
            if m["role"] == "assistant":
                body = body + [self.eos]
            ids += body
            owner += [i if m["role"] == "assistant" else -1] * len(body)
            tail = self._text(DEFAULT_TEMPLATE["end"])
            ids += tail
            owner += [-1] * len(tail)
        if add_generation_prompt:
            head = self._text(DEFAULT_TEMPLATE["assistant"])
            ids += head
            owner += [-1] * len(head)
        return ids, owner

    def _encode_own(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> tuple[list[int], list[int]]:
        """The tokenizer's template, rendered on growing prefixes: tokens added by an assistant message are its."""
        ids: list[int] = []
        owner: list[int] = []
        for i in range(len(messages)):
            full = list(self.tok.apply_chat_template(messages[: i + 1], tokenize=True, return_dict=False))
            if full[: len(ids)] != ids:
                raise ConfigError("the tokenizer's chat template does not render conversations prefix by prefix; "
                                  "remove its chat_template to use mixlab's default format")
            new = full[len(ids):]
            owner += [i if messages[i]["role"] == "assistant" else -1] * len(new)
            ids = full
        if add_generation_prompt:
            full = list(self.tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                     return_dict=False))
            owner += [-1] * (len(full) - len(ids))
            ids = full
        return ids, owner


@dataclass
class Example:
    ids: np.ndarray
    labels: np.ndarray
    name: str


@dataclass
class Prepared:
    train: list[Example] = field(default_factory=list)
    heldout: list[Example] = field(default_factory=list)
    summary: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def tokenize(conv: Conversation, chat: ChatFormat, max_len: int, train_on: str) -> tuple[Example | None, str | None]:
    ids, owner = chat.encode(conv.messages)
    owner_a = np.asarray(owner)
    assistants = [i for i, m in enumerate(conv.messages) if m["role"] == "assistant"]
    if train_on == "all":
        mask = np.ones(len(ids), dtype=bool)
    elif train_on == "last":
        mask = owner_a == assistants[-1]
    else:
        mask = owner_a >= 0
    ids_a = np.asarray(ids[:max_len], dtype=np.int64)
    labels = np.where(mask, np.asarray(ids), IGNORE)[:max_len]
    if not (labels[1:] != IGNORE).any():
        return None, "assistant tokens cut by max_len"
    return Example(ids_a, labels, conv.source), None


def prepare(files: list[tuple[Path, str, float]], chat: ChatFormat, max_len: int, train_on: str,
            heldout_fraction: float, seed: int) -> Prepared:
    """Load, check, split (seeded, by record) and tokenize every file; weights repeat or subsample a file's
    training examples so each file's share of an epoch follows its weight."""
    out = Prepared()
    per_file: list[tuple[str, float, list[Example]]] = []
    for path, fmt, weight in files:
        convs, problems = load(path, fmt)
        out.problems += problems
        stats: Counter[str] = Counter(records=len(convs) + len(problems), malformed=len(problems))
        train: list[Example] = []
        for conv in convs:
            example, why = tokenize(conv, chat, max_len, train_on)
            if example is None:
                stats[why or "dropped"] += 1
                continue
            key = xxhash.xxh3_64_intdigest(f"{path.name}:{conv.index}:{seed}".encode())
            if key % 10_000 < round(heldout_fraction * 10_000):
                out.heldout.append(example)
                stats["heldout"] += 1
            else:
                train.append(example)
                stats["train"] += 1
                stats["train_tokens"] += int(len(example.ids))
                stats["label_tokens"] += int((example.labels[1:] != IGNORE).sum())
        out.summary[path.name] = dict(stats)
        per_file.append((path.name, weight, train))
    total_w = sum(w for _, w, _ in per_file) or 1.0
    epoch = sum(len(t) for _, _, t in per_file)
    rng = np.random.default_rng([seed, 0x5F7])
    for name, weight, train in per_file:
        want = int(round(epoch * weight / total_w))
        if not train or want == 0:
            continue
        picks = np.concatenate([rng.permutation(len(train)) for _ in range(-(-want // len(train)))])[:want]
        out.train += [train[i] for i in picks]
        out.summary[name]["drawn_per_epoch"] = want
    if not out.train:
        raise ConfigError("no training examples left after the data checks (see the summary above)")
    return out


PACK_WINDOW = 64
"""open rows first-fit packing may fill at once; the oldest is closed when one more is needed"""


def pack(examples: list[Example], order: np.ndarray, row_len: int, window: int = PACK_WINDOW) -> list[list[int]]:
    """First-fit packing in ``order`` over a window of open rows: each example goes into the first open row with room
    (rows of example indices whose lengths sum to at most ``row_len``). Filling earlier rows with later, shorter
    samples packs rows ~97% full where closing a row at the first misfit leaves ~78% (benchmarks/RESULTS.md); the
    window keeps the work linear and the data order close to ``order``. Deterministic: rows come out in the order
    they were opened."""
    done: list[list[int]] = []
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order.tolist():
        n = len(examples[i].ids)
        slot = next((k for k, room in enumerate(free) if room >= n), -1)
        if slot < 0:
            if len(rows) == window:
                done.append(rows.pop(0))
                free.pop(0)
            rows.append([])
            free.append(row_len)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= n
    return done + rows
