"""`train pretrain`: a readable training loop (in the spirit of nanoGPT) on a corpus's weighted mixture.

The data order is the mixture sampler's (see `train/sampler.py`): step ``s`` reads global positions
``[s*G, (s+1)*G)`` with ``G = batch_size x grad_accum x world_size``, so resuming needs nothing but the step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from mixlab.logs import bars_enabled, log
from train import checkpoint
from train import data as data_mod
from train.config import PretrainConfig
from train.model import build, flops_per_token, parameter_count

CHINCHILLA_TOKENS_PER_PARAM = 20


class Distributed:
    """Process-group facts; a single process when not launched by torchrun/deepspeed."""

    def __init__(self, cfg: PretrainConfig) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        backend = cfg.distributed.backend
        self.kind = "deepspeed" if backend == "deepspeed" else ("ddp" if self.world > 1 else "none")
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.kind == "ddp":
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        elif self.kind == "deepspeed":
            import deepspeed

            deepspeed.init_distributed("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.kind != "none":
            torch.distributed.barrier()

    def close(self) -> None:
        if self.kind != "none" and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def lr_at(step: int, cfg: PretrainConfig) -> float:
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps)
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas)


def _precision(cfg: PretrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.optim.precision == "fp32":
        return None
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if cfg.optim.precision == "bf16" and not supported and device.type == "cuda":
        raise ConfigError("optim.precision: bf16 is not supported on this GPU")
    if cfg.optim.precision == "bf16" or (cfg.optim.precision == "auto" and supported):
        return torch.bfloat16
    return None


def config_hash(cfg: PretrainConfig) -> str:
    """What decides the data order and model: resuming with another config is refused."""
    keep = cfg.model_dump(mode="json", exclude={"eval", "checkpoint", "log"})
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def model_inputs(tokens: torch.Tensor, eos: int, document_masking: bool, dtype: torch.dtype) -> dict[str, Any]:
    """Model kwargs for a (B, L) batch: with document masking, positions restart and attention stays inside each
    document (a 4D block-causal additive mask)."""
    if not document_masking:
        return {"input_ids": tokens}
    pos, doc = data_mod.document_positions(tokens.cpu().numpy(), eos)
    doc_t = torch.from_numpy(doc).to(tokens.device)
    L = tokens.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
    allowed = causal[None] & (doc_t[:, :, None] == doc_t[:, None, :])
    mask = torch.zeros(allowed.shape, dtype=dtype, device=tokens.device).masked_fill(~allowed, torch.finfo(dtype).min)
    return {"input_ids": tokens, "position_ids": torch.from_numpy(pos).to(tokens.device), "attention_mask": mask[:, None]}


class Pretrainer:
    def __init__(self, cfg: PretrainConfig, resume: str | None = None) -> None:
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.dist = Distributed(cfg)
        self.out = Path(cfg.out)
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
        self.eos = self.tokenizer.eos_token_id
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        if self.dist.main:
            self.data = data_mod.prepare(Path(cfg.corpus), Path(cfg.tokenizer), cfg.data, cfg.seed)
        self.dist.barrier()
        if not self.dist.main:
            self.data = data_mod.prepare(Path(cfg.corpus), Path(cfg.tokenizer), cfg.data, cfg.seed)
        o = cfg.optim
        self.global_batch = o.batch_size * o.grad_accum * self.dist.world
        self.sampler = data_mod.sampler(self.data, cfg.data, o.max_steps * self.global_batch, cfg.seed)
        special = {"bos": self.tokenizer.bos_token_id, "eos": self.eos, "pad": self.tokenizer.pad_token_id}
        self.model = build(cfg.model, len(self.tokenizer), cfg.data.seq_len, special).to(self.dist.device)
        if o.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.optimizer = _optimizer(self.model, cfg)
        self.autocast = _precision(cfg, self.dist.device)
        self.step = 0
        self.tokens_by_domain: dict[str, int] = {d: 0 for d in self.data.weights}
        self.engine: Any = None
        self.module = self.model
        if self.dist.kind == "deepspeed":
            self._init_deepspeed()
        if resume:
            path = checkpoint.find(self.out, resume)
            state = checkpoint.load(path, None if self.engine else self.model, None if self.engine else self.optimizer)
            if state["config_hash"] != config_hash(cfg):
                raise ConfigError("--resume: the checkpoint was made with another config (model, data or optimizer "
                                  "settings differ); start a new output directory")
            if self.engine is not None:  # partitioned optimizer state: DeepSpeed's own format
                self.engine.load_checkpoint(str(path / "deepspeed"), tag="state")
            self.step = state["step"]
            self.tokens_by_domain = state["tokens_by_domain"]
        if self.dist.kind == "ddp":
            ids = [self.dist.local_rank] if self.dist.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if o.compile:
            self.model = torch.compile(self.model)
        self.eval_sets = {d: torch.from_numpy(data_mod.eval_sequences(s, cfg.data.seq_len, cfg.eval.tokens_per_domain))
                          for d, s in self.data.heldout.items()}

    def _init_deepspeed(self) -> None:
        import deepspeed

        o = self.cfg.optim
        ds = {"train_micro_batch_size_per_gpu": o.batch_size, "gradient_accumulation_steps": o.grad_accum,
              "zero_optimization": {"stage": self.cfg.distributed.zero_stage}, "zero_allow_untested_optimizer": True,
              "bf16": {"enabled": self.autocast is torch.bfloat16}, "steps_per_print": 10**9}
        if o.grad_clip:
            ds["gradient_clipping"] = o.grad_clip
        ds.update(self.cfg.distributed.deepspeed)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=self.module, optimizer=self.optimizer,
                                                                 config=ds)
        self.model = self.engine
        self.autocast = None  # DeepSpeed casts itself

    # -- reporting -----------------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        total, non_emb = parameter_count(self.module)
        L = self.cfg.data.seq_len
        tokens = len(self.sampler) * L
        plan = {"parameters": total, "non_embedding_parameters": non_emb, "seq_len": L,
                "global_batch_sequences": self.global_batch, "steps": self.cfg.optim.max_steps, "tokens": tokens,
                "tokens_per_parameter": tokens / total, "chinchilla_tokens_per_parameter": CHINCHILLA_TOKENS_PER_PARAM,
                "flops": flops_per_token(self.module, L) * tokens, "world_size": self.dist.world,
                "domains": {d: {"weight": self.sampler.counts[d] / max(1, len(self.sampler)),
                                "tokens_to_draw": self.sampler.counts[d] * L,
                                "tokens_available": self.sampler.available[d] * L,
                                "epochs": self.sampler.counts[d] / max(1, self.sampler.available[d]),
                                "heldout_tokens": self.data.heldout[d].tokens}
                            for d in self.sampler.domains}}
        return plan

    def print_plan(self, plan: dict[str, Any]) -> None:
        ratio = plan["tokens_per_parameter"]
        log.info(f"model: {plan['parameters']:,} parameters ({plan['non_embedding_parameters']:,} non-embedding)")
        log.info(f"data: {plan['tokens']:,} tokens = {plan['steps']} steps x {plan['global_batch_sequences']} "
                 f"sequences x {plan['seq_len']}; {ratio:.1f} tokens/parameter (Chinchilla ~{CHINCHILLA_TOKENS_PER_PARAM}"
                 f"{', under-trained' if ratio < CHINCHILLA_TOKENS_PER_PARAM else ''}); {plan['flops']:.3g} FLOPs")
        log.info(self.sampler.table())

    # -- the loop ------------------------------------------------------------------------------------------------
    def _micro_batch(self, step: int, micro: int) -> tuple[torch.Tensor, list[str]]:
        o = self.cfg.optim
        start = step * self.global_batch + (micro * self.dist.world + self.dist.rank) * o.batch_size
        arr, names = self.sampler.batch(start, o.batch_size)
        return torch.from_numpy(arr).to(self.dist.device), names

    def _loss(self, tokens: torch.Tensor) -> torch.Tensor:
        x, y = tokens[:, :-1], tokens[:, 1:]
        ctx = torch.autocast(self.dist.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with ctx:
            kwargs = model_inputs(x, self.eos, self.cfg.data.document_masking, torch.float32)
            logits = self.model(**kwargs, use_cache=False).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    def train_step(self) -> dict[str, float]:
        o = self.cfg.optim
        lr = lr_at(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(o.grad_accum):
            tokens, names = self._micro_batch(self.step, micro)
            for n in names:
                self.tokens_by_domain[n] += self.cfg.data.seq_len
            sync = self.dist.kind != "ddp" or micro == o.grad_accum - 1
            with nullcontext() if sync else self.model.no_sync():
                loss = self._loss(tokens)
                if self.engine is not None:
                    self.engine.backward(loss)
                    self.engine.step()
                else:
                    (loss / o.grad_accum).backward()
            total += loss.item() / o.grad_accum
        if self.dist.kind != "none":  # log the global batch's loss, not this rank's share
            t = torch.tensor([total], device=self.dist.device)
            torch.distributed.all_reduce(t)
            total = t.item() / self.dist.world
        grad_norm = float("nan")
        if self.engine is None:
            if o.grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"loss": total, "lr": lr, "grad_norm": grad_norm}

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        self.model.eval()
        out = {}
        for d, seqs in self.eval_sets.items():
            if len(seqs) == 0:
                continue
            losses = [self._loss(seqs[i:i + self.cfg.optim.batch_size].to(self.dist.device)).item()
                      for i in range(0, len(seqs), self.cfg.optim.batch_size)]
            sizes = [len(seqs[i:i + self.cfg.optim.batch_size]) for i in range(0, len(seqs), self.cfg.optim.batch_size)]
            loss = float(np.average(losses, weights=sizes))
            out[d] = {"loss": loss, "ppl": math.exp(min(loss, 50))}
        self.model.train()
        return out

    def _state(self) -> dict[str, Any]:
        return {"config_hash": config_hash(self.cfg), "sequences_consumed": self.step * self.global_batch,
                "tokens_by_domain": self.tokens_by_domain}

    def save_checkpoint(self) -> None:
        extra = None
        if self.engine is not None:  # every rank writes its partition into the checkpoint's deepspeed/ folder
            extra = self.out / "checkpoints" / f".deepspeed-{self.step:07d}"
            self.engine.save_checkpoint(str(extra), tag="state")
        if self.dist.main:
            checkpoint.save(self.out / "checkpoints", self.step, None if self.engine else self.module,
                            None if self.engine else self.optimizer, self._state(), self.cfg.checkpoint.keep,
                            extra={"deepspeed": extra} if extra else None)
        self.dist.barrier()

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The whole model's weights on the main process (gathered from ZeRO-3 partitions when needed)."""
        if self.engine is not None and self.cfg.distributed.zero_stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return self.module.state_dict() if self.dist.main else None

    def run(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``optim.max_steps`` (or only to ``stop_at``, then checkpoint and return)."""
        cfg, main = self.cfg, self.dist.main
        end = min(cfg.optim.max_steps, stop_at) if stop_at is not None else cfg.optim.max_steps
        self.out.mkdir(parents=True, exist_ok=True)
        plan = self.plan()
        if main:
            self.print_plan(plan)
            (self.out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
            (self.out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
        writer = _tensorboard(self.out / "tb") if main and cfg.log.tensorboard else None
        metrics = open(self.out / "metrics.jsonl", "a", encoding="utf-8") if main else None
        from tqdm import tqdm

        bar = tqdm(total=cfg.optim.max_steps, initial=self.step, desc="pretrain", unit="step",
                   disable=not (main and bars_enabled()), dynamic_ncols=True)
        tokens_per_step = self.global_batch * cfg.data.seq_len
        last = time.time()
        last_eval: dict[str, Any] = {}
        self.model.train()
        try:
            while self.step < end:
                stats = self.train_step()
                bar.update(1)
                record: dict[str, Any] = {"step": self.step, "tokens": self.step * tokens_per_step, **stats}
                if self.step % cfg.log.every == 0 or self.step == cfg.optim.max_steps:
                    now = time.time()
                    steps_done = self.step % cfg.log.every or cfg.log.every
                    record["tokens_per_s"] = steps_done * tokens_per_step / max(now - last, 1e-9)
                    last = now
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                if self.step % cfg.eval.every == 0 or self.step == cfg.optim.max_steps:
                    last_eval = self.evaluate()
                    record["eval"] = last_eval
                if main and metrics is not None:
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    if writer is not None:
                        _log_tb(writer, record)
                if self.step % cfg.checkpoint.every == 0 or self.step in (cfg.optim.max_steps, end):
                    self.save_checkpoint()
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
            if writer is not None:
                writer.close()
        weights = self.full_state_dict() if self.step == cfg.optim.max_steps else None
        if main and self.step == cfg.optim.max_steps:
            final = self.out / "final"
            self.module.save_pretrained(str(final), state_dict=weights)
            self.tokenizer.save_pretrained(str(final))
            summary = {"steps": self.step, "tokens_by_domain": self.tokens_by_domain, "eval": last_eval}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.dist.close()
        return {"plan": plan, "eval": last_eval, "tokens_by_domain": self.tokens_by_domain, "steps": self.step}


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
        return None
    return SummaryWriter(str(path))


def _log_tb(writer: Any, record: dict[str, Any]) -> None:
    step = record["step"]
    for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
        if k in record and record[k] == record[k]:
            writer.add_scalar(f"train/{k}", record[k], step)
    for d, m in record.get("eval", {}).items():
        writer.add_scalar(f"eval/{d}/loss", m["loss"], step)
