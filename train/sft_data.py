"""SFT data: Alpaca, ShareGPT, OpenAI-messages and XTuner/MOSS records -> checked conversations -> token ids with
labels on assistant tokens only -> packed (or padded) rows.

Every record becomes ``[{"role": system|user|assistant|tool, "content": str}, ...]`` (assistant turns may carry
``tool_calls``) and the tools it may call (:func:`parse`). Records that break the rules (missing fields, empty
assistant turns, unknown or out-of-order roles, tool calls a chat template cannot render) are reported with file and
line and skipped (or fail the run, `on_error: fail`); record fields mixlab does not read are counted per file and
reported (:func:`report`).

The chat template is the tokenizer's own when it has one, else :data:`DEFAULT_JINJA`, and it is saved with the
model. Token ids are those of ``apply_chat_template`` on the whole conversation (with its tools). An assistant's
content, or its tool calls as the template writes them, and the end-of-turn token after it (``<|im_end|>``,
``<end_of_turn>``, ``<|end|>``, EOS) carry labels, found by the template's ``{% generation %}`` marks or by
rendering (:class:`ChatFormat`); everything else, role headers and tool results included, is ``-100``, as in
LLaMA-Factory and torchtune. Training and `train generate` use the same code.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Iterator, TypeVar

import numpy as np
import xxhash

from mixlab.errors import ConfigError
from mixlab.logs import log
from train.loop import IGNORE

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "function_call": "assistant",
                  "observation": "tool", "tool": "tool", "function": "tool"}
"""ShareGPT's ``from`` values: LLaMA-Factory's ``function_call`` is an assistant's tool call (its ``value`` the JSON
of one call ``{"name", "arguments"}`` or a list of them), ``observation`` a tool's result"""
FORMATS = {"messages": "messages", "sharegpt": "conversations", "xtuner": "conversation", "alpaca": "instruction"}
"""each record format and the field that tells it (``format: auto`` tries them in this order)"""
RECORD_FIELDS = {"messages": {"messages", "tools"}, "sharegpt": {"conversations", "system", "tools"},
                 "xtuner": {"conversation"}, "alpaca": {"instruction", "input", "output", "system", "history"}}
"""the fields of a record that mixlab reads, per format; any other is counted and reported, never used"""
TURN_FIELDS = {"messages": {"role", "content", "tool_calls", "tool_call_id", "name"}, "sharegpt": {"from", "value"},
               "xtuner": {"system", "input", "output"}}
"""the fields of a turn that mixlab reads, per format (reported as e.g. ``messages[].weight`` otherwise)"""
TOOL_FIELDS = ("tool_call_id", "name")
DEFAULT_JINJA = ("{% if bos_token %}{{ bos_token }}{% endif %}"
                 "{% if tools %}{{ '<|tools|>\\n' }}{% for t in tools %}{{ t | tojson }}{{ '\\n' }}{% endfor %}"
                 "{% endif %}"
                 "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' }}{% if m['content'] %}{{ m['content'] }}"
                 "{% endif %}{% if m['tool_calls'] %}{% for c in m['tool_calls'] %}"
                 "{% set f = c['function'] if c['function'] is defined else c %}"
                 "{% if m['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
                 "{{ '<tool_call>' + ({'name': f['name'], 'arguments': f['arguments']} | tojson) + '</tool_call>' }}"
                 "{% endfor %}{% endif %}"
                 "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
"""The default chat format, saved with trained models: BOS, then each turn as ``<|role|>\\n{content}`` followed by a
newline, an assistant's content by EOS before that newline; a prompt for generation ends with ``<|assistant|>\\n``.
Tools and tool calls (`transformers`' form, ``apply_chat_template(messages, tools=...)``): the tools, when given,
come after BOS as ``<|tools|>\\n`` and one JSON object per line; an assistant's tool call is
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` after its content (one per line, then EOS as for any
assistant turn); a tool's result is a ``<|tool|>\\n{content}`` turn. Markers are plain text, so any tokenizer (e.g.
one from `train tokenizer`) can use it. Newlines are Jinja expressions because transformers renders with
``trim_blocks``, which drops a newline written after a block tag. A conversation without tools renders exactly as
with :data:`DEFAULT_JINJA_WITHOUT_TOOLS`."""
DEFAULT_JINJA_WITHOUT_TOOLS = ("{% if bos_token %}{{ bos_token }}{% endif %}"
                               "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
                               "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
"""The default format as mixlab saved it before tool calls: the same text for conversations without tools."""
OLD_DEFAULT_JINJA = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
                     "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
"""The default format as earlier mixlab versions saved it, without the BOS and the newline after each turn that
training used: models saved with it were trained on :data:`DEFAULT_JINJA`'s ids, so it is read as that."""
SAVED_DEFAULTS = (DEFAULT_JINJA, DEFAULT_JINJA_WITHOUT_TOOLS, OLD_DEFAULT_JINJA)
"""templates saved by mixlab versions that are read as :data:`DEFAULT_JINJA`"""

Message = dict[str, Any]


@dataclass
class Problem:
    file: str
    location: str
    reason: str


@dataclass
class Conversation:
    messages: list[Message]
    source: str
    index: int
    tools: list[dict[str, Any]] | None = None
    """the tools the conversation may call (``apply_chat_template``'s ``tools``), each ``{"type": "function",
    "function": {"name", "description", "parameters"}}``"""
    location: str = ""
    """where the record is in its file (``line 3``, ``record 2``)"""

    @property
    def uses_tools(self) -> bool:
        """whether the conversation has tools, tool calls or tool results"""
        return bool(self.tools) or any(m["role"] == "tool" or m.get("tool_calls") for m in self.messages)


class _Bad(ValueError):
    """a record that breaks a format's rules; its message is the reason"""


def detect(record: Any, fmt: str) -> str | None:
    """The format of one record: ``fmt``, or for ``auto`` the first of :data:`FORMATS` whose field it has (None
    when it has none)."""
    if fmt != "auto":
        return fmt
    return next((f for f, key in FORMATS.items() if isinstance(record, dict) and key in record), None)


def unused_fields(record: dict[str, Any], fmt: str) -> list[str]:
    """The fields of a record in format ``fmt`` that mixlab does not read: the record's own, and its turns' as
    ``messages[].weight``."""
    out = [k for k in record if k not in RECORD_FIELDS[fmt]]
    key = FORMATS[fmt]
    turns = record.get(key)
    if fmt in TURN_FIELDS and isinstance(turns, list):
        out += sorted({f"{key}[].{k}" for t in turns if isinstance(t, dict) for k in t if k not in TURN_FIELDS[fmt]})
    return out


def _json_value(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise _Bad(f"{what}: not valid JSON") from None


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """A record's ``tools`` (a list, or LLaMA-Factory's JSON string of one; "" or [] is none) as transformers' chat
    templates take them: each ``{"type": "function", "function": {...}}``, a bare function definition wrapped."""
    if value in (None, "", []):
        return None
    tools = _json_value(value, "'tools'")
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _Bad("'tools': needs a list of tool definitions (objects)")
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function", t) if t.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _Bad(f"'tools'[{i}]: needs a function with a 'name'")
        out.append({"type": "function", "function": fn})
    return out or None


def _tool_calls(value: Any, what: str) -> list[dict[str, Any]]:
    """Tool calls (OpenAI's ``[{"id", "type": "function", "function": {"name", "arguments"}}]``, or one call or a
    list of calls ``{"name", "arguments"}``) as transformers' chat templates take them: ``{"type": "function",
    "function": {"name", "arguments"}}`` with the arguments an object (OpenAI's JSON string of them parsed)."""
    calls = _json_value(value, what)
    calls = [calls] if isinstance(calls, dict) else calls
    if not isinstance(calls, list) or not calls:
        raise _Bad(f"{what}: needs a tool call or a non-empty list of them")
    out = []
    for k, c in enumerate(calls):
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _Bad(f"{what}[{k}]: needs a function 'name'")
        args = _json_value(fn.get("arguments", {}), f"{what}[{k}] arguments")
        if not isinstance(args, dict):
            raise _Bad(f"{what}[{k}]: 'arguments' must be an object (or its JSON)")
        call: dict[str, Any] = {"type": "function", "function": {"name": fn["name"], "arguments": args}}
        if isinstance(c.get("id"), str):
            call["id"] = c["id"]
        out.append(call)
    return out


def _text(value: Any, what: str) -> str:
    """A turn's text: a string, or OpenAI's list of text parts ``[{"type": "text", "text": ...}]`` joined."""
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    if not isinstance(value, str):
        raise _Bad(f"{what}: needs a string (or a list of text parts)")
    return value


def _openai_messages(turns: list[Any]) -> list[Message]:
    msgs: list[Message] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or t.get("role") not in ROLES:
            raise _Bad(f"messages[{i}]: unknown role {t.get('role') if isinstance(t, dict) else t!r}")
        m: Message = {"role": t["role"]}
        if t["role"] == "assistant" and t.get("tool_calls"):
            m["content"] = "" if t.get("content") is None else _text(t["content"], f"messages[{i}] content")
            m["tool_calls"] = _tool_calls(t["tool_calls"], f"messages[{i}] tool_calls")
        else:
            m["content"] = _text(t.get("content"), f"messages[{i}] content")
        if t["role"] == "tool":
            m.update({k: t[k] for k in TOOL_FIELDS if isinstance(t.get(k), str)})
        msgs.append(m)
    return msgs


def _sharegpt_messages(record: dict[str, Any], turns: list[Any]) -> list[Message]:
    msgs: list[Message] = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        msgs.append({"role": "system", "content": record["system"]})
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            raise _Bad(f"conversations[{i}]: needs a string 'value'")
        source = str(t.get("from")).lower()
        role = SHAREGPT_ROLES.get(source)
        if role is None:
            raise _Bad(f"conversations[{i}]: unknown role {t.get('from')!r}")
        if source == "function_call":
            msgs.append({"role": "assistant", "content": "",
                         "tool_calls": _tool_calls(t["value"], f"conversations[{i}] function_call")})
        else:
            msgs.append({"role": role, "content": t["value"]})
    return msgs


def _xtuner_messages(turns: list[Any]) -> list[Message]:
    msgs: list[Message] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
            raise _Bad(f"conversation[{i}]: needs string 'input' and 'output'")
        if isinstance(t.get("system"), str) and t["system"].strip():
            msgs.append({"role": "system", "content": t["system"]})
        msgs += [{"role": "user", "content": t["input"]}, {"role": "assistant", "content": t["output"]}]
    return msgs


def _alpaca_messages(record: dict[str, Any]) -> list[Message]:
    inst, inp, outp = record.get("instruction"), record.get("input", ""), record.get("output")
    if not isinstance(inst, str) or not inst.strip():
        raise _Bad("missing or empty 'instruction'")
    if not isinstance(outp, str):
        raise _Bad("missing 'output'")
    msgs: list[Message] = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        msgs.append({"role": "system", "content": record["system"]})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise _Bad("'history': needs a list of [instruction, output] pairs")
    for k, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise _Bad(f"history[{k}]: needs an [instruction, output] pair of strings")
        msgs += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = inst if not (isinstance(inp, str) and inp.strip()) else f"{inst}\n\n{inp}"
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": outp}]


def parse(record: Any, fmt: str) -> tuple[Conversation | None, str | None]:
    """One record in format ``fmt`` (auto|alpaca|sharegpt|messages|xtuner) as a conversation (source and index
    unset), or the reason it cannot be read.

    - alpaca (Stanford Alpaca, LLaMA-Factory): ``instruction``, ``input``, ``output``, ``system``, and ``history``,
      the earlier ``[instruction, output]`` pairs.
    - sharegpt: ``conversations`` of ``{from, value}`` turns (human/gpt/system, LLaMA-Factory's ``function_call``
      and ``observation``), a top-level ``system`` and ``tools`` (a list or its JSON string).
    - messages (OpenAI): ``messages`` of ``{role, content}`` turns, assistant ``tool_calls`` (``content`` may be
      null), ``tool`` turns with ``tool_call_id``/``name``, and a top-level ``tools`` list.
    - xtuner (XTuner, MOSS): ``conversation`` of ``{system, input, output}`` turns."""
    if not isinstance(record, dict):
        return None, "not a JSON object"
    kind = detect(record, fmt)
    if kind is None:
        return None, "unknown format (no messages, conversations, conversation or instruction field)"
    try:
        tools = None
        if kind == "alpaca":
            msgs = _alpaca_messages(record)
        else:
            key = FORMATS[kind]
            turns = record.get(key)
            if not isinstance(turns, list) or not turns:
                return None, f"missing or empty '{key}'"
            if kind == "messages":
                msgs, tools = _openai_messages(turns), _tools(record.get("tools"))
            elif kind == "sharegpt":
                msgs, tools = _sharegpt_messages(record, turns), _tools(record.get("tools"))
            else:
                msgs = _xtuner_messages(turns)
    except _Bad as e:
        return None, str(e)
    return Conversation(msgs, "", 0, tools), None


def check(messages: list[Message]) -> str | None:
    """The structural rules a conversation must follow; the reason it breaks one, or None. A tool turn follows an
    assistant's tool call or another tool turn; an assistant turn with tool calls may have no text."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        return "a system message after the first turn"
    if not body or body[0]["role"] != "user":
        return "the first non-system turn must be the user's"
    for a, b in zip(body, body[1:]):
        if b["role"] == "tool":
            if a["role"] != "tool" and not a.get("tool_calls"):
                return "a tool turn that follows no assistant tool call"
        elif a["role"] == b["role"]:
            return f"two {a['role']} turns in a row"
    if not any(m["role"] == "assistant" for m in body):
        return "no assistant turn"
    if any(m["role"] == "assistant" and not m["content"].strip() and not m.get("tool_calls") for m in body):
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


def load(path: Path, fmt: str, unused: Counter[str] | None = None) -> tuple[list[Conversation], list[Problem]]:
    """The checked conversations of one data file in format ``fmt`` (auto|alpaca|sharegpt|messages|xtuner, see
    :func:`parse`), and the records that were skipped with their line (or list index) and reason. ``unused``, when
    given, counts the records that have each field mixlab does not read (:func:`unused_fields`). Raises ConfigError
    when the file is missing or unreadable, or is a .json list that is not valid JSON."""
    if not path.is_file():
        raise ConfigError(f"data.files: {path} does not exist")
    convs, problems = [], []
    try:
        for i, (loc, rec, err) in enumerate(_records(path)):
            conv, why = (None, err) if err else parse(rec, fmt)
            why = why or check(conv.messages if conv else [])
            kind = None if err else detect(rec, fmt)
            if unused is not None and kind is not None and isinstance(rec, dict):
                unused.update(unused_fields(rec, kind))
            if why or conv is None:
                problems.append(Problem(path.name, loc, why or "unreadable"))
            else:
                conv.source, conv.index, conv.location = path.name, i, loc
                convs.append(conv)
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

    Tools and tool calls go to the template as transformers passes them (``apply_chat_template(messages,
    tools=...)``; assistant messages keep ``tool_calls``, tool messages their ``tool_call_id``/``name``). An
    assistant turn with tool calls is labelled as all it adds after its generation prompt (its text and the
    template's rendering of the calls), up to and including its end-of-turn token: the last special token before
    the conversation rendered up to that turn stops agreeing with the whole. Tool turns are never labelled.

    Raises ConfigError naming the tokenizer's directory when its template cannot be rendered, including one the
    sandbox refuses (a template reaching for ``__class__``, ``os`` and the like runs nothing)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        template = getattr(tokenizer, "chat_template", None)
        self.own = bool(template) and template not in SAVED_DEFAULTS
        self.template = None if self.own else DEFAULT_JINJA
        self.eos = tokenizer.eos_token_id
        self.special = set(tokenizer.all_special_ids) | {
            i for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items() if getattr(t, "special", 0)}
        """ids of the tokenizer's special tokens: the first of them after an assistant's content ends its turn"""
        self.special_texts = sorted({str(t) for t in tokenizer.convert_ids_to_tokens(sorted(self.special)) if t},
                                    key=len, reverse=True)
        """the text of each special token, longest first"""
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

    def render(self, messages: list[Message], add_generation_prompt: bool = False,
               tools: list[dict[str, Any]] | None = None) -> str:
        """The template's text for ``messages`` ("" for none) with ``tools``."""
        import jinja2

        if not messages:
            return ""
        try:
            return self.tok.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                add_generation_prompt=add_generation_prompt, tools=tools)
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

    def encode(self, messages: list[Message], add_generation_prompt: bool = False,
               tools: list[dict[str, Any]] | None = None) -> tuple[list[int], list[int]]:
        """Token ids of ``self.conform(messages)`` with ``tools`` and, per token, the index in ``messages`` of the
        assistant message it belongs to (-1: not an assistant's; see the class for which tokens an assistant owns).
        Raises ConfigError when the template cannot be rendered, or its assistant turns cannot be told apart."""
        msgs = self.conform(messages)
        shift = len(messages) - len(msgs)
        if tools or any(m["role"] == "tool" or m.get("tool_calls") for m in msgs):
            self._check_tools_rendered(msgs, tools, self.render(msgs, add_generation_prompt, tools))
        ids, owner = (self._marked if self.marked else self._by_rendering)(msgs, add_generation_prompt, tools)
        return ids, [o + shift if o >= 0 else -1 for o in owner]

    def _check_tools_rendered(self, msgs: list[Message], tools: list[dict[str, Any]] | None, text: str) -> None:
        """ConfigError when ``text``, the template's rendering of ``msgs`` with ``tools``, leaves out a tool's name,
        a tool call's function name or a tool result: a template without tool support (Phi-3's) drops them, and
        the model would learn replies to what it never saw."""
        lost = [f"the tool {t['function']['name']!r}" for t in tools or [] if t["function"]["name"] not in text]
        lost += [f"the call of {c['function']['name']!r}" for m in msgs for c in m.get("tool_calls") or []
                 if c["function"]["name"] not in text]
        lost += [f"the tool result {m['content'][:40]!r}" for m in msgs
                 if m["role"] == "tool" and m["content"].strip() not in text]
        if lost:
            raise ConfigError(f"{self._where()}: its chat template does not render tools, tool calls or tool results "
                              f"(it leaves out {', '.join(lost[:3])}); use a template with tool support, or remove "
                              "its chat_template to use mixlab's default format")

    def _marked(self, msgs: list[Message], add_generation_prompt: bool, tools: list[dict[str, Any]] | None
                ) -> tuple[list[int], list[int]]:
        """Ids and owners from the template's ``{% generation %}`` marks."""
        import jinja2

        try:
            out = self.tok.apply_chat_template(msgs, chat_template=self.template, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True,
                                               add_generation_prompt=add_generation_prompt, tools=tools)
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

    def _by_rendering(self, msgs: list[Message], add_generation_prompt: bool, tools: list[dict[str, Any]] | None
                      ) -> tuple[list[int], list[int]]:
        text = self.render(msgs, add_generation_prompt, tools)
        spans = self._spans(msgs, text, add_generation_prompt, tools)
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

    def _spans(self, msgs: list[Message], text: str, add_generation_prompt: bool,
               tools: list[dict[str, Any]] | None) -> list[tuple[int, int, int, int, bool, bool]]:
        """(message index, start, content end, turn end, rendered, prompted) in characters of ``text`` for each
        assistant message: its labels start after its generation prompt (``prompted``; else, where the template
        moves other messages about, at its content), its content ends before the end-of-turn text, and its turn
        ends where the conversation rendered up to that message stops agreeing with ``text`` (``rendered``; else,
        when that is not past the content, the next assistant's content or the end of ``text`` bounds the search for
        the end-of-turn token, and a turn without one ends with its content). An assistant turn with tool calls
        has no content of its own to find: its "content" is all it adds after its generation prompt up to the last
        special token of its turn (see the class)."""
        contents = {i: (a, b) for i, a, b in self._contents(msgs, text, add_generation_prompt, tools)}
        rows, prefix_stable = [], True
        for i in (i for i, m in enumerate(msgs) if m["role"] == "assistant"):
            prompt = self.render(msgs[:i], add_generation_prompt=True, tools=tools)
            upto = self.render(msgs[: i + 1], tools=tools)
            turn = len(os.path.commonprefix([upto, text]))
            if i in contents:
                a, b = contents[i]
                prompted = text.startswith(prompt) and len(prompt) <= a
            else:
                a = b = len(prompt)
                prompted = text.startswith(prompt) and turn > a
                if not prompted:
                    raise ConfigError(f"{self._where()}: its chat template does not render an assistant's tool "
                                      "calls after its generation prompt, so what the model is trained on is not "
                                      "what it sees when it generates; remove its chat_template to use mixlab's "
                                      "default format")
                b = self._last_special(text, a, turn)
            prefix_stable &= prompted
            rows.append((i, len(prompt) if prompted else a, a, b, turn, prompted))
        spans = []
        for k, (i, start, a, b, turn, prompted) in enumerate(rows):
            limit = rows[k + 1][2] if k + 1 < len(rows) else len(text)
            spans.append((i, start, b, turn if turn > b else limit, turn > b, prompted))
        if not prefix_stable and not self._prefix_stable(msgs[1:] if msgs[0]["role"] == "system" else [], tools):
            raise ConfigError(f"{self._where()}: its chat template does not render conversations prefix by prefix "
                              "(the generation prompt of an assistant turn is not the text before it), so what the "
                              "model is trained on is not what it sees when it generates; remove its chat_template "
                              "to use mixlab's default format")
        return spans

    def _last_special(self, text: str, start: int, end: int) -> int:
        """Where in ``text[start:end]`` its last special token's text begins (``end`` when it has none)."""
        found = [text.rfind(s, start, end) for s in self.special_texts]
        return max((f for f in found if f >= 0), default=end)

    def _prefix_stable(self, msgs: list[Message], tools: list[dict[str, Any]] | None = None) -> bool:
        """Whether each assistant turn of ``msgs`` (none: False) follows its generation prompt in the rendering of
        the whole. A template may put the system message elsewhere (Mistral's puts it in the last user turn): the
        turns are checked without it."""
        text = self.render(msgs, tools=tools)
        return bool(msgs) and all(text.startswith(self.render(msgs[:i], add_generation_prompt=True, tools=tools))
                                  for i, m in enumerate(msgs) if m["role"] == "assistant")

    def _contents(self, msgs: list[Message], text: str, add_generation_prompt: bool,
                  tools: list[dict[str, Any]] | None = None) -> list[tuple[int, int, int]]:
        """(message index, start, end) in ``text`` of each assistant message's content as the template renders it
        (e.g. trimmed), for assistant messages without tool calls: the conversation is rendered with a placeholder
        for each such content, and ``text`` is matched against the template's own text around the placeholders."""
        assistants = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and not m.get("tool_calls")]
        marked = [{**m, "content": SENTINEL.format(k)} if k in assistants else m for k, m in enumerate(msgs)]
        layout = self.render(marked, add_generation_prompt, tools)
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


Item = TypeVar("Item")


@dataclass
class Prepared(Generic[Item]):
    """What a tuning command's data preparation gives: training and held-out items (SFT examples, DPO pairs), the
    per-file summary, the skipped records and the unused fields."""

    train: list[Item] = field(default_factory=list)
    heldout: list[Item] = field(default_factory=list)
    summary: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unused: dict[str, dict[str, int]] = field(default_factory=dict)
    """per file, each record field mixlab does not read and how many records have it"""


TRUNCATED = "truncated to max_len"


def tokenize(conv: Conversation, chat: ChatFormat, max_len: int, train_on: str) -> tuple[Example | None, str | None]:
    """The example of one conversation, its ids cut to ``max_len``, and why it was dropped (example None) or
    :data:`TRUNCATED` when it was cut but still has assistant tokens to learn from."""
    ids, owner = chat.encode(conv.messages, tools=conv.tools)
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
            heldout_fraction: float, seed: int) -> Prepared[Example]:
    """Load, check, split (seeded, by record) and tokenize every file; weights repeat or subsample a file's
    training examples so each file's share of an epoch follows its weight."""
    out: Prepared[Example] = Prepared()
    per_file: list[tuple[str, float, list[Example]]] = []
    for path, fmt, weight in files:
        unused: Counter[str] = Counter()
        convs, problems = load(path, fmt, unused)
        out.problems += problems
        if unused:
            out.unused[path.name] = dict(sorted(unused.items()))
        stats: Counter[str] = Counter(records=len(convs) + len(problems), malformed=len(problems))
        train: list[Example] = []
        for conv in convs:
            try:
                example, why = tokenize(conv, chat, max_len, train_on)
            except ConfigError as e:
                if not conv.uses_tools:
                    raise
                out.problems.append(Problem(path.name, conv.location, str(e)))
                stats["malformed"] += 1
                continue
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
    out.train = draw_epoch(per_file, out.summary, np.random.default_rng([seed, 0x5F7]))
    if not out.train:
        report(out, logging.WARNING)
        records = sum(s.get("records", 0) for s in out.summary.values())
        raise ConfigError(f"data: no training examples left after the data checks ({records:,} records in "
                          f"{len(files)} files, {len(out.problems):,} malformed, {len(out.heldout):,} held out; "
                          "see the summary above)")
    return out


def draw_epoch(per_file: list[tuple[str, float, list[Any]]], summary: dict[str, dict[str, Any]],
               rng: np.random.Generator) -> list[Any]:
    """One epoch's training items: each file's share follows its weight (``per_file``: name, weight, items), a
    file drawn more often than it has items repeated in fresh permutations; records ``drawn_per_epoch`` in
    ``summary[name]``."""
    total_w = sum(w for _, w, _ in per_file) or 1.0
    epoch = sum(len(t) for _, _, t in per_file)
    drawn: list[Any] = []
    for name, weight, items in per_file:
        want = int(round(epoch * weight / total_w))
        if not items or want == 0:
            continue
        picks = np.concatenate([rng.permutation(len(items)) for _ in range(-(-want // len(items)))])[:want]
        drawn += [items[i] for i in picks]
        summary[name]["drawn_per_epoch"] = want
    return drawn


def report_problems(problems: list[Problem], unused: dict[str, dict[str, int]], level: int, listed: int) -> None:
    """Log the first ``listed`` skipped records with file, line and reason, then, at WARNING at least, each record
    field mixlab does not read with the number of records of each file that have it."""
    for p in problems[:listed]:
        log.log(level, f"  skipped {p.file} {p.location}: {p.reason}")
    if len(problems) > listed:
        log.log(level, f"  ... and {len(problems) - listed:,} more")
    for name, fields in unused.items():
        for key, n in fields.items():
            log.log(max(level, logging.WARNING), f"  unused field {key!r} in {n:,} records of {name}: mixlab does "
                                                 "not read it")


def report(prepared: Prepared[Example], level: int = logging.INFO, listed: int = 20) -> None:
    """Log the per-file table (records, malformed, dropped because max_len cut every assistant token, held out,
    train examples and tokens, examples truncated to max_len) and the first ``listed`` skipped records with file,
    line and reason; then, at WARNING at least, each record field mixlab does not read with the number of records
    of each file that have it, and each file that gave no training example while others did."""
    rows = [f"{'file':<28}{'records':>9}{'malformed':>10}{'dropped':>9}{'heldout':>9}{'train':>8}"
            f"{'train tokens':>14}{'label tokens':>14}{'truncated':>11}"]
    for name, s in prepared.summary.items():
        dropped = sum(v for k, v in s.items() if k.startswith("assistant tokens cut"))
        rows.append(f"{name:<28}{s.get('records', 0):>9,}{s.get('malformed', 0):>10,}{dropped:>9,}"
                    f"{s.get('heldout', 0):>9,}{s.get('train', 0):>8,}{s.get('train_tokens', 0):>14,}"
                    f"{s.get('label_tokens', 0):>14,}{s.get('truncated', 0):>11,}")
    log.log(level, "SFT data:\n" + "\n".join(rows))
    report_problems(prepared.problems, prepared.unused, level, listed)
    warn = max(level, logging.WARNING)
    if any(s.get("train", 0) for s in prepared.summary.values()):
        for name, s in prepared.summary.items():
            if not s.get("train", 0):
                log.log(warn, f"  {name}: none of its {s.get('records', 0):,} records gave a training example; "
                              "training goes on without it")


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
