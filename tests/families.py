"""Tiny models of the families users tune, each saved with a tokenizer of its own kind and the chat template that
family ships, for tests: Qwen2, Mistral, Gemma2, Phi-3, GPT-2 and GPT-NeoX.

Each model is built from its family's transformers config (hidden size 32, 2 layers, 2 heads, intermediate size 64,
256 positions; a few hundred thousand parameters) and saved with ``save_pretrained``. Its tokenizer is a BPE that the
`tokenizers` library trains in well under a second on Wikipedia text from ``shared/data``, through the family's own
transformers tokenizer class (so the family's normalizer, pre-tokenizer and decoder apply): byte-level BPE for
Qwen2, GPT-2 and GPT-NeoX, SentencePiece-style BPE with byte fallback for Mistral, Phi-3 (Llama's tokenizer) and
Gemma2. Special tokens, ``eos``/``pad`` and the ``generation_config`` end tokens are those of the released instruct
models (Qwen2.5-Instruct, Mistral-7B-Instruct-v0.3, gemma-2-it, Phi-3-mini-4k-instruct); GPT-2 and GPT-NeoX ship no
chat template. The model's vocabulary is ``len(tokenizer)``.

Use :func:`build_family` (cached per process: a second call copies the first build) and :data:`FAMILIES`."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEXT = SHARED_DATA / "corpus" / "wiki" / "wiki_demo.txt"
FAMILIES = ["qwen2", "mistral", "gemma2", "phi3", "gpt2", "gpt_neox"]
SIZE = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "positions": 256}
WINDOW = 16
"""the sliding window of the families that ship one at this scale (Mistral; Gemma2's local layers)"""

QWEN2_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")
"""Qwen2.5-Instruct's template (ChatML; its default system prompt when the conversation has none)."""

MISTRAL_TEMPLATE = (
    "{%- if messages[0][\"role\"] == \"system\" %}\n"
    "    {%- set system_message = messages[0][\"content\"] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{%- if not tools is defined %}\n"
    "    {%- set tools = none %}\n"
    "{%- endif %}\n"
    "{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list %}\n"
    "\n"
    "{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}\n"
    "{%- set ns = namespace() %}\n"
    "{%- set ns.index = 0 %}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or (message.tool_calls is "
    "defined and message.tool_calls is not none)) %}\n"
    "        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n"
    "            {{- raise_exception(\"After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...\") }}\n"
    "        {%- endif %}\n"
    "        {%- set ns.index = ns.index + 1 %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message[\"role\"] == \"user\" %}\n"
    "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
    "            {{- \"[AVAILABLE_TOOLS] [\" }}\n"
    "            {%- for tool in tools %}\n"
    "                {{- tool | tojson }}\n"
    "                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "            {{- \"][/AVAILABLE_TOOLS]\" }}\n"
    "        {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- else %}\n"
    "            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message.tool_calls is defined and message.tool_calls is not none %}\n"
    "        {{- \"[TOOL_CALLS] [\" }}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- set out = tool_call.function|tojson %}\n"
    "            {{- out[:-1] }}\n"
    "            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n"
    "                {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n"
    "            {%- endif %}\n"
    "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n"
    "            {%- if not loop.last %}\n"
    "                {{- \", \" }}\n"
    "            {%- else %}\n"
    "                {{- \"]\" + eos_token }}\n"
    "            {%- endif %}\n"
    "        {%- endfor %}\n"
    "    {%- elif message[\"role\"] == \"assistant\" %}\n"
    "        {{- \" \" + message[\"content\"]|trim + eos_token}}\n"
    "    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n"
    "        {%- if message.content is defined and message.content.content is defined %}\n"
    "            {%- set content = message.content.content %}\n"
    "        {%- else %}\n"
    "            {%- set content = message.content %}\n"
    "        {%- endif %}\n"
    "        {{- '[TOOL_RESULTS] {\"content\": ' + content|string + \", \" }}\n"
    "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n"
    "            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!\") }}\n"
    "        {%- endif %}\n"
    "        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an initial "
    "optional system message!\") }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n")
"""Mistral-7B-Instruct-v0.3's template: ``[INST] ... [/INST]``, the reply after a space and then EOS; a system
message goes into the last user turn."""

GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
"""gemma-2-it's template: roles user and model, each turn trimmed; a system message raises."""

PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
"""Phi-3-mini-4k-instruct's template: EOS after the conversation when no generation prompt is asked for."""


def _texts() -> list[str]:
    lines = [line.strip() for line in TEXT.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [sentence + "." for line in lines for sentence in line.split(". ") if sentence]


def _byte_tokens() -> list[str]:
    return [f"<0x{b:02X}>" for b in range(256)]


def _train_bpe(backend: Any, vocab_size: int, specials: list[str], byte_level: bool) -> tuple[dict, list]:
    """(vocab, merges) of a BPE trained with ``specials`` first: through ``backend``'s normalizer and pre-tokenizer
    for a byte-level BPE, else on words that start with SentencePiece's ``▁``, as SentencePiece learns pieces
    (``backend`` for Llama and Gemma reads a whole text as one word)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None if byte_level else specials[0], byte_fallback=not byte_level))
    if byte_level:
        tok.normalizer, tok.pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    alphabet = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if byte_level else {"limit_alphabet": 60}
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False, **alphabet)
    tok.train_from_iterator(_texts(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _tokenizer(family: str) -> tuple[Any, list[int]]:
    """The trained tokenizer of ``family`` with its chat template, and its generation_config end-token ids."""
    import transformers as tf

    if family == "qwen2":
        vocab, merges = _train_bpe(tf.Qwen2Tokenizer()._tokenizer, 400, ["<|endoftext|>"], True)
        tok = tf.Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                                eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                extra_special_tokens=["<|im_start|>", "<|im_end|>"])
        tok.chat_template = QWEN2_TEMPLATE
        ends = ["<|im_end|>", "<|endoftext|>"]
    elif family == "mistral":
        specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", *_byte_tokens()]
        vocab, merges = _train_bpe(tf.LlamaTokenizer()._tokenizer, 460, specials, False)
        tok = tf.LlamaTokenizer(vocab=vocab, merges=merges, extra_special_tokens=["[INST]", "[/INST]"])
        tok.chat_template = MISTRAL_TEMPLATE
        ends = ["</s>"]
    elif family == "gemma2":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                    *_byte_tokens()]
        vocab, merges = _train_bpe(tf.GemmaTokenizer()._tokenizer, 460, specials, False)
        tok = tf.GemmaTokenizer(vocab=vocab, merges=merges,
                                extra_special_tokens=["<start_of_turn>", "<end_of_turn>"])
        tok.chat_template = GEMMA2_TEMPLATE
        ends = ["<eos>", "<end_of_turn>"]
    elif family == "phi3":
        specials = ["<unk>", "<s>", "</s>", *_byte_tokens()]
        vocab, merges = _train_bpe(tf.LlamaTokenizer()._tokenizer, 450, specials, False)
        chat = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
        tok = tf.LlamaTokenizer(vocab=vocab, merges=merges, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                extra_special_tokens=chat)
        tok.chat_template = PHI3_TEMPLATE
        ends = ["<|endoftext|>", "<|assistant|>", "<|end|>"]
    elif family == "gpt2":
        vocab, merges = _train_bpe(tf.GPT2Tokenizer()._tokenizer, 400, ["<|endoftext|>"], True)
        tok = tf.GPT2Tokenizer(vocab=vocab, merges=merges)
        ends = ["<|endoftext|>"]
    elif family == "gpt_neox":
        vocab, merges = _train_bpe(tf.GPTNeoXTokenizer()._tokenizer, 400, ["<|endoftext|>", "<|padding|>"], True)
        tok = tf.GPTNeoXTokenizer(vocab=vocab, merges=merges)
        ends = ["<|endoftext|>"]
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    return tok, [tok.convert_tokens_to_ids(t) for t in ends]


def _config(family: str, tok: Any, sliding_window: bool) -> Any:
    import transformers as tf

    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
           "vocab_size": len(tok)}
    h, n, heads, ff, pos = (SIZE[k] for k in ("hidden", "layers", "heads", "intermediate", "positions"))
    llama_like = {"hidden_size": h, "num_hidden_layers": n, "num_attention_heads": heads,
                  "num_key_value_heads": heads, "intermediate_size": ff, "max_position_embeddings": pos, **ids}
    if family == "qwen2":
        window = {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 0} if sliding_window \
            else {"use_sliding_window": False}
        return tf.Qwen2Config(**llama_like, tie_word_embeddings=True, **window)
    if family == "mistral":
        return tf.MistralConfig(**llama_like, sliding_window=WINDOW)
    if family == "gemma2":
        return tf.Gemma2Config(**llama_like, head_dim=h // heads, sliding_window=WINDOW)
    if family == "phi3":
        return tf.Phi3Config(**llama_like)
    if family == "gpt2":
        return tf.GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_inner=ff, n_positions=pos, **ids)
    return tf.GPTNeoXConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, intermediate_size=ff,
                            max_position_embeddings=pos, **ids)


@functools.lru_cache(maxsize=None)
def _built(family: str, sliding_window: bool) -> Path:
    import torch
    import transformers as tf

    where = Path(tempfile.mkdtemp(prefix=f"mixlab-family-{family}-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    tok, ends = _tokenizer(family)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(_config(family, tok, sliding_window))
    model.generation_config = tf.GenerationConfig(bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id,
                                                  eos_token_id=ends if len(ends) > 1 else ends[0])
    model.save_pretrained(str(where))
    tok.save_pretrained(str(where))
    return where


def build_family(name: str, directory: Path, sliding_window: bool = False) -> Path:
    """Write the tiny model of family ``name`` (one of :data:`FAMILIES`), its tokenizer and chat template into
    ``directory`` (created; its existing files of the same names are replaced) and return it. ``sliding_window``
    turns on Qwen2's window (:data:`WINDOW` tokens on every layer); Mistral and Gemma2 always have theirs, as they
    ship. Raises ValueError for an unknown family."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; one of {FAMILIES}")
    directory = Path(directory)
    shutil.copytree(_built(name, sliding_window and name == "qwen2"), directory, dirs_exist_ok=True)
    return directory


def tokenizer_of(name: str) -> Any:
    """The tokenizer of family ``name`` as `train` loads it (from a built directory)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_built(name, False)))


BUILDERS: dict[str, Callable[[Path], Path]] = {f: functools.partial(build_family, f) for f in FAMILIES}
