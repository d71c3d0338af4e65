"""`train sft`: supervised fine-tuning on chat data, on the shared training loop (`train/loop.py`): parameter-efficient
(LoRA by default, DoRA, AdaLoRA, IA3, prompt tuning, prefix tuning, p-tuning through peft) or of every weight
(``peft.method: full``). ``base`` may be an adapter directory: that adapter, on its own base model, trains further.

Rows are packed (several samples per row, positions restarting and attention blocked between samples) unless the
method prepends virtual tokens (prompt, prefix and p-tuning), where each sample is its own padded row. Loss is
taken only on label tokens (assistant turns by default). The order of samples is a seeded permutation per epoch, so
step ``s`` always reads the same rows and resuming is exact.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import model_card, sft_data
from train.config import PROMPT_METHODS, PeftConfig, PretrainConfig, SFTConfig
from train.loop import IGNORE, Batch, Trainer, check_output, numel
from train.model import check_model_directory, from_pretrained
from train.packing import POSITION_IDS, Mode, choose, segment_inputs
from train.tokenizer import load_tokenizer

TIED_WARNINGS = r"(?s).*(tie_word_embeddings=True|no longer tied)"
"""peft's warnings about an adapter on input/output embeddings that the base model ties"""
PEFT_WARNINGS = (TIED_WARNINGS, r"`is_gradient_checkpointing` is deprecated",
                 r"fan_in_fan_out is set to False but the target module is `Conv1D`")
"""warnings peft raises when it wraps a model, for what mixlab handles itself (tied embeddings), for its own use of
an API transformers deprecated (``PeftModel.__init__`` reads ``model.is_gradient_checkpointing``), or for what it
fixes itself (GPT-2's ``Conv1D`` stores its weight transposed: peft sets ``fan_in_fan_out`` for it)"""


FEEDFORWARD_BLOCKS = ("mlp", "feed_forward", "ffn")
"""module-name components of the feed-forward block of a decoder layer, for IA3's feedforward_modules"""


def linear_layers(model: Any) -> list[str]:
    """Full names of the linear layers (``nn.Linear`` or GPT-2's ``Conv1D``) of ``model`` that peft's
    ``all-linear`` adapts: every one but the output embedding (``lm_head``)."""
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not output]


def _matches(name: str, target: str) -> bool:
    """peft's rule for a target given as a string in a list: the module's name, or its last dotted parts."""
    return name == target or name.endswith("." + target)


def _feedforward(name: str) -> bool:
    return any(part in FEEDFORWARD_BLOCKS for part in name.split(".")[:-1])


def peft_config(cfg: SFTConfig | PretrainConfig, model: Any) -> Any:
    """The peft config for ``cfg.peft.method``, with mixlab's documented defaults (``peft.use_dora``: DoRA, Liu et
    al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", through peft's ``LoraConfig(use_dora=True)``).

    ``peft.target_modules``, when given, goes to peft unchanged (a target matches a module by its name or its last
    dotted parts). Without it LoRA and AdaLoRA adapt every linear layer of the decoder blocks (peft's
    ``all-linear``: ``nn.Linear`` and GPT-2's ``Conv1D``, fused projections such as Phi-3's ``qkv_proj`` included,
    the output embedding excluded), and IA3 scales the same layers. IA3's ``feedforward_modules`` (scaled at their
    input rather than their output) are the targets inside a decoder layer's feed-forward block (a module named
    ``mlp``, ``feed_forward`` or ``ffn``)."""
    import peft

    p = cfg.peft
    task = peft.TaskType.CAUSAL_LM
    if p.method == "lora":
        return peft.LoraConfig(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout, use_dora=p.use_dora,
                               target_modules=p.target_modules or "all-linear", task_type=task)
    if p.method == "adalora":
        return peft.AdaLoraConfig(init_r=int(p.r * 1.5), target_r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout,
                                  target_modules=p.target_modules or "all-linear", total_step=cfg.optim.max_steps,
                                  tinit=max(1, cfg.optim.max_steps // 10), tfinal=max(1, cfg.optim.max_steps // 5),
                                  task_type=task)
    if p.method == "ia3":
        targets = list(p.target_modules) if p.target_modules else linear_layers(model)
        names = [n for n, _ in model.named_modules()]
        ff = [t for t in targets if any(_matches(n, t) and _feedforward(n) for n in names)]
        return peft.IA3Config(target_modules=targets, feedforward_modules=ff, task_type=task)
    if p.method == "prompt_tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=p.num_virtual_tokens, task_type=task)
    if p.method == "prefix_tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=p.num_virtual_tokens, task_type=task)
    return peft.PromptEncoderConfig(num_virtual_tokens=p.num_virtual_tokens,
                                    encoder_hidden_size=model.config.hidden_size, task_type=task)


def _linear_choices(model: Any) -> str:
    from transformers.pytorch_utils import Conv1D

    return ", ".join(sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if isinstance(m, (torch.nn.Linear, Conv1D))}))


def check_target_modules(cfg: SFTConfig | PretrainConfig, model: Any) -> None:
    """ConfigError naming ``peft.target_modules`` when one of them names no module of ``model`` (peft's rule: the
    module's name, or its last dotted parts, so ``v_proj`` does not match ``qkv_proj``), listing the model's linear
    layers to choose from."""
    targets = cfg.peft.target_modules
    if not targets or cfg.peft.method in PROMPT_METHODS or cfg.peft.method == "full":
        return
    names = [n for n, _ in model.named_modules() if n]
    unknown = [t for t in targets if not any(_matches(n, t) for n in names)]
    if unknown:
        raise ConfigError(f"peft.target_modules: {', '.join(unknown)} {'names' if len(unknown) == 1 else 'name'} no "
                          f"module of the base model; its linear layers are {_linear_choices(model)}")


def adapted_modules(model: Any) -> list[str]:
    """Full names of the modules of a peft ``model`` that hold an adapter layer (empty for prompt methods)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [n for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def attach_adapter(cfg: SFTConfig | PretrainConfig, base: Any) -> Any:
    """``base`` wrapped by peft with :func:`peft_config`, after :func:`check_target_modules`; logs which modules got
    adapters and the trainable count. With ``peft.method: full``, ``base`` itself with every weight trainable.
    Raises ConfigError naming ``peft.target_modules`` (listing the base model's linear layers) when no module got an
    adapter or a target names a module the method cannot adapt, and naming ``peft`` for another peft refusal."""
    from peft import get_peft_model
    from peft.utils.error import NoMatchingPeftModuleError, PeftError

    if cfg.peft.method == "full":
        base.requires_grad_(True)
        log.info(f"full: every weight trains; {sum(t.numel() for t in base.parameters()):,} trainable parameters")
        return base
    check_target_modules(cfg, base)
    choices = _linear_choices(base)
    none = f"peft.target_modules: no module of the base model got an adapter; its linear layers are {choices}"
    with warnings.catch_warnings():
        for message in PEFT_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        try:
            model = get_peft_model(base, peft_config(cfg, base))
        except NoMatchingPeftModuleError:
            raise ConfigError(none) from None
        except PeftError as e:
            raise ConfigError(f"peft: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
        except ValueError as e:
            if not str(e).startswith("Target module "):
                raise
            kind = str(e).removeprefix("Target module ").split("(", 1)[0].strip()
            raise ConfigError(f"peft.target_modules: a target names a {kind}, which {cfg.peft.method} cannot adapt; "
                              f"its linear layers are {choices}") from None
    if cfg.peft.method not in PROMPT_METHODS:
        _log_adapters(cfg.peft, model)
    return model


def _log_adapters(p: PeftConfig, model: Any) -> None:
    adapted = adapted_modules(model)
    if not adapted:
        raise ConfigError("peft.target_modules: no module of the base model got an adapter; its linear layers are "
                          f"{_linear_choices(model.get_base_model())}")
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    kinds = sorted({n.rsplit(".", 1)[-1] for n in adapted})
    log.info(f"{p.method}{' (DoRA)' if p.use_dora else ''}: adapters on {len(adapted)} modules ({', '.join(kinds)}); "
             f"{trainable:,} trainable parameters")


PEFT_TYPES = {"LORA": "lora", "ADALORA": "adalora", "IA3": "ia3", "PROMPT_TUNING": "prompt_tuning",
              "PREFIX_TUNING": "prefix_tuning", "P_TUNING": "p_tuning"}
"""peft's ``peft_type`` in an ``adapter_config.json`` -> ``peft.method``"""


def adapter_base(path: str) -> str | None:
    """The base model directory an adapter directory ``path`` was trained on (its ``adapter_config.json``'s
    ``base_model_name_or_path``, checked by :func:`train.model.check_model_directory`), or None when ``path`` is a
    whole model. Raises ConfigError naming ``base`` when it is neither, or the adapter's base is gone."""
    if not check_model_directory(Path(path), "base"):
        return None
    return str(json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"])


def adapter_settings(path: str, qlora: bool) -> PeftConfig:
    """The ``peft`` section an adapter directory was trained with, read from its ``adapter_config.json``
    (``qlora`` is the run's: how the base is loaded). Raises ConfigError naming ``base`` for a peft type mixlab does
    not train, and for AdaLoRA, whose rank schedule ended with the run that made it."""
    saved = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    method = PEFT_TYPES.get(str(saved.get("peft_type")))
    if method is None:
        raise ConfigError(f"base: {path} is a {saved.get('peft_type')} adapter; mixlab continues "
                          f"{', '.join(sorted(PEFT_TYPES.values()))} adapters")
    if method == "adalora":
        raise ConfigError(f"base: {path} is an AdaLoRA adapter: its rank schedule ended with the run that made it, so "
                          "it cannot train further; merge it (`--merge`) and tune the merged model")
    targets = saved.get("target_modules")
    values: dict[str, Any] = {"method": method, "qlora": qlora,
                              "target_modules": sorted(targets) if isinstance(targets, list) else None}
    if method == "lora":
        values.update(r=saved["r"], alpha=saved["lora_alpha"], dropout=saved["lora_dropout"],
                      use_dora=bool(saved.get("use_dora")))
    if method in PROMPT_METHODS:
        values["num_virtual_tokens"] = saved["num_virtual_tokens"]
    return PeftConfig(**values)


def continued_config(cfg: SFTConfig) -> tuple[SFTConfig, str | None]:
    """``cfg`` and None when ``base`` is a whole model. When ``base`` is an adapter directory: ``cfg`` with the
    adapter's ``peft`` settings (the adapter's shape wins; the run keeps ``peft.qlora``), and the adapter's base
    model directory. A key of the run's ``peft`` section that is set in the config and differs from the adapter's
    is a ConfigError naming it, with both values; so is ``peft.method: full``."""
    real_base = adapter_base(cfg.base)
    if real_base is None:
        return cfg, None
    if cfg.peft.method == "full":
        raise ConfigError(f"peft.method: full trains a whole model, but base {cfg.base} is an adapter; give its "
                          "merged model (`train sft --merge`) as base, or drop peft.method to train the adapter")
    saved = adapter_settings(cfg.base, cfg.peft.qlora)
    given = cfg.peft.model_dump()
    differ = [k for k in sorted(cfg.peft.model_fields_set) if k != "qlora" and _differs(given[k], getattr(saved, k))]
    if differ:
        shown = "; ".join(f"peft.{k} {given[k]!r} here, {getattr(saved, k)!r} in the adapter" for k in differ)
        raise ConfigError(f"base: {cfg.base} is an adapter trained with other peft settings ({shown}); a continued "
                          "adapter keeps its own: remove these keys or set the adapter's values")
    log.info(f"base: {cfg.base} is a {saved.method} adapter on {real_base}: training it further with its own settings")
    return cfg.model_copy(update={"peft": saved}), real_base


def _differs(given: Any, saved: Any) -> bool:
    if isinstance(given, list) and isinstance(saved, list):
        return sorted(given) != sorted(saved)
    if isinstance(given, float) or isinstance(saved, float):
        return given is None or saved is None or abs(float(given) - float(saved)) > 1e-12
    return given != saved


def load_adapter(base: Any, adapter: str) -> Any:
    """The peft model of the adapter directory ``adapter`` on ``base`` (its base model, loaded), trainable
    (``PeftModel.from_pretrained(base, adapter, is_trainable=True)``); logs the trainable count."""
    from peft import PeftModel

    with warnings.catch_warnings():
        for message in PEFT_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        return PeftModel.from_pretrained(base, adapter, is_trainable=True)


DATA_STARTS = {b"{": "JSON Lines", b"[": "a JSON list"}
"""the first non-blank byte of each data file kind `train.sft_data` reads"""


def check_data_files(cfg: SFTConfig) -> None:
    """ConfigError naming ``data.files`` for a file that is missing or in a format mixlab does not read (JSON Lines
    or a .json list; told by the first non-blank byte), before any file is loaded."""
    for f in cfg.data.files:
        path = Path(f.path)
        if not path.is_file():
            raise ConfigError(f"data.files: {path} does not exist" if not path.exists() else
                              f"data.files: {path} is not a file")
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096).removeprefix(sft_data.BOM).lstrip()
        except OSError as e:
            raise ConfigError(f"data.files: {path}: cannot read ({e.strerror or e})") from None
        if head and head[:1] not in DATA_STARTS:
            raise ConfigError(f"data.files: {path}: unknown data format (it starts with {head[:12]!r}); mixlab "
                              "reads chat records as JSON Lines (.jsonl) or a JSON list (.json)")


def check_before_work(cfg: SFTConfig, merge: bool) -> None:
    """Refuse, before any model or data is loaded, what would fail later (ConfigError, one line): ``--merge`` with a
    method whose result cannot be merged (full: final/ is already a whole model; prompt, prefix and p-tuning add
    virtual tokens, not weights), QLoRA without CUDA or bitsandbytes, and data files mixlab cannot read
    (:func:`check_data_files`). ``cfg`` is the run's config after :func:`continued_config`."""
    import importlib.util

    method = cfg.peft.method
    if merge and method == "full":
        raise ConfigError("--merge: peft.method full trains every weight and final/ is already the whole model; "
                          "there is no adapter to merge (drop --merge)")
    if merge and method in PROMPT_METHODS:
        raise ConfigError(f"--merge: {method} adds virtual tokens, not weights, so it cannot be merged into the base; "
                          "drop --merge and use final/adapter (e.g. with `train generate`)")
    if cfg.peft.qlora and not torch.cuda.is_available():
        raise ConfigError("peft.qlora: 4-bit QLoRA needs a CUDA GPU and bitsandbytes; this machine has no GPU")
    if cfg.peft.qlora and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("peft.qlora: install bitsandbytes (pip install bitsandbytes) to use 4-bit QLoRA")
    check_data_files(cfg)


def load_base(path: str, qlora: bool) -> Any:
    """The base model to tune, in float32 (or 4-bit with ``qlora``), checked before it is loaded. Raises ConfigError
    naming ``base`` for a directory that is not a whole model, and ``peft.qlora`` when 4-bit cannot run here."""
    if qlora:
        if not torch.cuda.is_available():
            raise ConfigError("peft.qlora: 4-bit QLoRA needs a CUDA GPU and bitsandbytes; this machine has no GPU")
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("peft.qlora: install bitsandbytes (pip install bitsandbytes) to use 4-bit QLoRA") from None
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
        return from_pretrained(path, "base", quantization_config=quant)
    return from_pretrained(path, "base", dtype=torch.float32)


def chat_tokenizer(tokenizer: str | None, base: str) -> tuple[Any, sft_data.ChatFormat]:
    """The tokenizer of a tuning run (``tokenizer``, else the ``base`` model's; EOS pads when it has no pad token)
    and the chat format built on it. Raises ConfigError for a directory without a tokenizer."""
    tok = load_tokenizer(tokenizer or base, "tokenizer" if tokenizer else "base")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, sft_data.ChatFormat(tok)


class SFTTrainer(Trainer):
    task = "sft"

    def __init__(self, cfg: SFTConfig, resume: str | None = None, merge: bool = False) -> None:
        """Everything that can be refused is refused before data or weights are loaded: ``base`` and ``tokenizer``
        directories, an adapter ``base`` whose settings differ from the run's (:func:`continued_config`), and
        :func:`check_before_work` (``merge``: `train sft --merge` follows this run), after the output directory."""
        check_output(Path(cfg.out), resume)
        for what, path in (("base", cfg.base), ("tokenizer", cfg.tokenizer)):
            if path is not None and not Path(path).is_dir():
                raise ConfigError(f"{what}: {path} is not a local directory. Models are never downloaded (this runs "
                                  "offline): give a saved model, e.g. the final/ of `train pretrain`")
        cfg, self.continued_base = continued_config(cfg)
        check_before_work(cfg, merge)
        super().__init__(cfg, resume)
        self.tokenizer, self.chat = chat_tokenizer(cfg.tokenizer, cfg.base)
        d = cfg.data
        self.prepared = sft_data.prepare([(Path(f.path), f.format, f.weight) for f in d.files], self.chat, d.max_len,
                                         d.train_on, d.heldout_fraction, cfg.seed)
        self._report_data()
        if self.chat.merged_starts:
            log.warning(f"{self.chat.merged_starts:,} assistant turns start inside a token that also holds the end of "
                        "the chat template's generation prompt (the prompt ends in text the reply merges with, e.g. a "
                        "space): served prompts end before that token, so such replies may start oddly; a template "
                        "whose prompt ends with a newline or a special token avoids it")
        if self.prepared.problems and d.on_error == "fail":
            first = self.prepared.problems[0]
            raise ConfigError(f"data: {len(self.prepared.problems)} malformed records (first: {first.file} "
                              f"{first.location}: {first.reason}); fix them or set data.on_error: skip")
        self.packing = d.packing and cfg.peft.method not in PROMPT_METHODS
        if d.packing and not self.packing:
            log.info(f"packing is off: {cfg.peft.method} prepends virtual tokens to every sample")
        self._epochs: dict[int, list[list[int]]] = {}
        self.plan_steps()  # optim.epochs, before AdaLoRA lays out its rank schedule over the steps
        base = load_base(self.continued_base or cfg.base, cfg.peft.qlora)
        positions = getattr(base.config, "max_position_embeddings", None) or getattr(base.config, "n_positions", None)
        if positions is not None and d.max_len > positions:
            raise ConfigError(f"data.max_len: {d.max_len} is longer than the {positions} positions the base model "
                              f"{cfg.base} was built for; set data.max_len to {positions} or less")
        if self.continued_base is not None:
            self.model = load_adapter(base, cfg.base)
            if cfg.peft.method not in PROMPT_METHODS:
                _log_adapters(cfg.peft, self.model)
        else:
            self.model = attach_adapter(cfg, base)
        if cfg.peft.method != "full" and tied_adapted_output(self.model) is not None:
            log.info("peft.target_modules: the adapter changes an embedding that the base model ties to the other "
                     "(tie_word_embeddings); base + adapter is exact, and --merge unties them in the merged model")
        self.last_eval: dict[str, dict[str, float]] = {}
        self.setup(resume)
        self.attention: Mode = choose(self.module, "data.packing") if self.packing else POSITION_IDS

    def _report_data(self) -> None:
        sft_data.report(self.prepared)

    def resume_fields(self) -> dict[str, Any]:
        fields = super().resume_fields()
        if self.cfg.peft.method == "adalora":  # its rank schedule is laid out over optim.max_steps
            fields["optim.max_steps"] = self.cfg.optim.max_steps
        return fields

    # -- data order ----------------------------------------------------------------------------------------------
    def rows_per_epoch(self) -> int:
        """The packed rows of one epoch (the samples, without packing)."""
        return len(self._rows(0))

    def _rows(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.clear()
            order = np.random.default_rng([self.cfg.seed, epoch, 0x5F7]).permutation(len(self.prepared.train))
            self._epochs[epoch] = sft_data.pack(self.prepared.train, order, self.cfg.data.max_len) if self.packing \
                else [[int(i)] for i in order]
        return self._epochs[epoch]

    def _row(self, position: int) -> list[int]:
        rows0 = self._rows(0)
        epoch, index = divmod(position, len(rows0))
        rows = self._rows(epoch)
        return rows[index % len(rows)]

    def _collate(self, rows: list[list[sft_data.Example]], names: list[str]) -> Batch:
        pad = self.tokenizer.pad_token_id
        if self.packing:
            L = max(sum(len(e.ids) for e in r) for r in rows)
            ids = np.full((len(rows), L), pad, dtype=np.int64)
            labels = np.full((len(rows), L), IGNORE, dtype=np.int64)
            pos = np.zeros((len(rows), L), dtype=np.int64)
            seg = np.full((len(rows), L), -1, dtype=np.int64)
            for r, examples in enumerate(rows):
                at = 0
                for k, e in enumerate(examples):
                    n = len(e.ids)
                    ids[r, at:at + n], labels[r, at:at + n] = e.ids, e.labels
                    labels[r, at] = IGNORE  # a sample's first token is never a target of the previous one
                    pos[r, at:at + n], seg[r, at:at + n] = np.arange(n), k
                    at += n
                pos[r, at:], seg[r, at:] = np.arange(L - at), len(examples)  # padding: its own segment
            t = torch.from_numpy(ids).to(self.dist.device)
            inputs = segment_inputs(t[:, :-1], torch.from_numpy(pos[:, :-1]), torch.from_numpy(seg[:, :-1]),
                                    self.attention, torch.float32)
            return Batch(inputs, torch.from_numpy(labels[:, 1:]).to(self.dist.device), names)
        L = max(len(r[0].ids) for r in rows)
        ids = np.full((len(rows), L), pad, dtype=np.int64)
        labels = np.full((len(rows), L), IGNORE, dtype=np.int64)
        attn = np.zeros((len(rows), L), dtype=np.int64)
        for r, (e,) in enumerate(rows):
            ids[r, :len(e.ids)], labels[r, :len(e.ids)], attn[r, :len(e.ids)] = e.ids, e.labels, 1
        t = torch.from_numpy(ids).to(self.dist.device)
        inputs = {"input_ids": t[:, :-1], "attention_mask": torch.from_numpy(attn[:, :-1]).to(self.dist.device)}
        return Batch(inputs, torch.from_numpy(labels[:, 1:]).to(self.dist.device), names)

    def micro_batch(self, step: int, micro: int) -> Batch:
        o = self.cfg.optim
        start = step * self.global_batch + (micro * self.dist.world + self.dist.rank) * o.batch_size
        rows = [[self.prepared.train[i] for i in self._row(p)] for p in range(start, start + o.batch_size)]
        return self._collate(rows, [r[0].name for r in rows])

    def eval_batches(self) -> dict[str, list[Batch]]:
        B = self.cfg.optim.batch_size
        held = self.prepared.heldout[: max(1, self.cfg.eval.tokens_per_domain // self.cfg.data.max_len * 4)]
        packing, self.packing = self.packing, False
        try:
            return {"heldout": [self._collate([[e] for e in held[i:i + B]], ["heldout"] * len(held[i:i + B]))
                                for i in range(0, len(held), B)]} if held else {}
        finally:
            self.packing = packing

    def loss(self, batch: Batch) -> torch.Tensor:
        ctx = torch.autocast(self.dist.device.type, dtype=self.autocast) if self.autocast else None
        if ctx is not None:
            with ctx:
                logits = self.model(**batch.inputs).logits
        else:
            logits = self.model(**batch.inputs).logits
        logits = logits[:, -batch.labels.shape[1]:]  # prompt tuning prepends virtual tokens' logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch.labels.reshape(-1),
                               ignore_index=IGNORE)

    def after_optimizer_step(self) -> None:
        if self.cfg.peft.method == "adalora":  # AdaLoRA reallocates ranks from the gradients of this step
            self.module.base_model.update_and_allocate(self.step)

    # -- reporting and saving ------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        total = sum(numel(p) for p in self.module.parameters())
        rows = len(self._rows(0))
        return {"method": self.cfg.peft.method, "trainable_parameters": trainable, "parameters": total,
                "train_examples": len(self.prepared.train), "heldout_examples": len(self.prepared.heldout),
                "rows_per_epoch": rows, "packing": self.packing,
                "epochs": self.cfg.optim.max_steps * self.global_batch / max(1, rows), "data": self.prepared.summary,
                "unused_fields": self.prepared.unused}

    def print_plan(self, plan: dict[str, Any]) -> None:
        log.info(f"{plan['method']}: {plan['trainable_parameters']:,} trainable of {plan['parameters']:,} parameters; "
                 f"{plan['train_examples']:,} examples in {plan['rows_per_epoch']:,} rows"
                 f"{' (packed)' if plan['packing'] else ''}; {plan['epochs']:.2f} epochs")

    def tokens_per_step(self) -> int:
        return self.global_batch * self.cfg.data.max_len

    def save_final(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        """The adapter, its tokenizer (with the chat template trained on), ``mixlab_sft.json`` and the model card
        into ``directory``/adapter; with ``peft.method: full`` the whole model and the rest into ``directory``
        itself. ``base`` in ``mixlab_sft.json`` and the card is the base model (for a continued adapter, the
        adapter's base; ``continued_from`` then names the adapter)."""
        full = self.cfg.peft.method == "full"
        home = directory if full else directory / "adapter"
        self.module.save_pretrained(str(home), state_dict=weights)
        if not self.chat.own:
            self.tokenizer.chat_template = sft_data.DEFAULT_JINJA
        self.tokenizer.save_pretrained(str(home))
        chat_format = "tokenizer" if self.chat.own else "default"
        trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        base = self.continued_base or self.cfg.base
        card = model_card.sft_facts(self.cfg.model_copy(update={"base": base}), self.prepared.summary,
                                    self.final_eval.get("heldout"), self.final_step, trainable, chat_format,
                                    sum(len(b.names) for b in self.eval_batches().get("heldout", [])))
        meta = {"base": base, "method": self.cfg.peft.method, "chat_format": chat_format, "card": card}
        if self.continued_base is not None:
            meta["continued_from"] = self.cfg.base
        (home / "mixlab_sft.json").write_text(json.dumps(meta, indent=2) + "\n")
        final = self.out / "final"
        model_card.write_sft_card(home, card, merged=full, final_home=final if full else final / "adapter")

    def evaluate(self) -> dict[str, dict[str, float]]:
        self.last_eval = super().evaluate()
        return self.last_eval


def tied_adapted_output(model: Any) -> Any | None:
    """The output embedding layer (unwrapped) of a peft ``model`` whose base ties it to the input embedding while an
    adapter wraps either of them; None otherwise."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = model.get_base_model()
    inp, out = base.get_input_embeddings(), base.get_output_embeddings()
    if inp is None or out is None or not (isinstance(inp, BaseTunerLayer) or isinstance(out, BaseTunerLayer)):
        return None
    inp_base = inp.get_base_layer() if isinstance(inp, BaseTunerLayer) else inp
    out_base = out.get_base_layer() if isinstance(out, BaseTunerLayer) else out
    return out_base if inp_base.weight.data_ptr() == out_base.weight.data_ptr() else None


def untie_adapted_embeddings(model: Any) -> bool:
    """Give the output embedding of a peft ``model`` its own copy of the weight it shares with the input embedding
    when an adapter wraps either of them; True if it did. Merging such an adapter into the shared matrix would add
    the output layer's delta to the input embedding too (and the input's to the output), so the merged model would
    differ from base + adapter."""
    out = tied_adapted_output(model)
    if out is None:
        return False
    out.weight = torch.nn.Parameter(out.weight.detach().clone(), requires_grad=False)
    return True


def merge(adapter: Path, out: Path) -> Path:
    """Fold an adapter into its base model: a plain model `AutoModelForCausalLM` loads, whose logits equal base +
    adapter. When the base ties its input and output embeddings and the adapter changes either, the merged model
    unties them (``tie_word_embeddings: false``, both matrices saved). Raises ConfigError for adapters that cannot
    be merged (prompt-style methods)."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    with warnings.catch_warnings():  # peft's warnings about adapters on tied embeddings: handled here
        for message in PEFT_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        model = AutoPeftModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32)
        if not hasattr(model, "merge_and_unload"):
            raise ConfigError(f"{adapter}: this adapter type cannot be merged into the base weights")
        untied = untie_adapted_embeddings(model)
        try:
            merged = model.merge_and_unload()
        except (AttributeError, ValueError) as e:
            raise ConfigError(f"{adapter}: cannot merge this adapter ({e}); prompt-style adapters stay separate") \
                from None
    if untied:
        for config in {id(c): c for c in (merged.config, merged.config.get_text_config())}.values():
            config.tie_word_embeddings = False
        log.info("merged model: input and output embeddings untied (the adapter changes one of them); both are saved")
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(out))
    meta = adapter / "mixlab_sft.json"
    if meta.exists():
        (out / "mixlab_sft.json").write_text(meta.read_text())
        card = json.loads(meta.read_text()).get("card")
        if card:
            model_card.write_sft_card(out, card, merged=True)
    return out
