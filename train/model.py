"""The model: a local Hugging Face checkpoint (continued pretraining) or a transformers config (from scratch).
Nothing is downloaded: a hub name that is not a local directory is refused with a clear message. A model directory
is checked before it is loaded (config readable, weights present and whole), so a damaged one is named in one line."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from mixlab.errors import ConfigError
from train.config import ModelConfig

LLAMA_DEFAULTS: dict[str, Any] = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                                  "num_attention_heads": 4, "max_position_embeddings": 2048,
                                  "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "attention_dropout": 0.0}

SAVED_MODEL_HINT = "give a saved model: the final/ of `train pretrain`, or final/adapter or final/merged of `train sft`"
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def _key(what: str) -> str:
    return f"{what}: " if what else ""


def _json_object(path: Path, what: str) -> dict[str, Any]:
    """``path`` parsed as a JSON object; ConfigError naming it (``what`` is the config key) when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{_key(what)}{path} is damaged (not JSON: {e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{_key(what)}{path} is damaged (not a JSON object)")
    return value


def check_safetensors(path: Path, what: str) -> None:
    """ConfigError naming ``path`` unless its header parses and its size is exactly header + the tensors it lists
    (a truncated or overwritten file fails here, before a loader reads it)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConfigError(f"{_key(what)}{path} is truncated or damaged ({size:,} bytes, not a safetensors file)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise ConfigError(f"{_key(what)}{path} is truncated or damaged ({size:,} bytes; its header alone claims "
                              f"{length:,})")
        try:
            header = json.loads(f.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise ConfigError(f"{_key(what)}{path} is damaged (its safetensors header is unreadable)") from None
    if size != 8 + length + end:
        raise ConfigError(f"{_key(what)}{path} is truncated or damaged ({size:,} bytes; its header lists "
                          f"{8 + length + end:,})")


def _check_weights(path: Path, names: tuple[str, ...], what: str) -> None:
    present = [path / n for n in names if (path / n).is_file()]
    if not present:
        raise ConfigError(f"{_key(what)}{path} holds no weights (none of {', '.join(names)})")
    weights = present[0]
    if weights.name.endswith(".index.json"):
        shards = _json_object(weights, what).get("weight_map")
        if not isinstance(shards, dict):
            raise ConfigError(f"{_key(what)}{weights} is damaged (no weight_map)")
        files = sorted({path / str(f) for f in shards.values()})
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"{_key(what)}{missing[0]} is missing (listed in {weights.name})")
    else:
        files = [weights]
    for f in files:
        if f.suffix == ".safetensors":
            check_safetensors(f, what)


def check_model_directory(path: Path, what: str = "") -> bool:
    """Check a saved model directory before anything is loaded from it; True for a peft adapter, False for a full
    model. ``what`` is the config key that names it (``model.path``, ``base``), empty for a command's argument.

    A full model has a ``config.json`` (a JSON object with ``model_type``) and whole weights; an adapter has an
    ``adapter_config.json`` and whole weights, and its base model (``base_model_name_or_path``) is such a directory
    too. Raises ConfigError with one line naming the file: a missing path, a file, a directory of something else
    (a corpus, a tokenizer), a config that is not JSON, missing weights, a truncated safetensors file."""
    key = _key(what)
    if not path.exists():
        raise ConfigError(f"{key}{path}: not a local model directory: it does not exist ({SAVED_MODEL_HINT}; "
                          "models are never downloaded)")
    if not path.is_dir():
        raise ConfigError(f"{key}{path}: not a model directory: it is a file ({SAVED_MODEL_HINT})")
    if (path / "adapter_config.json").is_file():
        config = path / "adapter_config.json"
        base = _json_object(config, what).get("base_model_name_or_path")
        if not isinstance(base, str) or not Path(base).is_dir():
            raise ConfigError(f"{key}{config}: its base model {base!r} is not a local directory (models are never "
                              "downloaded); restore it or train the adapter again")
        _check_weights(path, ADAPTER_WEIGHTS, what)
        check_model_directory(Path(base), f"{what or path} (the adapter's base model)")
        return True
    config = path / "config.json"
    if not config.is_file():
        found = "a curated corpus" if (path / "manifest.json").is_file() else \
            "a tokenizer" if (path / "tokenizer_config.json").is_file() else \
            "nothing" if not any(path.iterdir()) else "no model"
        raise ConfigError(f"{key}{path}: not a model: it holds {found} (no config.json or adapter_config.json); "
                          f"{SAVED_MODEL_HINT}")
    if not isinstance(_json_object(config, what).get("model_type"), str):
        raise ConfigError(f"{key}{config} names no model_type: it is not a transformers model config")
    _check_weights(path, MODEL_WEIGHTS, what)
    return False


def load_failure(what: str, path: Path | str, err: BaseException) -> ConfigError:
    """The one-line ConfigError for a model directory that passed :func:`check_model_directory` and still could
    not be loaded (``err`` from transformers/peft/safetensors)."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return ConfigError(f"{_key(what)}{path}: cannot be loaded ({reason})")


def load_errors() -> tuple[type[BaseException], ...]:
    """What loading a damaged model directory raises in transformers, peft and safetensors."""
    from safetensors import SafetensorError

    return OSError, ValueError, KeyError, RuntimeError, EOFError, TypeError, SafetensorError


def from_pretrained(path: Path | str, what: str, **kwargs: Any) -> torch.nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` of a checked local directory (``kwargs`` go to it); ConfigError
    (one line naming ``what`` and the path) when the directory is not a whole model or cannot be loaded."""
    from transformers import AutoModelForCausalLM

    if check_model_directory(Path(path), what):
        raise ConfigError(f"{_key(what)}{path} is a peft adapter, not a full model; fold it into its base with "
                          "`train sft --merge` and give final/merged")
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except load_errors() as e:
        raise load_failure(what, path, e) from None


def _config_problem(err: BaseException) -> str:
    """The readable reason of a rejected architecture config (huggingface_hub wraps validators' ValueErrors)."""
    cause = err.__cause__ if err.__cause__ is not None else err
    return (str(cause).strip().splitlines() or [type(cause).__name__])[-1]


def causal_lm_types() -> list[str]:
    """The transformers ``model_type`` names that have a causal-LM class (``AutoModelForCausalLM``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def architecture_config(cfg: ModelConfig, vocab_size: int, seq_len: int, special: dict[str, int | None]) -> Any:
    """The transformers config of a model built from scratch: ``cfg.config`` over the family's defaults (for llama,
    over :data:`LLAMA_DEFAULTS`, a 4.2M-parameter model), with the tokenizer's vocabulary size and special ids.
    Raises ConfigError naming the key: a model type without a causal-LM class, a value the family's config
    rejects, or fewer positions than ``data.seq_len``."""
    import difflib

    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    kind = cfg.model_type
    known = causal_lm_types()
    if kind not in known:
        near = difflib.get_close_matches(kind, known, n=3)
        key = "model.architecture" if cfg.architecture else "model.config.model_type"
        raise ConfigError(f"{key}: {kind!r} is not a transformers model type with a causal-LM class"
                          + (f" (did you mean {', '.join(near)}?)" if near else "")
                          + "; e.g. llama, qwen2, mistral, gemma2, phi3, gpt2, gpt_neox")
    values = {k: v for k, v in cfg.config.items() if k != "model_type"}
    if kind == "llama":
        values = {**LLAMA_DEFAULTS, **values}
        values.setdefault("max_position_embeddings", max(seq_len, 2048))
    try:
        config = AutoConfig.for_model(kind, vocab_size=vocab_size, bos_token_id=special.get("bos"),
                                      eos_token_id=special.get("eos"), pad_token_id=special.get("pad"), **values)
    except (TypeError, ValueError, StrictDataclassError) as e:
        raise ConfigError(f"model.config: {_config_problem(e)}") from None
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions < seq_len:
        key = getattr(config, "attribute_map", {}).get("max_position_embeddings", "max_position_embeddings")
        raise ConfigError(f"model.config.{key} ({positions}) < data.seq_len ({seq_len})")
    return config


def build(cfg: ModelConfig, vocab_size: int, seq_len: int, special: dict[str, int | None]) -> torch.nn.Module:
    """The model to train: ``cfg.path`` loaded (checked first) or one built from scratch by
    :func:`architecture_config` (any transformers causal-LM family; llama by default). Raises ConfigError naming
    the key: a path that is not a local, whole model, a vocabulary smaller than the tokenizer's, or an
    architecture config transformers rejects."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoModelForCausalLM

    if cfg.path is not None:
        path = Path(cfg.path)
        if not path.exists():
            raise ConfigError(f"model.path: {cfg.path} is not a local directory. Models are never downloaded "
                              "(this runs offline, HF_HUB_OFFLINE=1): a hub name must first be saved to a local "
                              "directory, e.g. the output of `train pretrain`")
        model = from_pretrained(path, "model.path", dtype=torch.float32)
        if model.config.vocab_size < vocab_size:
            raise ConfigError(f"model.path: the checkpoint's vocabulary ({model.config.vocab_size}) is smaller than "
                              f"the tokenizer's ({vocab_size}); use the tokenizer it was trained with")
        return model
    config = architecture_config(cfg, vocab_size, seq_len, special)
    try:
        return AutoModelForCausalLM.from_config(config)
    except (TypeError, ValueError, StrictDataclassError, AttributeError, RuntimeError) as e:
        raise ConfigError(f"model.config: {_config_problem(e)}") from None


def parameter_count(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside the embeddings), each shared (tied) tensor counted once. The embeddings
    are the model's input and output embeddings (``get_input_embeddings``/``get_output_embeddings``: GPT-2's
    ``wte`` and ``lm_head``) and every other ``nn.Embedding`` (learned position embeddings such as GPT-2's
    ``wpe``)."""
    modules = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        if module is not None:
            modules.append(module)
    # a ZeRO-3 partitioned parameter is empty on each process and records its full size as ds_numel
    emb = {id(p): int(getattr(p, "ds_numel", p.numel())) for m in modules for p in m.parameters()}
    total = sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters())
    return total, total - sum(emb.values())


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12 * layers * width * seq_len for attention (PaLM)."""
    c = model.config  # type: ignore[attr-defined]
    _, non_emb = parameter_count(model)
    return 6.0 * non_emb + 12.0 * c.num_hidden_layers * c.hidden_size * seq_len
