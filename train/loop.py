"""The training loop every `train` command shares (pretraining and SFT): optimizer and schedule, gradient
accumulation and clipping, mixed precision, DDP / DeepSpeed, per-set evaluation, metrics, checkpoints and exact
resume. A task subclasses :class:`Trainer` and supplies its batches, evaluation sets, plan and final save.

Resuming refuses a checkpoint only when what was trained so far would differ (:meth:`Trainer.resume_fields`: model,
data, tokenizer, seed, global batch); other settings may change, e.g. a raised ``optim.max_steps`` (or
``optim.epochs``) extends a run and the learning-rate schedule follows it. Each such change is logged and kept in
later checkpoints' ``resumes``.

Progress: a tqdm bar on a terminal; without one, a line every ``log.every`` steps (step, loss, lr, tokens/s, ETA).
Each evaluation is printed. ``metrics.jsonl`` gets one record per ``log.every`` steps (their mean loss and gradient
norm, the last step's learning rate, tokens/s), plus a record at an evaluation that falls between; a task's
per-step values (:meth:`Trainer.per_step`, e.g. DoReMi's domain weights) go to ``steps.jsonl``. Under DDP and
DeepSpeed only rank 0 prints (the other ranks' console shows errors only).

``optim.epochs`` sets ``optim.max_steps`` to ``ceil(epochs x rows per epoch / global batch)``, the rows of one epoch
being the task's (:meth:`Trainer.rows_per_epoch`). ``eval.early_stopping`` stops a run whose held-out loss (the mean
over the evaluation sets) has not improved by ``min_delta`` for ``patience`` evaluations; each improving evaluation
is checkpointed, that checkpoint is never pruned by ``checkpoint.keep``, and the final model is its weights."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mixlab.errors import ConfigError, RunError, storage_problem
from mixlab.logs import bars_enabled, bar_safe_console, log
from train import checkpoint
from train.config import TrainConfig

IGNORE = -100


class Batch(NamedTuple):
    inputs: dict[str, torch.Tensor]  # model kwargs (input_ids, maybe position_ids / attention_mask)
    labels: torch.Tensor  # next-token targets aligned with input_ids, IGNORE where no loss
    names: list[str]  # the domain or dataset of each row


class Distributed:
    """Process-group facts; a single process when not launched by torchrun/deepspeed."""

    def __init__(self, backend: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.kind = "deepspeed" if backend == "deepspeed" else ("ddp" if self.world > 1 else "none")
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
            # DeepSpeed, imported by transformers' save_pretrained (through accelerate) whenever it is installed,
            # warns on its first import that it found no accelerator; this tells it the one in use
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if self.rank != 0:
            follower_console()
        if self.kind == "ddp":
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        elif self.kind == "deepspeed":
            _check_deepspeed_launch()
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


def follower_console() -> None:
    """On a process other than rank 0: mixlab's console shows errors only, and DeepSpeed's log warnings and errors
    (rank 0 prints progress, evaluations and warnings once; run logs in files are unchanged)."""
    for handler in log.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)


def numel(p: torch.Tensor) -> int:
    """Elements of parameter ``p``, also under DeepSpeed ZeRO-3 (whose partitioned parameters are empty on each
    process and record their full size as ``ds_numel``)."""
    return int(getattr(p, "ds_numel", p.numel()))


LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _check_deepspeed_launch() -> None:
    """ConfigError unless DeepSpeed is installed and this process was told its rank (by a launcher, or MPI)."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("distributed.backend: deepspeed is not installed (pip install deepspeed)")
    missing = [v for v in LAUNCH_ENV if v not in os.environ]
    mpi = "OMPI_COMM_WORLD_RANK" in os.environ and importlib.util.find_spec("mpi4py") is not None
    if missing and not mpi:
        raise ConfigError(f"distributed.backend: deepspeed needs a launcher ({', '.join(missing)} unset): run "
                          "`deepspeed --num_gpus N $(which train) COMMAND CONFIG` or `torchrun --nproc-per-node N "
                          "$(which train) COMMAND CONFIG`; for one process, set RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 "
                          "MASTER_ADDR=127.0.0.1 MASTER_PORT=29500")


def lr_at(step: int, optim: Any) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio x lr`` at ``max_steps``."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = (step - optim.warmup_steps) / max(1, optim.max_steps - optim.warmup_steps)
    return optim.lr * (optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizer(model: torch.nn.Module, optim: Any) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms and biases. Only trainable parameters (e.g. LoRA's) are optimized."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates every tensor in one pass (2.5x faster than the per-tensor loop on CPU, see
    # benchmarks/RESULTS.md); it needs floating-point parameters on CPU or CUDA.
    fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr, betas=optim.betas, fused=fused or None)


def precision(optim: Any, device: torch.device) -> torch.dtype | None:
    if optim.precision == "fp32":
        return None
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if optim.precision == "bf16" and not supported and device.type == "cuda":
        raise ConfigError("optim.precision: bf16 is not supported on this GPU")
    if optim.precision == "bf16" or (optim.precision == "auto" and supported):
        return torch.bfloat16
    return None


RESUME_FREE = ("out", "optim", "eval", "checkpoint", "log", "distributed", "data.workers", "data.on_error")
"""config sections a resumed run may change: they decide how training goes on, not what was trained so far (the
optimizer's batch settings count through the global batch in :meth:`Trainer.resume_fields`)"""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as ``{"a.b.c": leaf}`` (lists and empty objects are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


_UNSET = object()


def _show(value: Any) -> str:
    text = "unset" if value is _UNSET else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(before: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose JSON values differ between two flat dicts: key -> (before, now), ``_UNSET`` where absent."""
    norm = json.loads(json.dumps([before, now]))
    return {k: (norm[0].get(k, _UNSET), norm[1].get(k, _UNSET)) for k in sorted(set(norm[0]) | set(norm[1]))
            if norm[0].get(k, _UNSET) != norm[1].get(k, _UNSET)}


RUN_FILES = ("plan.json", "config.json", "metrics.jsonl", "steps.jsonl", "summary.json", "tb", "checkpoints",
             ".final.tmp")
"""what a run writes into its output before its first checkpoint (and removes again if it stops before one)"""


def check_output(out: Path, resume: str | None) -> bool:
    """Refuse (ConfigError) to start a run in an output directory that holds anything, unless ``resume`` is given:
    its files would be overwritten or appended to, and its checkpoints mixed with the new run's. True when ``out``
    is absent or empty (a new run), False when resuming into a non-empty one."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file, not a directory")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        return True
    if resume:
        return False
    steps = sorted(p.name for p in (out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    held = f"a run with checkpoints up to {steps[-1]}" if steps else \
        f"{', '.join(entries[:3])}{f' and {len(entries) - 3} more' if len(entries) > 3 else ''}"
    raise ConfigError(f"out: {out} is not empty (it holds {held}): add --resume to continue the run there, or give "
                      "another or an empty out")


def continue_hint(out: Path) -> str:
    """How to go on after a run into ``out`` stopped early: resume from its last checkpoint, or run again."""
    steps = sorted(p for p in (out / "checkpoints").glob("step-*") if p.is_dir())
    if steps:
        return f"`--resume` continues from the last checkpoint ({steps[-1]})"
    return "no checkpoint was written yet: run the same command again to start over"


class Trainer:
    """The loop. Subclasses set ``self.model`` (then call :meth:`setup`) and implement the hooks below."""

    task = "train"

    def __init__(self, cfg: TrainConfig, resume: str | None = None) -> None:
        """Check the output directory (:func:`check_output`) before anything else, then set up processes and
        seeds."""
        self.cfg = cfg
        self.out = Path(cfg.out)
        self._created_out = not self.out.exists()
        self._new_out = check_output(self.out, resume)
        self.dist = Distributed(cfg.distributed.backend)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.step = 0
        self.engine: Any = None
        self.model: Any = None
        self.module: Any = None
        self.resumes: list[dict[str, Any]] = []  # settings changed at each resume, kept in every later checkpoint
        self._resume: tuple[Path, dict[str, Any]] | None = None
        self._steps_planned = False
        self.early: dict[str, Any] = {"best_loss": None, "best_step": None, "evals_without_improvement": 0}
        """early-stopping state (``eval.early_stopping``), kept in checkpoints"""
        self._window: list[dict[str, Any]] = []  # the steps since the last metrics record: loss, lr, grad_norm
        self.final_step = 0
        self.final_eval: dict[str, dict[str, float]] = {}
        """the step and held-out evaluation of the weights :meth:`save_final` saves (early stopping: the best)"""

    # -- hooks ---------------------------------------------------------------------------------------------------
    def micro_batch(self, step: int, micro: int) -> Batch:
        raise NotImplementedError

    def eval_batches(self) -> dict[str, list[Batch]]:
        raise NotImplementedError

    def plan(self) -> dict[str, Any]:
        return {}

    def print_plan(self, plan: dict[str, Any]) -> None:
        pass

    def state(self) -> dict[str, Any]:
        """Task state saved in checkpoints (besides the step)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def on_batch(self, batch: Batch) -> None:
        pass

    def after_optimizer_step(self) -> None:
        """Called after each optimizer step, gradients still in place."""

    def per_step(self) -> dict[str, Any]:
        """Values to record after every step into ``steps.jsonl`` (floats or device scalars; none by default)."""
        return {}

    def rows_per_epoch(self) -> int:
        """Rows (sequences) of one pass over the training data, for ``optim.epochs``. Tasks that support epochs
        override this; the default raises ConfigError."""
        raise ConfigError(f"optim.epochs: `train {self.task}` takes optim.max_steps only")

    def save_final(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        raise NotImplementedError

    def resume_fields(self) -> dict[str, Any]:
        """What decided the training so far, as flat ``key -> JSON value``: a checkpoint is resumed only with the
        same values. By default every config key outside :data:`RESUME_FREE` (model, data, tokenizer, seed, ...),
        the global batch (the data order's unit) and the checkpoint format. Tasks add what else they depend on."""
        flat = flatten(self.cfg.model_dump(mode="json"))
        fields = {k: v for k, v in flat.items() if not any(k == p or k.startswith(p + ".") for p in RESUME_FREE)}
        fields["global batch (optim.batch_size x optim.grad_accum x processes)"] = self.global_batch
        fields["checkpoint format (distributed.backend)"] = (
            f"deepspeed ZeRO-{self.cfg.distributed.zero_stage} on {self.dist.world} processes"
            if self.dist.kind == "deepspeed" else "torch")
        return fields

    def settings(self) -> dict[str, Any]:
        """The config keys a resumed run may change (flat ``key -> JSON value``); changes are logged and recorded."""
        fields = self.resume_fields()
        return {k: v for k, v in flatten(self.cfg.model_dump(mode="json")).items() if k not in fields}

    # -- setup ---------------------------------------------------------------------------------------------------
    @property
    def global_batch(self) -> int:
        o = self.cfg.optim
        return o.batch_size * o.grad_accum * self.dist.world

    def plan_steps(self) -> None:
        """With ``optim.epochs``: set ``optim.max_steps`` to ``ceil(epochs x rows_per_epoch() / global batch)`` (once;
        :meth:`setup` calls it, a task whose data plan needs the step count calls it earlier). ConfigError when the
        task has no epochs or no training rows."""
        o = self.cfg.optim
        if o.epochs is None or self._steps_planned:
            return
        rows = self.rows_per_epoch()
        if rows < 1:
            raise ConfigError("optim.epochs: there are no training rows to make an epoch of")
        steps = max(1, math.ceil(o.epochs * rows / self.global_batch))
        self.cfg.optim = o.model_copy(update={"max_steps": steps})
        self._steps_planned = True
        if self.dist.main:
            log.info(f"optim.epochs {o.epochs:g}: {steps:,} steps ({rows:,} rows per epoch, {self.global_batch} rows "
                     "per step)")

    def setup(self, resume: str | None) -> None:
        """After the subclass built ``self.model``: step count (:meth:`plan_steps`), optimizer, precision, engines,
        and resume."""
        self.plan_steps()
        o = self.cfg.optim
        self.model = self.model.to(self.dist.device)
        if o.gradient_checkpointing:  # transformers 5's name (gradient_checkpointing_enable warns FutureWarning)
            self.model.activation_checkpointing_enable()
        self.module = self.model
        self.optimizer = make_optimizer(self.model, o)
        self.autocast = precision(o, self.dist.device)
        if self.dist.kind == "deepspeed":
            self._init_deepspeed()
        if resume:
            state = self.open_checkpoint(resume)
            assert state is not None and self._resume is not None
            path = self._resume[0]
            self._check_resumed_settings(path, state)
            checkpoint.load(path, None if self.engine else self.module, None if self.engine else self.optimizer)
            if self.engine is not None:  # partitioned optimizer state: DeepSpeed's own format
                folder = checkpoint.check_deepspeed_files(path)
                try:
                    loaded, _ = self.engine.load_checkpoint(str(folder), tag="state")
                except (RuntimeError, KeyError, ValueError) as e:
                    raise ConfigError(f"--resume: {folder} does not fit this model ({e})") from None
                if loaded is None:
                    raise ConfigError(f"--resume: DeepSpeed found no checkpoint for this process in {folder}")
            self.step = state["step"]
            self.early = {**self.early, **state.get("early_stopping", {})}
            self._window = list(state.get("metrics_window", []))
            self.load_state(state)
            if self.dist.main:
                log.info(f"resuming from {path} at step {self.step}")
        if self.dist.kind == "ddp":
            ids = [self.dist.local_rank] if self.dist.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if o.compile:
            self.model = torch.compile(self.model)

    def open_checkpoint(self, resume: str | None) -> dict[str, Any] | None:
        """Find and verify the checkpoint ``resume`` names and return its state (None without ``resume``).

        Refused with ConfigError, before any weights are read, when it was made with other
        :meth:`resume_fields` (naming each field, with its value there and here). :meth:`setup` calls this (and
        then refuses a checkpoint past ``optim.max_steps``, and logs and records changed settings); a task whose
        data plan depends on the checkpoint calls it earlier."""
        if not resume:
            return None
        if self._resume is not None:
            return self._resume[1]
        path, state = checkpoint.find(self.out, resume)
        saved = state.get("resume_fields")
        if not isinstance(saved, dict):
            raise ConfigError(f"--resume: {path / 'state.json'} records no config fields to compare")
        differ = differences(saved, self.resume_fields())
        if differ:
            shown = "; ".join(f"{k} {_show(a)} there, {_show(b)} here" for k, (a, b) in list(differ.items())[:4])
            more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
            raise ConfigError(f"--resume: {path} was trained with other values of what decides the training so far: "
                              f"{shown}{more}. Resume with the checkpoint's values, or train into a new output "
                              "directory")
        self._resume = (path, state)
        return state

    def _check_resumed_settings(self, path: Path, state: dict[str, Any]) -> None:
        """ConfigError for a checkpoint past ``optim.max_steps``; changed :meth:`settings` are logged and recorded
        in :attr:`resumes`."""
        o = self.cfg.optim
        if o.max_steps < state["step"]:
            given = f"optim.epochs: {o.epochs:g} ({o.max_steps} steps)" if o.epochs is not None else \
                f"optim.max_steps: {o.max_steps}"
            raise ConfigError(f"{given} is below the step of {path} ({state['step']}); a resumed run cannot train "
                              "fewer steps than it has")
        changed = differences(state.get("settings", {}), self.settings())
        self.resumes = [*state.get("resumes", [])]
        if changed:
            self.resumes.append({"step": state["step"], "changed": {k: [None if a is _UNSET else a,
                                                                        None if b is _UNSET else b]
                                                                    for k, (a, b) in changed.items()}})
            schedule = " (the learning-rate schedule follows the new values)" \
                if any(k in changed for k in ("optim.max_steps", "optim.warmup_steps", "optim.lr",
                                              "optim.min_lr_ratio")) else ""
            if self.dist.main:
                log.info(f"resuming at step {state['step']} with changed settings: "
                         + ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in changed.items()) + schedule)

    def _init_deepspeed(self) -> None:
        import deepspeed

        o = self.cfg.optim
        ds: dict[str, Any] = {"train_micro_batch_size_per_gpu": o.batch_size, "gradient_accumulation_steps": o.grad_accum,
                              "zero_optimization": {"stage": self.cfg.distributed.zero_stage},
                              "zero_allow_untested_optimizer": True,
                              "bf16": {"enabled": self.autocast is torch.bfloat16}, "steps_per_print": 10**9}
        if o.grad_clip:
            ds["gradient_clipping"] = o.grad_clip
        ds.update(self.cfg.distributed.deepspeed)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=self.module, optimizer=self.optimizer, config=ds)
        self.model = self.engine
        self.autocast = None  # DeepSpeed casts itself

    # -- steps ---------------------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> torch.Tensor:
        ctx = torch.autocast(self.dist.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with ctx:
            logits = self.model(**{"use_cache": False, **batch.inputs}).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch.labels.reshape(-1),
                               ignore_index=IGNORE)

    def train_step(self) -> dict[str, Any]:
        """One optimizer step. Loss and gradient norm stay on the device (tensors): reading them would make the
        host wait for the step to finish before it can queue the next one; :meth:`run` reads them in batches."""
        o = self.cfg.optim
        lr = lr_at(self.step, o)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.dist.device)
        for micro in range(o.grad_accum):
            batch = self.micro_batch(self.step, micro)
            self.on_batch(batch)
            sync = self.dist.kind != "ddp" or micro == o.grad_accum - 1
            with nullcontext() if sync else self.model.no_sync():
                loss = self.loss(batch)
                if self.engine is not None:
                    self.engine.backward(loss)
                    self.engine.step()
                else:
                    (loss / o.grad_accum).backward()
            total += loss.detach() / o.grad_accum
        if self.dist.kind != "none":  # log the global batch's loss, not this rank's share
            torch.distributed.all_reduce(total)
            total /= self.dist.world
        grad_norm: Any = float("nan")
        if self.engine is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if o.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip).detach()
            self.optimizer.step()
            self.after_optimizer_step()
            self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"loss": total, "lr": lr, "grad_norm": grad_norm}

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Mean loss (over target tokens) and perplexity per evaluation set."""
        self.model.eval()
        out = {}
        for name, batches in self.eval_batches().items():
            total, count = 0.0, 0
            for b in batches:
                n = int((b.labels != IGNORE).sum())
                if n:
                    total += self.loss(b).item() * n
                    count += n
            if count:
                out[name] = {"loss": total / count, "ppl": math.exp(min(total / count, 50))}
        self.model.train()
        return out

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        extra = None
        if self.engine is not None:  # every rank writes its partition into the checkpoint's deepspeed/ folder
            extra = self.out / "checkpoints" / f".deepspeed-{self.step:07d}"
            self.engine.save_checkpoint(str(extra), tag="state")
        if self.dist.main:
            state = {"sequences_consumed": self.step * self.global_batch, "resume_fields": self.resume_fields(),
                     "settings": self.settings(), "resumes": self.resumes, "early_stopping": self.early,
                     "metrics_window": [_plain(r) for r in self._window], **self.state()}
            checkpoint.save(self.out / "checkpoints", self.step, None if self.engine else self.module,
                            None if self.engine else self.optimizer, state, self.cfg.checkpoint.keep,
                            extra={"deepspeed": extra} if extra else None, protect=self.early["best_step"])
        self.dist.barrier()

    def load_best_weights(self) -> Path:
        """Load the weights of early stopping's best checkpoint (verified first) into the model; returns its
        path. RunError when it is missing or damaged."""
        path = self.out / "checkpoints" / f"step-{self.early['best_step']:07d}"
        try:
            checkpoint.verify(path)
        except checkpoint.Damaged as e:
            raise RunError(f"the best checkpoint (early stopping) cannot be read: {e}") from None
        if self.engine is not None:
            self.engine.load_checkpoint(str(checkpoint.check_deepspeed_files(path)), tag="state",
                                        load_module_only=True, load_optimizer_states=False,
                                        load_lr_scheduler_states=False)
        else:
            checkpoint.load(path, self.module, self.optimizer)
        return path

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The whole model's weights (gathered from ZeRO-3 partitions when needed); None = the module's own."""
        if self.engine is not None and self.cfg.distributed.zero_stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return None

    # -- run -----------------------------------------------------------------------------------------------------
    def run(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``optim.max_steps`` (or only to ``stop_at``, then checkpoint and return), or until early
        stopping stops. Returns ``plan``, ``eval`` (of the final model), ``steps``, ``finished`` (the final model
        was written) and the task's :meth:`state`.

        ConfigError when ``stop_at`` is not past the current step. A run that fails (a full disk: RunError naming
        the file) or is interrupted says how to go on (:func:`continue_hint`); one that stops before its first
        checkpoint in a new output directory first removes what it wrote there, so the same command starts over."""
        if stop_at is not None and stop_at <= self.step:
            raise ConfigError(f"--stop-at {stop_at}: must be past the step the run starts at ({self.step})")
        try:
            result = self._run(stop_at)
        except BaseException as e:
            if self.dist.main:
                self._discard_partial_run()
            if isinstance(e, KeyboardInterrupt):
                raise KeyboardInterrupt(continue_hint(self.out)) from None
            if isinstance(e, OSError) and (problem := storage_problem(e)) is not None:
                raise RunError(f"{problem}; {continue_hint(self.out)}") from e
            if isinstance(e, RunError):
                raise RunError(f"{e}; {continue_hint(self.out)}") from e
            raise
        self.dist.close()
        return result

    def _discard_partial_run(self) -> None:
        """After a run into a new output directory stopped before its first checkpoint: remove what it wrote."""
        checkpoints = self.out / "checkpoints"
        if not self._new_out or (checkpoints.is_dir() and any(p.is_dir() for p in checkpoints.glob("step-*"))):
            return
        try:
            for name in RUN_FILES:
                path = self.out / name
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            if self._created_out:
                self.out.rmdir()
        except OSError:  # a read-only or vanished directory: the error being raised says more
            pass

    def _write_json(self, name: str, value: Any, what: str) -> None:
        path = self.out / name
        with checkpoint.writing(path, what):
            path.write_text(json.dumps(value, indent=2) + "\n")

    def _save_final_model(self, weights: dict[str, torch.Tensor] | None) -> None:
        """:meth:`save_final` into a temporary directory, renamed to ``final/`` once complete."""
        final, tmp = self.out / "final", self.out / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with checkpoint.writing(final, "the final model"):
            try:
                self.save_final(tmp, weights)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def stopped_early(self) -> bool:
        """Whether early stopping's patience has run out (judged with the current ``eval.early_stopping``)."""
        es = self.cfg.eval.early_stopping
        return es is not None and self.early["evals_without_improvement"] >= es.patience

    def _early_stopping(self, evaluation: dict[str, dict[str, float]]) -> bool:
        """Update the early-stopping state after an evaluation at this step; True when the held-out loss (the mean
        over the sets) improved on the best by more than ``min_delta`` (the first evaluation always does)."""
        es = self.cfg.eval.early_stopping
        if es is None or not evaluation:
            return False
        loss = sum(m["loss"] for m in evaluation.values()) / len(evaluation)
        best = self.early["best_loss"]
        if best is None or loss < best - es.min_delta:
            self.early = {"best_loss": loss, "best_step": self.step, "best_eval": evaluation,
                          "evals_without_improvement": 0}
            return True
        self.early["evals_without_improvement"] += 1
        return False

    def _eval_line(self, evaluation: dict[str, dict[str, float]]) -> str:
        sets = " | ".join(f"{d} loss {m['loss']:.4f} ppl {m['ppl']:.2f}" for d, m in evaluation.items())
        line = f"step {self.step} eval: {sets or 'no held-out data'}"
        if len(evaluation) > 1:
            line += f"; mean loss {sum(m['loss'] for m in evaluation.values()) / len(evaluation):.4f}"
        es, e = self.cfg.eval.early_stopping, self.early
        if es is not None and e["best_step"] is not None:
            line += (f"; best {e['best_loss']:.4f} at step {e['best_step']}, {e['evals_without_improvement']} of "
                     f"{es.patience} evaluations without improvement")
        return line

    def _run(self, stop_at: int | None) -> dict[str, Any]:
        cfg, main = self.cfg, self.dist.main
        max_steps = cfg.optim.max_steps
        end = min(max_steps, stop_at) if stop_at is not None else max_steps
        with checkpoint.writing(self.out, "the output directory"):
            self.out.mkdir(parents=True, exist_ok=True)
        plan = self.plan()
        if main:
            self.print_plan(plan)
            self._write_json("plan.json", plan, "the plan")
            self._write_json("config.json", cfg.model_dump(mode="json"), "the config")
        writer = _tensorboard(self.out / "tb") if main and cfg.log.tensorboard else None
        files = {name: self.out / name for name in ("metrics.jsonl", "steps.jsonl")}
        if main:
            for path in files.values():
                with checkpoint.writing(path, "the metrics"):
                    _trim_metrics(path, self.step)
        opened: dict[str, Any] = {}
        pending: dict[str, list[dict[str, Any]]] = {name: [] for name in files}  # records not yet written
        bars = main and bars_enabled()
        bar = tqdm(total=max_steps, initial=self.step, desc=self.task, unit="step", disable=not bars,
                   dynamic_ncols=True)
        pace = Pace(self.step, max_steps, self.tokens_per_step())
        last_eval: dict[str, Any] = {}
        stopped = self.stopped_early()
        self.model.train()

        def flush() -> None:
            for name, records in pending.items():
                if not records:
                    continue
                path = files[name]
                with checkpoint.writing(path, "the metrics"):
                    if name not in opened:
                        opened[name] = open(path, "a", encoding="utf-8")
                    opened[name].write("".join(json.dumps(_plain(r)) + "\n" for r in records))
                    opened[name].flush()
                if writer is not None and name == "metrics.jsonl":
                    for r in records:
                        _log_tb(writer, r)
                records.clear()

        failed = True
        try:
            with bar_safe_console() if bars else nullcontext():
                while self.step < end and not stopped:
                    self._window.append(self.train_step())
                    values = self.per_step()
                    if values and main:
                        pending["steps.jsonl"].append({"step": self.step, **values})
                    bar.update(1)
                    step = self.step
                    evaluated = step % cfg.eval.every == 0 or step == max_steps
                    improved = False
                    if evaluated:
                        with pace.paused():
                            last_eval = self.evaluate()
                        improved = self._early_stopping(last_eval)
                        stopped = self.stopped_early()
                    logged = step % cfg.log.every == 0 or step == max_steps or stopped
                    saved = step % cfg.checkpoint.every == 0 or step in (max_steps, end) or improved or stopped
                    record: dict[str, Any] | None = None
                    if logged:
                        record = window_record(self._window, step)
                        record["tokens_per_s"] = pace.tokens_per_s(step)
                        self._window = []
                        line = (f"step {step}/{max_steps}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
                                f"{record['tokens_per_s']:,.0f} tokens/s  ETA {_duration(pace.eta(step))}")
                        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:,.0f}")
                        if main:
                            log.log(logging.DEBUG if bars else logging.INFO, line)
                    if evaluated:
                        record = {**(record or {"step": step}), "eval": last_eval}
                        if main:
                            log.info(self._eval_line(last_eval))
                    if record is not None and main:
                        pending["metrics.jsonl"].append(record)
                    if record is not None or saved:
                        flush()
                    if saved:
                        with pace.paused():
                            self.save_checkpoint()
            failed = False
        finally:
            bar.close()
            for finish in (flush, *(f.close for f in opened.values()), getattr(writer, "close", None)):
                try:
                    if finish is not None:
                        finish()
                except (OSError, RunError):  # a full disk: reported by the write that failed first
                    if not failed:
                        raise
        self.final_step, self.final_eval = self.step, last_eval
        if stopped or self.step == max_steps:
            summary: dict[str, Any] = {}
            if cfg.eval.early_stopping is not None and self.early["best_step"] is not None:
                best = self.load_best_weights()
                self.final_step, self.final_eval = self.early["best_step"], self.early["best_eval"]
                why = f"training stopped early at step {self.step}: the held-out loss did not improve by " \
                      f"{cfg.eval.early_stopping.min_delta:g} for {cfg.eval.early_stopping.patience} evaluations" \
                    if stopped else f"training ran to step {self.step}"
                summary["early_stopping"] = {**self.early, "stopped_early": stopped,
                                             "final_step": self.early["best_step"], "final_checkpoint": str(best)}
                summary["last_eval"] = last_eval
                if main:
                    log.info(f"{why}; the final model is the best checkpoint, {best.name} (held-out loss "
                             f"{self.early['best_loss']:.4f})")
            weights = self.full_state_dict()
            if main:
                self._save_final_model(weights)
                summary = {"steps": self.step, "eval": self.final_eval, **summary, "resumes": self.resumes,
                           **self.state()}
                self._write_json("summary.json", summary, "the summary")
        return {"plan": plan, "eval": self.final_eval, "steps": self.step,
                "finished": stopped or self.step == max_steps, **self.state()}

    def tokens_per_step(self) -> int:
        """Tokens processed per optimizer step (for tokens/s)."""
        return self.global_batch * int(self.cfg.data.seq_len)


class Pace:
    """Timing for the progress line: tokens/s over the training time since the last call (evaluations and
    checkpoints, run under :meth:`paused`, not counted), and the time left at the run's pace so far."""

    def __init__(self, step: int, total: int, tokens_per_step: int) -> None:
        self.first_step, self.total, self.tokens_per_step = step, total, tokens_per_step
        self.started = self.mark = time.monotonic()
        self.mark_step = step

    @contextmanager
    def paused(self) -> Iterator[None]:
        begun = time.monotonic()
        try:
            yield
        finally:
            self.mark += time.monotonic() - begun

    def tokens_per_s(self, step: int) -> float:
        now = time.monotonic()
        rate = (step - self.mark_step) * self.tokens_per_step / max(now - self.mark, 1e-9)
        self.mark, self.mark_step = now, step
        return rate

    def eta(self, step: int) -> float:
        """Seconds left to step ``total`` (NaN before the first step)."""
        done = step - self.first_step
        return (time.monotonic() - self.started) / done * (self.total - step) if done else float("nan")


def window_record(window: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """The metrics record of the steps in ``window`` (train-step records), ending at ``step``: the mean of each
    numeric value (the gradient norm over the steps that have one), the last step's learning rate, and ``steps``
    (how many steps it covers)."""
    record: dict[str, Any] = {"step": step, "steps": len(window)}
    for key in window[0] if window else ():
        values = [float(r[key]) for r in window if key in r]
        if key == "lr":
            record[key] = values[-1]
            continue
        if key == "grad_norm":  # NaN where none was computed (no clipping, or DeepSpeed's own)
            values = [v for v in values if v == v] or [float("nan")]
        record[key] = sum(values) / len(values)
    return record


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with device scalars read as floats (JSON-ready)."""
    return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in record.items()}


def _duration(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _trim_metrics(path: Path, step: int) -> None:
    """Keep only the records of steps up to ``step`` (the step a run resumes from) in ``path``: the steps a crashed
    run logged after its last checkpoint are trained again, and would otherwise appear twice. A partly written last
    line (a kill during a write) is dropped too."""
    if not path.exists():
        return
    kept, dropped = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
                keep = line.endswith("\n") and int(record["step"]) <= step
            except (ValueError, KeyError, TypeError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)
        log.info(f"{path}: dropped {dropped} record(s) after step {step}, the step this run resumes from")


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
