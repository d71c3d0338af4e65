"""`train pretrain`: continued pretraining (or from scratch) on a corpus's weighted mixture.

The data order is the mixture sampler's (see `train/sampler.py`): step ``s`` reads global positions
``[s*G, (s+1)*G)`` with ``G = batch_size x grad_accum x world_size``, so resuming needs nothing but the step.
A run whose ``optim.max_steps`` is raised on resume keeps the order it has trained on and draws the added steps
as a further segment (``data_plan``: the step at which each segment ends; see ``MixtureSampler.extend``).
The loop itself is `train/loop.py`'s, shared with `train sft`. With a ``peft`` section, an adapter (LoRA, DoRA,
AdaLoRA or IA3, attached as `train sft` attaches it) trains on ``model.path`` instead of every weight, and
final/adapter holds it (``--merge`` folds it in, as `train sft --merge` does).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import data as data_mod
from train import packing
from train.config import PretrainConfig
from train.corpus import Corpus
from train.loop import Batch, Trainer, numel
from train.model import build, flops_per_token, parameter_count
from train.sampler import epoch_sequences
from train.tokenizer import tokenizer_hash

CHINCHILLA_TOKENS_PER_PARAM = 20


def model_inputs(tokens: torch.Tensor, eos: int, document_masking: bool, dtype: torch.dtype = torch.float32,
                 mode: packing.Mode = packing.POSITION_IDS) -> dict[str, Any]:
    """Model kwargs for a (B, L) batch: with document masking, positions restart after each EOS (a row that starts
    inside a document starts at 0) and attention stays inside each document, fed to the model by ``mode`` (see
    `train/packing.py`; ``dtype`` is the block mask's)."""
    if not document_masking:
        return {"input_ids": tokens}
    pos, doc = data_mod.document_positions(tokens.cpu().numpy(), eos)
    return packing.segment_inputs(tokens, torch.from_numpy(pos), torch.from_numpy(doc), mode, dtype)


class Pretrainer(Trainer):
    task = "pretrain"

    def __init__(self, cfg: PretrainConfig, resume: str | None = None, merge: bool = False) -> None:
        """``merge``: `train pretrain --merge` follows this run; without a ``peft`` section it is refused
        (ConfigError) before any work."""
        from train.tokenizer import load_tokenizer

        if merge and cfg.peft is None:
            raise ConfigError("--merge: without a peft section every weight trains and final/ is already the whole "
                              "model; there is no adapter to merge (drop --merge)")
        super().__init__(cfg, resume)
        self.tokenizer = load_tokenizer(cfg.tokenizer, "tokenizer")
        self.eos = self.tokenizer.eos_token_id
        self._inputs: dict[str, Any] | None = None
        self.attention: packing.Mode = packing.POSITION_IDS
        resumed = self.open_checkpoint(resume)
        special = {"bos": self.tokenizer.bos_token_id, "eos": self.eos, "pad": self.tokenizer.pad_token_id}
        # built before the token cache, so that a wrong model.path or model.config is refused before tokenizing
        self.model = build(cfg.model, len(self.tokenizer), cfg.data.seq_len, special)
        if cfg.peft is not None:
            from train.sft import attach_adapter

            self.model = attach_adapter(cfg, self.model)
        if self.dist.main:  # rank 0 builds the token cache; the others then only read it
            self.data = data_mod.prepare(Path(cfg.corpus), Path(cfg.tokenizer), cfg.data)
        self.dist.barrier()
        if not self.dist.main:
            self.data = data_mod.prepare(Path(cfg.corpus), Path(cfg.tokenizer), cfg.data)
        self.plan_steps()  # optim.epochs: the sampler's length follows from the data
        self.data_plan = self._data_plan(resumed)
        self.sampler = data_mod.sampler(self.data, cfg.data, self.data_plan[0] * self.global_batch, cfg.seed)
        for end, new_end in zip(self.data_plan, self.data_plan[1:]):
            self.sampler.extend((new_end - end) * self.global_batch)
        self.tokens_by_domain: dict[str, int] = {d: 0 for d in self.data.weights}
        self.setup(resume)
        if cfg.data.document_masking:
            self.attention = packing.choose(self.module, "data.document_masking")
        self._eval = {d: data_mod.eval_sequences(s, cfg.data.seq_len, cfg.eval.tokens_per_domain)
                      for d, s in self.data.heldout.items()}

    def rows_per_epoch(self) -> int:
        """Sequences the mixture draws before its first domain runs out (:func:`train.sampler.epoch_sequences`)."""
        L = self.cfg.data.seq_len
        return epoch_sequences({d: s.sequences(L) for d, s in self.data.train.items()}, self.data.weights)

    def _data_plan(self, resumed: dict[str, Any] | None) -> list[int]:
        """The steps at which the sampler's segments end: ``[max_steps]``, plus the new ``max_steps`` when a
        resumed run raises it past the planned end."""
        plan = [self.cfg.optim.max_steps] if resumed is None else list(resumed["data_plan"])
        return plan + [self.cfg.optim.max_steps] if self.cfg.optim.max_steps > plan[-1] else plan

    def resume_fields(self) -> dict[str, Any]:
        """The loop's fields, with the corpus and tokenizer judged by content rather than path (a moved corpus
        resumes): the tokenizer's hash, the corpus shards' checksums, and the mixture in use (``data.weights`` or
        the corpus's ``mixture.json``)."""
        if self._inputs is None:
            corpus = Corpus(Path(self.cfg.corpus))
            shards = {d: [s.sha256 for s in corpus.shards(d)] for d in corpus.domains}
            self._inputs = {
                "tokenizer contents": tokenizer_hash(Path(self.cfg.tokenizer)),
                "corpus contents": hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()[:16],
                "mixture (data.weights or the corpus's mixture.json)": self.cfg.data.weights or corpus.mixture}
        fields = {k: v for k, v in super().resume_fields().items() if k not in ("corpus", "tokenizer")}
        return {**fields, **self._inputs}

    def _batch(self, tokens: np.ndarray, names: list[str]) -> Batch:
        t = torch.from_numpy(tokens).to(self.dist.device)
        inputs = model_inputs(t[:, :-1], self.eos, self.cfg.data.document_masking, torch.float32, self.attention)
        return Batch(inputs, t[:, 1:], names)

    def micro_batch(self, step: int, micro: int) -> Batch:
        o = self.cfg.optim
        start = step * self.global_batch + (micro * self.dist.world + self.dist.rank) * o.batch_size
        return self._batch(*self.sampler.batch(start, o.batch_size))

    def on_batch(self, batch: Batch) -> None:
        for n in batch.names:
            self.tokens_by_domain[n] += self.cfg.data.seq_len

    def eval_batches(self) -> dict[str, list[Batch]]:
        B = self.cfg.optim.batch_size
        return {d: [self._batch(seqs[i:i + B], [d] * len(seqs[i:i + B])) for i in range(0, len(seqs), B)]
                for d, seqs in self._eval.items() if len(seqs)}

    def state(self) -> dict[str, Any]:
        return {"tokens_by_domain": dict(self.tokens_by_domain), "data_plan": self.data_plan}

    def load_state(self, state: dict[str, Any]) -> None:
        self.tokens_by_domain = state["tokens_by_domain"]

    def after_optimizer_step(self) -> None:
        if self.cfg.peft is not None and self.cfg.peft.method == "adalora":  # ranks follow this step's gradients
            self.module.base_model.update_and_allocate(self.step)

    def save_final(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        """The model and its tokenizer into ``directory``; with a ``peft`` section the adapter and the tokenizer
        into ``directory``/adapter (its base, ``model.path``, recorded in ``adapter_config.json``)."""
        home = directory / "adapter" if self.cfg.peft is not None else directory
        self.module.save_pretrained(str(home), state_dict=weights)
        self.tokenizer.save_pretrained(str(home))

    def plan(self) -> dict[str, Any]:
        total, non_emb = parameter_count(self.module)
        L = self.cfg.data.seq_len
        tokens = self.cfg.optim.max_steps * self.global_batch * L  # the sampler may plan more (max_steps lowered)
        s = self.sampler
        trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        return {"parameters": total, "non_embedding_parameters": non_emb, "trainable_parameters": trainable,
                "seq_len": L, "global_batch_sequences": self.global_batch, "steps": self.cfg.optim.max_steps,
                "tokens": tokens,
                "tokens_per_parameter": tokens / total, "chinchilla_tokens_per_parameter": CHINCHILLA_TOKENS_PER_PARAM,
                "flops": flops_per_token(self.module, L) * tokens, "world_size": self.dist.world,
                "domains": {d: {"weight": s.counts[d] / max(1, len(s)), "tokens_to_draw": s.counts[d] * L,
                                "tokens_available": s.available[d] * L, "epochs": s.counts[d] / max(1, s.available[d]),
                                "heldout_tokens": self.data.heldout[d].tokens} for d in s.domains}}

    def print_plan(self, plan: dict[str, Any]) -> None:
        ratio = plan["tokens_per_parameter"]
        log.info(f"model: {plan['parameters']:,} parameters ({plan['non_embedding_parameters']:,} non-embedding)"
                 + (f"; {plan['trainable_parameters']:,} trainable ({self.cfg.peft.method} adapter)"
                    if self.cfg.peft is not None else ""))
        log.info(f"data: {plan['tokens']:,} tokens = {plan['steps']} steps x {plan['global_batch_sequences']} "
                 f"sequences x {plan['seq_len']}; {ratio:.1f} tokens/parameter (Chinchilla ~{CHINCHILLA_TOKENS_PER_PARAM}"
                 f"{', under-trained' if ratio < CHINCHILLA_TOKENS_PER_PARAM else ''}); {plan['flops']:.3g} FLOPs")
        log.info(self.sampler.table())
