"""Rows that hold several segments (documents under ``data.document_masking`` in `train pretrain`, samples under
``data.packing`` in `train sft`), fed to a model so that each segment attends only to itself while the model keeps
its own attention: a sliding window, Gemma2's alternating local and global layers, Qwen2's ``use_sliding_window``.

There are two ways, and :func:`choose` picks one per model at setup:

* ``position_ids`` (preferred): positions restart at 0 at each segment and no attention mask is given. transformers
  then finds the segments from the positions (``masking_utils.find_packed_sequence_indices``: a new segment wherever
  a position is not the previous one + 1) and builds each layer's own mask, causal or sliding-window, inside each
  segment (``packed_sequence_compatibility_function``). This is what HF's ``DataCollatorWithFlattening`` relies on,
  and flash-attention's varlen path reads the same position ids. It needs the model run without a KV cache (a cache
  turns the detection off), so these inputs carry ``use_cache=False``.
* ``block_mask``: a 4D additive mask, causal inside each segment and blocking attention across segments (the
  document masking of Llama 3, arXiv:2407.21783, section 3.2). It replaces the model's own mask, so it is used only
  for models that have no local attention (see :func:`local_attention`).

:func:`choose` verifies the model instead of trusting it: :func:`probe` packs short random segments into rows and
compares their logits with each segment run alone.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from mixlab.errors import ConfigError
from mixlab.logs import log

Mode = Literal["position_ids", "block_mask"]
POSITION_IDS: Mode = "position_ids"
BLOCK_MASK: Mode = "block_mask"

PROBE_SEGMENTS = ((5, 11), (1, 7, 8))
"""segment lengths of the probe's two rows: a batch of two (flash-attention's varlen path reads position ids only in
a batch of one row, so a probe of one row would pass where training rows would not), with a one-token segment"""
PROBE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-8}
"""largest logit difference, relative to the largest logit (or 1), for which packed segments count as separate;
other dtypes (bf16, fp16, quantized compute): :data:`PROBE_TOLERANCE_LOW_PRECISION`"""
PROBE_TOLERANCE_LOW_PRECISION = 5e-2
WHAT = {"data.document_masking": "documents", "data.packing": "packed samples"}


def segment_inputs(tokens: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor,
                   mode: Mode = POSITION_IDS, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Model kwargs for a (B, L) batch of rows made of several segments.

    ``positions`` (B, L) restart at 0 at the first token of each segment and count up by one inside it (a row that
    starts inside a document starts at 0 too); ``segments`` (B, L) numbers the segments of each row in order
    (padding at the end of a row is a segment of its own, with positions 0, 1, ...). With ``mode`` ``position_ids``
    the model tells the segments apart from the positions alone and ``segments`` is not read; with ``block_mask``
    the kwargs carry a (B, 1, L, L) additive mask of ``dtype`` (0 where attention is allowed, the dtype's minimum
    elsewhere). Either way ``use_cache`` is False: no caller may pass it again."""
    device = tokens.device
    inputs = {"input_ids": tokens, "position_ids": positions.to(device), "use_cache": False}
    if mode == POSITION_IDS:
        return inputs
    seg = segments.to(device)
    L = tokens.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    allowed = causal[None] & (seg[:, :, None] == seg[:, None, :])
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return {**inputs, "attention_mask": mask[:, None]}


def local_attention(config: Any) -> str | None:
    """What attends to less than the whole causal past in a transformers model config, in words (e.g.
    ``sliding_window 4096``, ``layer_types sliding_attention``); None when every layer has full causal attention.
    Read: ``sliding_window`` (unless ``use_sliding_window`` is false), ``attention_chunk_size``, and any
    ``layer_types`` entry other than ``full_attention``."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    found = []
    window = getattr(text, "sliding_window", None)
    if window and getattr(text, "use_sliding_window", True) is not False:
        found.append(f"sliding_window {window}")
    chunk = getattr(text, "attention_chunk_size", None)
    if chunk:
        found.append(f"attention_chunk_size {chunk}")
    kinds = sorted({str(t) for t in getattr(text, "layer_types", None) or () if t != "full_attention"})
    if kinds:
        found.append(f"layer_types {', '.join(kinds)}")
    return "; ".join(found) or None


def _probe_rows(vocab: int, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int, torch.Tensor]]]:
    """Token ids, positions and segment numbers (2, L) of the probe, and each segment as (row, start, ids)."""
    g = torch.Generator().manual_seed(0)
    ids, pos, seg, pieces = [], [], [], []
    for r, lengths in enumerate(PROBE_SEGMENTS):
        row = torch.randint(0, vocab, (sum(lengths),), generator=g)
        at = 0
        for k, n in enumerate(lengths):
            pieces.append((r, at, row[at:at + n].to(device)))
            at += n
        ids.append(row)
        pos.append(torch.cat([torch.arange(n) for n in lengths]))
        seg.append(torch.cat([torch.full((n,), k) for k, n in enumerate(lengths)]))
    return torch.stack(ids).to(device), torch.stack(pos), torch.stack(seg), pieces


def probe(model: torch.nn.Module, mode: Mode) -> float:
    """How far ``model`` is from keeping packed segments apart when fed by ``mode``: the largest absolute logit
    difference between the segments of :data:`PROBE_SEGMENTS` packed in two rows and each segment run alone, divided
    by the largest absolute logit (or 1 when that is smaller). 0 up to rounding when the model honours ``mode``.

    Runs in eval mode without gradients on the model's device and dtype (the training mode is restored); random
    token ids from a fixed seed."""
    embeddings = model.get_input_embeddings()
    weight = embeddings.weight
    vocab = getattr(embeddings, "num_embeddings", None) or model.config.get_text_config().vocab_size
    ids, pos, seg, pieces = _probe_rows(vocab, weight.device)
    dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(**segment_inputs(ids, pos, seg, mode, dtype)).logits.float()
            worst, scale = 0.0, 1.0
            for r, start, piece in pieces:
                alone = model(input_ids=piece[None], use_cache=False).logits.float()[0]
                part = packed[r, start:start + len(piece)]
                worst = max(worst, (part - alone).abs().max().item())
                scale = max(scale, alone.abs().max().item())
    finally:
        model.train(training)
    return worst / scale


def _tolerance(model: torch.nn.Module) -> float:
    dtype = model.get_input_embeddings().weight.dtype
    return PROBE_TOLERANCE.get(dtype, PROBE_TOLERANCE_LOW_PRECISION)


def choose(model: torch.nn.Module, key: str) -> Mode:
    """How to feed multi-segment rows to ``model`` (``key``: the config key that turned them on,
    ``data.document_masking`` or ``data.packing``): ``position_ids`` when :func:`probe` shows the model keeps
    packed segments apart from their position ids; else ``block_mask`` when the model has no local attention and
    the probe shows it honours the mask. Logs which, with the probe's difference.

    Raises ConfigError naming ``key`` when the model ignores packed position ids and has local attention (a block
    mask would replace it, so training would attend past the window that inference keeps), or honours neither."""
    what = WHAT.get(key, "segments")
    tolerance = _tolerance(model)
    kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    by_positions = probe(model, POSITION_IDS)
    if by_positions <= tolerance:
        log.info(f"{key}: {what} kept apart by position ids restarting at each one, with the model's own attention "
                 f"masks ({kind}; checked: packed and alone differ by {by_positions:.1e})")
        return POSITION_IDS
    local = local_attention(model.config)
    if local is not None:
        raise ConfigError(f"{key}: this {kind} model does not keep {what} apart by their position ids, and a block "
                          f"mask would replace its local attention ({local}), so it would train with attention that "
                          f"inference does not use; set {key}: false")
    by_mask = probe(model, BLOCK_MASK)
    if by_mask > tolerance:
        raise ConfigError(f"{key}: this {kind} model keeps {what} apart neither by their position ids nor by a 4D "
                          f"attention mask (packed and alone differ by {by_mask:.1e} relative); set {key}: false")
    log.info(f"{key}: {what} kept apart by a 4D block-causal mask ({kind} ignores packed position ids and has "
             f"full attention in every layer; checked: packed and alone differ by {by_mask:.1e})")
    return BLOCK_MASK
