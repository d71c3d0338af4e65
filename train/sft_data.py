"""SFT data: Alpaca, ShareGPT and OpenAI-messages records -> checked conversations -> token ids with labels on
assistant tokens only -> packed (or padded) rows.

Every record becomes ``[{"role": system|user|assistant, "content": str}, ...]``. Records that break the rules
(missing fields, empty assistant turns, unknown or out-of-order roles) are reported with file and line and skipped
(or fail the run, `on_error: fail`).

The chat template is the tokenizer's own when it has one, else :data:`DEFAULT_JINJA`, and it is saved with the
model. Token ids are those of ``apply_chat_template`` on the whole conversation. An assistant's content and the
end-of-turn token after it (``<|im_end|>``, ``<end_of_turn>``, ``<|end|>``, EOS) carry labels, found by the
template's ``{% generation %}`` marks or by rendering (:class:`ChatFormat`); everything else, role headers included,
is ``-100``, as in LLaMA-Factory and torchtune. Training and `train generate` use the same code.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

from mixlab.errors import ConfigError
from mixlab.logs import log
from train.loop import IGNORE

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}
DEFAULT_JINJA = ("{% if bos_token %}{{ bos_token }}{% endif %}"
                 "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
                 "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
"""The default chat format, saved with trained models: BOS, then each turn as ``<|role|>\\n{content}`` followed by a
newline, an assistant's content by EOS before that newline; a prompt for generation ends with ``<|assistant|>\\n``.
Markers are plain text, so any tokenizer (e.g. one from `train tokenizer`) can use it. Newlines are Jinja
expressions because transformers renders with ``trim_blocks``, which drops a newline written after a block tag."""
OLD_DEFAULT_JINJA = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                     "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
"""The default format as earlier mixlab versions saved it, without the BOS and the newline after each turn that
training used: models saved with it were trained on :data:`DEFAULT_JINJA`'s ids, so it is read as that."""


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


BOM = b"\xef\xbb\xbf"


def _records(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    """(location, record, problem) for each record of a .json list or a JSON Lines file.

    JSON Lines records end at ``\\n`` only (a ``\\r`` before it is JSON whitespace): U+2028, U+2029 and U+0085 are
    legal inside JSON strings, and raw control characters such as \\x1c-\\x1e are read there too (``strict=False``),
    so `str.splitlines` would cut records apart. A line that is not UTF-8 or not JSON is a problem at its line, like
    any other bad record. A .json list is one document: if it is not UTF-8 or not JSON, ConfigError names the file
    and the place."""
    with open(path, "rb") as f:
        head = f.read(4096).removeprefix(BOM).lstrip()
        if path.suffix == ".json" and head.startswith(b"["):
            f.seek(0)
            yield from _json_list(path, f.read())
            return
        f.seek(0)
        for n, raw in enumerate(f, 1):
            if n == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield f"line {n}", None, f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                continue
            try:
                yield f"line {n}", json.loads(line, strict=False), None
            except json.JSONDecodeError as e:
                yield f"line {n}", None, f"malformed JSON: {e}"
            except RecursionError:
                yield f"line {n}", None, "malformed JSON: nested too deeply"


def _json_list(path: Path, data: bytes) -> Iterator[tuple[str, Any, str | None]]:
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not UTF-8 (byte 0x{data[e.start]:02x} at line {line})") from None
    try:
        records = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid JSON (nested too deeply)") from None
    for i, rec in enumerate(records):
        yield f"record {i}", rec, None


def load(path: Path, fmt: str) -> tuple[list[Conversation], list[Problem]]:
    """The checked conversations of one data file in format ``fmt`` (auto|alpaca|sharegpt|messages), and the
    records that were skipped with their line (or list index) and reason. Raises ConfigError when the file is
    missing or unreadable, or is a .json list that is not valid JSON."""
    if not path.is_file():
        raise ConfigError(f"data.files: {path} does not exist")
    convs, problems = [], []
    try:
        for i, (loc, rec, err) in enumerate(_records(path)):
            msgs, why = (None, err) if err else _messages_from(rec, fmt)
            why = why or check(msgs or [])
            if why:
                problems.append(Problem(path.name, loc, why))
            else:
                convs.append(Conversation(msgs or [], path.name, i))
    except OSError as e:
        raise ConfigError(f"data.files: {path}: cannot read ({e.strerror or e})") from None
    return convs, problems


GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""the marker of a template that says which text is the assistant's (``{% generation %}...{% endgeneration %}``)"""
SENTINEL = "\ue000{}\ue001"
"""stands for an assistant's content while a conversation's layout is rendered (Unicode private use characters)"""
RENDER_ERRORS = (TypeError, ValueError, LookupError, AttributeError, ArithmeticError)


class ChatFormat:
    """Conversations -> token ids exactly as ``tokenizer.apply_chat_template(messages, tokenize=True)`` makes them
    with the template saved beside the model (the tokenizer's own, else :data:`DEFAULT_JINJA`): rendered by
    transformers' sandboxed Jinja environment, then tokenized in one piece without added special tokens. Training,
    `train generate` and any server of a saved model (transformers, vLLM, llama.cpp) therefore see the same ids.

    Labels go to what the model must write after each generation prompt: the assistant's content, and the end of
    its turn up to and including the first special token the template renders after that content (``<|im_end|>``,
    ``<end_of_turn>``, ``<|end|>``, ``</s>``, the default format's EOS). Never the role header, which the prompt
    holds, nor what follows the end-of-turn token (ChatML's newline, the EOS Phi-3's template appends to a whole
    conversation). A template with ``{% generation %}`` marks its assistant text itself
    (``return_assistant_tokens_mask``), as TRL's templates do; without it, the content is found by rendering the
    conversation with placeholders for the assistant contents, and the generation prompt and the turn by rendering
    prefixes of the conversation. A system message that the template refuses (Gemma's) or drops (Mistral v0.3's,
    from a conversation that ends with an assistant turn) is folded into a user turn: see :meth:`conform`.

    Raises ConfigError naming the tokenizer's directory when its template cannot be rendered, including one the
    sandbox refuses (a template reaching for ``__class__``, ``os`` and the like runs nothing)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        template = getattr(tokenizer, "chat_template", None)
        self.own = bool(template) and template not in (DEFAULT_JINJA, OLD_DEFAULT_JINJA)
        self.template = None if self.own else DEFAULT_JINJA
        self.eos = tokenizer.eos_token_id
        self.special = set(tokenizer.all_special_ids) | {
            i for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items() if getattr(t, "special", 0)}
        """ids of the tokenizer's special tokens: the first of them after an assistant's content ends its turn"""
        self.merged_starts = 0
        """assistant turns encoded so far whose first token also holds the end of their generation prompt"""
        self.marked = bool(GENERATION_TAG.search(template if self.own and isinstance(template, str) else "")) \
            and bool(getattr(tokenizer, "is_fast", False))
        """the template marks the assistant's text and the tokenizer has the offsets transformers needs for it"""
        self.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
        self.fold_system = self._system_placement()
        """None, or where a system message goes when the template would lose it: "first" or "last" user turn"""

    def _where(self) -> str:
        return getattr(self.tok, "name_or_path", "") or "the tokenizer"

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The template's text for ``messages`` ("" for none)."""
        import jinja2

        if not messages:
            return ""
        try:
            return self.tok.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                add_generation_prompt=add_generation_prompt)
        except (jinja2.TemplateError, *RENDER_ERRORS) as e:
            raise self._render_error(e) from None

    def _render_error(self, e: Exception) -> ConfigError:
        import jinja2

        reason = " ".join(str(e).split())[:200] or type(e).__name__
        if isinstance(e, jinja2.exceptions.SecurityError):
            return ConfigError(f"{self._where()}: its chat template was refused by the sandbox ({reason}); a chat "
                               "template may only format the messages")
        return ConfigError(f"{self._where()}: its chat template cannot be rendered ({type(e).__name__}: {reason})")

    def _system_placement(self) -> str | None:
        """Where :meth:`conform` puts a system message the template loses: into the "first" user turn when the
        template refuses a system role (Gemma's raises; Gemma 3's template folds it there itself), into the
        "last" when the template drops it from a conversation that ends with an assistant turn but keeps it in a
        generation prompt (Mistral v0.3's adds it to the last user turn only when that turn ends the conversation),
        else None."""
        system, user = {"role": "system", "content": SENTINEL.format("system")}, {"role": "user", "content": "Hi"}
        try:
            prompt = self.render([system, user], add_generation_prompt=True)
        except ConfigError:
            log.info(f"{self._where()}: its chat template refuses system messages; a conversation's system "
                     "message is put before its first user message, separated by a blank line")
            return "first"
        if system["content"] in self.render([system, user, {"role": "assistant", "content": "Hello"}]) \
                or system["content"] not in prompt:
            return None
        log.info(f"{self._where()}: its chat template drops the system message of a conversation that ends with "
                 "an assistant turn; it is put before the last user message, separated by a blank line, where "
                 "the template puts it when it prompts for a reply")
        return "last"

    def conform(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """``messages`` as the template takes them: a system message the template would refuse or drop folded into
        a user turn (see :meth:`_system_placement`), else unchanged."""
        if not (self.fold_system and len(messages) > 1 and messages[0]["role"] == "system"):
            return messages
        rest = messages[1:]
        k = max(i for i, m in enumerate(rest) if m["role"] == "user") if self.fold_system == "last" else 0
        rest[k] = {**rest[k], "content": f"{messages[0]['content']}\n\n{rest[k]['content']}"}
        return rest

    def encode(self, messages: list[dict[str, str]], add_generation_prompt: bool = False
               ) -> tuple[list[int], list[int]]:
        """Token ids of ``self.conform(messages)`` and, per token, the index in ``messages`` of the assistant
        message it belongs to (-1: not an assistant's; see the class for which tokens an assistant owns). Raises
        ConfigError when the template cannot be rendered, or its assistant turns cannot be told apart."""
        msgs = self.conform(messages)
        shift = len(messages) - len(msgs)
        ids, owner = (self._marked if self.marked else self._by_rendering)(msgs, add_generation_prompt)
        return ids, [o + shift if o >= 0 else -1 for o in owner]

    def _marked(self, msgs: list[dict[str, str]], add_generation_prompt: bool) -> tuple[list[int], list[int]]:
        """Ids and owners from the template's ``{% generation %}`` marks."""
        import jinja2

        try:
            out = self.tok.apply_chat_template(msgs, chat_template=self.template, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True,
                                               add_generation_prompt=add_generation_prompt)
        except (jinja2.TemplateError, *RENDER_ERRORS) as e:
            raise self._render_error(e) from None
        ids, mask = list(out["input_ids"]), np.asarray(out["assistant_masks"], dtype=np.int64)
        assistants = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        starts = np.flatnonzero(np.diff(np.concatenate([[0], mask])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([mask, [0]])) == -1) + 1
        if len(starts) != len(assistants):
            raise ConfigError(f"{self._where()}: its chat template marks {len(starts)} generation spans in a "
                              f"conversation with {len(assistants)} assistant turns; each assistant turn needs one "
                              "{% generation %} block")
        owner = np.full(len(ids), -1, dtype=np.int64)
        for i, a, b in zip(assistants, starts, ends):
            owner[a:b] = i
        return ids, owner.tolist()

    def _by_rendering(self, msgs: list[dict[str, str]], add_generation_prompt: bool
                      ) -> tuple[list[int], list[int]]:
        text = self.render(msgs, add_generation_prompt)
        spans = self._spans(msgs, text, add_generation_prompt)
        try:
            enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        except NotImplementedError:
            enc = {"input_ids": self.tok(text, add_special_tokens=False)["input_ids"]}
        ids = list(enc["input_ids"])
        owner = [-1] * len(ids)
        if "offset_mapping" in enc:  # token k covers characters [starts[k], ends[k])
            starts, ends = (np.asarray([o[k] for o in enc["offset_mapping"]], dtype=np.int64).reshape(-1)
                            for k in (0, 1))
            self.merged_starts += sum(int(((starts < a) & (ends > a)).any()) for _, a, *_, prompted in spans
                                      if prompted)
            bounds = [(i, int(np.searchsorted(ends, a, side="right")), int(np.searchsorted(starts, b)),
                       int(np.searchsorted(ends, t, side="right")), rendered) for i, a, b, t, rendered, _ in spans]
        else:  # a tokenizer without offsets: token boundaries from prefixes of the text
            bounds = [(i, self._boundary(ids, text[:a]), self._boundary(ids, text[:b]), self._within(ids, text[:t]),
                       rendered) for i, a, b, t, rendered, _ in spans]
        for i, lo, hi, turn_end, rendered in bounds:
            eot = next((k + 1 for k in range(hi, turn_end) if ids[k] in self.special), None)
            end = eot or (max(hi, turn_end) if rendered else hi)
            owner[lo:end] = [i] * (end - lo)
        return ids, owner

    def _spans(self, msgs: list[dict[str, str]], text: str, add_generation_prompt: bool
               ) -> list[tuple[int, int, int, int, bool, bool]]:
        """(message index, start, content end, turn end, rendered, prompted) in characters of ``text`` for each
        assistant message: its labels start after its generation prompt (``prompted``; else, where the template
        moves other messages about, at its content), its content ends before the end-of-turn text, and its turn
        ends where the conversation rendered up to that message stops agreeing with ``text`` (``rendered``; else,
        when that is not past the content, the next assistant's content or the end of ``text`` bounds the search for
        the end-of-turn token, and a turn without one ends with its content)."""
        contents = self._contents(msgs, text, add_generation_prompt)
        spans, prefix_stable = [], True
        for k, (i, a, b) in enumerate(contents):
            prompt = self.render(msgs[:i], add_generation_prompt=True)
            prompted = text.startswith(prompt) and len(prompt) <= a
            prefix_stable &= prompted
            upto = self.render(msgs[: i + 1])
            turn = len(os.path.commonprefix([upto, text]))
            limit = contents[k + 1][1] if k + 1 < len(contents) else len(text)
            spans.append((i, len(prompt) if prompted else a, b, turn if turn > b else limit, turn > b,
                          prompted))
        if not prefix_stable and not self._prefix_stable(msgs[1:] if msgs[0]["role"] == "system" else []):
            raise ConfigError(f"{self._where()}: its chat template does not render conversations prefix by prefix "
                              "(the generation prompt of an assistant turn is not the text before it), so what the "
                              "model is trained on is not what it sees when it generates; remove its chat_template "
                              "to use mixlab's default format")
        return spans

    def _prefix_stable(self, msgs: list[dict[str, str]]) -> bool:
        """Whether each assistant turn of ``msgs`` (none: False) follows its generation prompt in the rendering of
        the whole. A template may put the system message elsewhere (Mistral's puts it in the last user turn): the
        turns are checked without it."""
        text = self.render(msgs)
        return bool(msgs) and all(text.startswith(self.render(msgs[:i], add_generation_prompt=True))
                                  for i, m in enumerate(msgs) if m["role"] == "assistant")

    def _contents(self, msgs: list[dict[str, str]], text: str, add_generation_prompt: bool
                  ) -> list[tuple[int, int, int]]:
        """(message index, start, end) in ``text`` of each assistant message's content as the template renders it
        (e.g. trimmed): the conversation is rendered with a placeholder for each assistant content, and ``text`` is
        matched against the template's own text around the placeholders."""
        assistants = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        marked = [{**m, "content": SENTINEL.format(k)} if m["role"] == "assistant" else m
                  for k, m in enumerate(msgs)]
        layout = self.render(marked, add_generation_prompt)
        literals = re.split("\ue000[0-9]+\ue001", layout)
        found = re.findall("\ue000([0-9]+)\ue001", layout)
        fail = ConfigError(f"{self._where()}: its chat template does not render each assistant message's content "
                           "once, unchanged by the other messages, so assistant turns cannot be told apart; remove "
                           "its chat_template to use mixlab's default format")
        if found != [str(i) for i in assistants] or not text.startswith(literals[0]) \
                or not text.endswith(literals[-1]):
            raise fail
        out, pos = [], len(literals[0])
        for k, i in enumerate(assistants):
            after = literals[k + 1]
            end = len(text) - len(after) if k + 1 == len(assistants) else text.find(after, pos) if after else -1
            if end < pos:
                raise fail
            out.append((i, pos, end))
            pos = end + len(after)
        return out

    def _within(self, ids: list[int], prefix: str) -> int:
        """How many of ``ids`` lie wholly within ``prefix`` of their text."""
        head = list(self.tok(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
        return next((k for k, (x, y) in enumerate(zip(ids, head)) if x != y), min(len(ids), len(head)))

    def _boundary(self, ids: list[int], prefix: str) -> int:
        head = list(self.tok(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
        if ids[: len(head)] != head:
            raise ConfigError(f"{self._where()}: a turn of the chat template does not end on a token boundary; "
                              "remove its chat_template to use mixlab's default format")
        return len(head)


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


TRUNCATED = "truncated to max_len"


def tokenize(conv: Conversation, chat: ChatFormat, max_len: int, train_on: str) -> tuple[Example | None, str | None]:
    """The example of one conversation, its ids cut to ``max_len``, and why it was dropped (example None) or
    :data:`TRUNCATED` when it was cut but still has assistant tokens to learn from."""
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
    return Example(ids_a, labels, conv.source), TRUNCATED if len(ids) > max_len else None


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
            if why == TRUNCATED:
                stats["truncated"] += 1
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
        report(out, logging.WARNING)
        records = sum(s.get("records", 0) for s in out.summary.values())
        raise ConfigError(f"data: no training examples left after the data checks ({records:,} records in "
                          f"{len(files)} files, {len(out.problems):,} malformed, {len(out.heldout):,} held out; "
                          "see the summary above)")
    return out


def report(prepared: Prepared, level: int = logging.INFO, listed: int = 20) -> None:
    """Log the per-file table (records, malformed, dropped because max_len cut every assistant token, held out,
    train examples and tokens, examples truncated to max_len) and the first ``listed`` skipped records with file,
    line and reason."""
    rows = [f"{'file':<28}{'records':>9}{'malformed':>10}{'dropped':>9}{'heldout':>9}{'train':>8}"
            f"{'train tokens':>14}{'label tokens':>14}{'truncated':>11}"]
    for name, s in prepared.summary.items():
        dropped = sum(v for k, v in s.items() if k.startswith("assistant tokens cut"))
        rows.append(f"{name:<28}{s.get('records', 0):>9,}{s.get('malformed', 0):>10,}{dropped:>9,}"
                    f"{s.get('heldout', 0):>9,}{s.get('train', 0):>8,}{s.get('train_tokens', 0):>14,}"
                    f"{s.get('label_tokens', 0):>14,}{s.get('truncated', 0):>11,}")
    log.log(level, "SFT data:\n" + "\n".join(rows))
    for p in prepared.problems[:listed]:
        log.log(level, f"  skipped {p.file} {p.location}: {p.reason}")
    if len(prepared.problems) > listed:
        log.log(level, f"  ... and {len(prepared.problems) - listed:,} more")


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
