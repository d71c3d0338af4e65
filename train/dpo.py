"""`train dpo`: preference optimization on pairs of a chosen and a rejected answer, on the shared training loop
(`train/loop.py`: resume, checkpoints, evaluation, progress, DDP and DeepSpeed).

Loss (:func:`preference_loss`), from the summed log-probabilities of each answer's tokens under the policy and the
reference model (prompt tokens never count): DPO (Rafailov et al. 2023, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model", eq. 7) with β and label smoothing (cDPO, Mitchell 2023, "A note on DPO
with noisy preferences"); IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
Preferences", eq. 17) on log-ratios averaged over each answer's tokens, as trl computes it; and an optional SFT term
on the chosen answers (RPO: Pang et al. 2024, "Iterative Reasoning Preference Optimization"), the negative
log-likelihood per chosen token, as trl's ``loss_type=["sigmoid", "sft"]``. A pair's reward is β times the policy's
log-ratio to the reference; the metrics are the loss, the mean rewards of chosen and rejected answers, their mean
margin and the share of pairs whose chosen answer has the higher reward (accuracy), on training and held-out pairs.

Batches: a micro-batch of B pairs is 2B rows, the B chosen sequences then the B rejected ones, each row one
sequence (prompt + answer) padded on the right: nothing is packed, so the two answers of a pair never share a row.
The pair order is a seeded permutation per epoch, so step ``s`` always reads the same pairs and resuming is exact.

Reference model: with an adapter (LoRA, DoRA, IA3), the policy with its adapter disabled (peft's
``disable_adapter``), so no second model is held; when ``base`` is an adapter that trains further, a frozen copy of
that adapter as it starts, loaded beside it as a second adapter on the same base weights. ``reference: DIR``, or
``peft.method: full``, hold a frozen second model (``DIR``, or a copy of ``base``).
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import dpo_data, sft_data
from train.config import DPOConfig, DPOParams
from train.loop import IGNORE, Batch, Trainer, check_output, numel
from train.sft import (PEFT_WARNINGS, attach_adapter, chat_tokenizer, check_data_files, continued_config,
                       load_adapter, load_base)
from train.model import from_pretrained
from train.model_card import base_reference
from train.tokenizer import load_tokenizer

REFERENCE_ADAPTER = "reference"
"""the name of the frozen copy of a continued adapter, the reference model of such a run"""
METRICS = ("rewards_chosen", "rewards_rejected", "margin", "accuracy")
"""the per-pair metrics besides the loss, averaged over pairs"""


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the summed log-probability of the label tokens and their count. ``logits`` (N, L, V) predict
    ``labels`` (N, L): position t's logits score labels[t] (already shifted), IGNORE where nothing is scored."""
    mask = labels != IGNORE
    targets = labels.masked_fill(~mask, 0).unsqueeze(-1)
    logits = logits.float()
    token = torch.gather(logits, -1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (token * mask).sum(-1), mask.sum(-1)


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
                    params: DPOParams) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-pair loss (B,) and per-pair metrics from the summed answer log-probabilities (B,) of the policy and the
    reference model, and each answer's token count (B,).

    sigmoid (DPO; cDPO with label smoothing ε): ``-(1-ε)·log σ(βΔ) - ε·log σ(-βΔ)``, Δ = (π_c - ref_c) - (π_r -
    ref_r). ipo: ``((π_c - ref_c)/n_c - (π_r - ref_r)/n_r - 1/(2β))²``. Metrics: ``rewards_chosen`` β(π_c - ref_c),
    ``rewards_rejected``, ``margin`` (their difference) and ``accuracy`` (1 where the chosen reward is higher)."""
    chosen_ratio, rejected_ratio = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    beta = params.beta
    if params.loss == "ipo":
        delta = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        losses = (delta - 1 / (2 * beta)) ** 2
    else:
        delta = beta * (chosen_ratio - rejected_ratio)
        eps = params.label_smoothing
        losses = -F.logsigmoid(delta) * (1 - eps) - F.logsigmoid(-delta) * eps if eps else -F.logsigmoid(delta)
    chosen_reward, rejected_reward = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    metrics = {"rewards_chosen": chosen_reward, "rewards_rejected": rejected_reward,
               "margin": chosen_reward - rejected_reward, "accuracy": (chosen_reward > rejected_reward).float()}
    return losses, metrics


def collate(pairs: list[dpo_data.Pair], pad: int, device: torch.device) -> Batch:
    """2B rows for B pairs: the chosen sequences, then the rejected ones, right-padded to the longest; inputs
    ``input_ids`` and ``attention_mask`` (N, L-1) and labels shifted to align with them (N, L-1)."""
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    L = max(len(s.ids) for s in seqs)
    ids = np.full((len(seqs), L), pad, dtype=np.int64)
    labels = np.full((len(seqs), L), IGNORE, dtype=np.int64)
    attn = np.zeros((len(seqs), L), dtype=np.int64)
    for r, s in enumerate(seqs):
        n = len(s.ids)
        ids[r, :n], labels[r, :n], attn[r, :n] = s.ids, s.labels, 1
    inputs = {"input_ids": torch.from_numpy(ids[:, :-1]).to(device),
              "attention_mask": torch.from_numpy(attn[:, :-1]).to(device)}
    return Batch(inputs, torch.from_numpy(labels[:, 1:]).to(device), [p.name for p in pairs])


def check_before_work(cfg: DPOConfig, merge: bool) -> None:
    """Refuse, before any model or data is loaded (ConfigError, one line): ``--merge`` with ``peft.method: full``,
    a ``reference`` or ``tokenizer`` that is not a local directory, and data files mixlab cannot read."""
    if merge and cfg.peft.method == "full":
        raise ConfigError("--merge: peft.method full trains every weight and final/ is already the whole model; "
                          "there is no adapter to merge (drop --merge)")
    for what, path in (("base", cfg.base), ("tokenizer", cfg.tokenizer), ("reference", cfg.reference)):
        if path is not None and not Path(path).is_dir():
            raise ConfigError(f"{what}: {path} is not a local directory. Models are never downloaded (this runs "
                              "offline): give a saved model, e.g. the final/merged of `train sft`")
    check_data_files(cfg)  # type: ignore[arg-type]  # reads cfg.data.files only


def check_reference(path: str, reference: Any, base: Any, tokenizer: Any) -> None:
    """Refuse (ConfigError, one line) a reference model that cannot score the policy's tokens: an embedding table of
    another size than the base model's, or a tokenizer saved beside it whose vocabulary differs from the run's (the
    log-ratios of two models over different token ids mean nothing)."""
    ref_rows, base_rows = reference.get_input_embeddings().num_embeddings, base.get_input_embeddings().num_embeddings
    if ref_rows != base_rows:
        raise ConfigError(f"reference: {path} has {ref_rows:,} token embeddings, the base model {base_rows:,}; the "
                          "reference must use the base model's tokenizer (e.g. the SFT model the policy starts from)")
    if any((Path(path) / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        if load_tokenizer(path, "reference").get_vocab() != tokenizer.get_vocab():
            raise ConfigError(f"reference: the tokenizer saved in {path} differs from the run's tokenizer; the "
                              "reference must use the base model's tokenizer")


class DPOTrainer(Trainer):
    task = "dpo"

    def __init__(self, cfg: DPOConfig, resume: str | None = None, merge: bool = False) -> None:
        """Everything that can be refused is refused before data or weights are loaded (:func:`check_before_work`;
        an adapter ``base`` whose settings differ from the run's ``peft``), after the output directory."""
        check_output(Path(cfg.out), resume)
        check_before_work(cfg, merge)
        cfg, self.continued_base = continued_config(cfg)  # type: ignore[arg-type]  # reads base and peft only
        if cfg.peft.method not in ("lora", "ia3", "full"):
            raise ConfigError(f"base: {cfg.base} is a {cfg.peft.method} adapter; `train dpo` continues lora and ia3 "
                              "adapters (merge it with `train sft --merge` and give the merged model)")
        super().__init__(cfg, resume)
        self.tokenizer, self.chat = chat_tokenizer(cfg.tokenizer, cfg.base)
        d = cfg.data
        self.prepared = dpo_data.prepare([(Path(f.path), f.format, f.weight) for f in d.files], self.chat, d.max_len,
                                         d.heldout_fraction, cfg.seed)
        dpo_data.report(self.prepared)
        if self.prepared.problems and d.on_error == "fail":
            first = self.prepared.problems[0]
            raise ConfigError(f"data: {len(self.prepared.problems)} malformed records (first: {first.file} "
                              f"{first.location}: {first.reason}); fix them or set data.on_error: skip")
        self._epochs: dict[int, np.ndarray] = {}
        self.plan_steps()
        base = load_base(self.continued_base or cfg.base, cfg.peft.qlora)
        positions = getattr(base.config, "max_position_embeddings", None) or getattr(base.config, "n_positions", None)
        if positions is not None and d.max_len > positions:
            raise ConfigError(f"data.max_len: {d.max_len} is longer than the {positions} positions the base model "
                              f"{cfg.base} was built for; set data.max_len to {positions} or less")
        self.reference: Any = None
        if cfg.reference is not None:
            self.reference = _frozen(from_pretrained(cfg.reference, "reference", dtype=torch.float32))
            check_reference(cfg.reference, self.reference, base, self.tokenizer)
        elif cfg.peft.method == "full":
            self.reference = _frozen(copy.deepcopy(base))
        if self.continued_base is not None:
            self.model = load_adapter(base, cfg.base)
            if cfg.reference is None:
                with warnings.catch_warnings():
                    for message in PEFT_WARNINGS:
                        warnings.filterwarnings("ignore", message=message)
                    self.model.load_adapter(cfg.base, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
            log.info(f"base: {cfg.base} is a {cfg.peft.method} adapter on {self.continued_base}: it trains further"
                     + ("; the reference is a frozen copy of it" if cfg.reference is None else ""))
        else:
            self.model = attach_adapter(cfg, base)
        self._sums: dict[str, Any] = {}
        self.setup(resume)
        if self.reference is not None:
            self.reference.to(self.dist.device)
        log.info("reference model: " + self.reference_kind())

    # -- the reference model -------------------------------------------------------------------------------------
    def reference_kind(self) -> str:
        """The reference model, in words."""
        if self.cfg.reference is not None:
            return f"{self.cfg.reference} (a second, frozen model)"
        if self.reference is not None:
            return "a frozen copy of base (a second model)"
        if self.continued_base is not None:
            return f"the adapter as it started ({REFERENCE_ADAPTER!r}, frozen) on the same base weights"
        return "the policy with its adapter disabled (no second copy)"

    @contextmanager
    def _as_reference(self) -> Iterator[Any]:
        """The module to run as the reference model, inside no_grad."""
        with torch.no_grad():
            if self.reference is not None:
                yield self.reference
            elif self.continued_base is not None:
                self.module.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
                try:
                    yield self.module
                finally:
                    self.module.set_adapter("default")
            else:
                with self.module.disable_adapter():
                    yield self.module

    # -- data order ----------------------------------------------------------------------------------------------
    def rows_per_epoch(self) -> int:
        """Pairs of one epoch (a pair's two sequences count once: ``optim.batch_size`` is pairs)."""
        return len(self.prepared.train)

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.clear()
            self._epochs[epoch] = np.random.default_rng([self.cfg.seed, epoch, 0xD90]).permutation(
                len(self.prepared.train))
        return self._epochs[epoch]

    def micro_batch(self, step: int, micro: int) -> Batch:
        o = self.cfg.optim
        start = step * self.global_batch + (micro * self.dist.world + self.dist.rank) * o.batch_size
        n = len(self.prepared.train)
        pairs = [self.prepared.train[int(self._order(p // n)[p % n])] for p in range(start, start + o.batch_size)]
        return collate(pairs, self.tokenizer.pad_token_id, self.dist.device)

    def eval_batches(self) -> dict[str, list[Batch]]:
        """The held-out pairs in batches of ``optim.batch_size``: the first ones whose sequence tokens fit in
        ``eval.tokens_per_domain`` (at least one)."""
        B = self.cfg.optim.batch_size
        held, tokens = [], 0
        for pair in self.prepared.heldout:
            tokens += pair.tokens
            if held and tokens > self.cfg.eval.tokens_per_domain:
                break
            held.append(pair)
        return {"heldout": [collate(held[i:i + B], self.tokenizer.pad_token_id, self.dist.device)
                            for i in range(0, len(held), B)]} if held else {}

    # -- loss and metrics ----------------------------------------------------------------------------------------
    def pair_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(per-pair preference losses (B,), the SFT term (a scalar: NLL per chosen token), per-pair metrics)."""
        ctx = torch.autocast(self.dist.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with ctx:
            logits = self.model(**{"use_cache": False, **batch.inputs}).logits
        logps, counts = sequence_logps(logits[:, -batch.labels.shape[1]:], batch.labels)
        with self._as_reference() as reference, ctx:
            ref_logits = reference(**{"use_cache": False, **batch.inputs}).logits
            ref_logps, _ = sequence_logps(ref_logits[:, -batch.labels.shape[1]:], batch.labels)
        B = len(batch.names)
        losses, metrics = preference_loss(logps[:B], logps[B:], ref_logps[:B], ref_logps[B:], counts[:B], counts[B:],
                                          self.cfg.dpo)
        nll = -logps[:B].sum() / counts[:B].sum().clamp(min=1)
        return losses, nll, metrics

    def loss(self, batch: Batch) -> torch.Tensor:
        losses, nll, metrics = self.pair_losses(batch)
        for k, v in metrics.items():
            self._sums[k] = self._sums.get(k, 0) + v.sum()
        self._sums["pairs"] = self._sums.get("pairs", 0) + len(batch.names)
        loss = losses.mean()
        return loss + self.cfg.dpo.sft_weight * nll if self.cfg.dpo.sft_weight else loss

    def train_step(self) -> dict[str, Any]:
        """One optimizer step (the loop's), with the mean of each of :data:`METRICS` over its pairs (all
        processes)."""
        self._sums = {}
        record = super().train_step()
        sums = torch.stack([torch.as_tensor(self._sums[k], dtype=torch.float32, device=self.dist.device)
                            for k in (*METRICS, "pairs")])
        if self.dist.kind != "none":
            torch.distributed.all_reduce(sums)
        return {**record, **{k: sums[i] / sums[-1] for i, k in enumerate(METRICS)}}

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """On the held-out pairs: mean loss (with the SFT term, as trained), :data:`METRICS` and the pair count."""
        self.model.eval()
        out: dict[str, dict[str, float]] = {}
        for name, batches in self.eval_batches().items():
            totals = dict.fromkeys(("loss", *METRICS), 0.0)
            pairs = 0
            for b in batches:
                losses, nll, metrics = self.pair_losses(b)
                n = len(b.names)
                totals["loss"] += float(losses.sum()) + self.cfg.dpo.sft_weight * float(nll) * n
                for k, v in metrics.items():
                    totals[k] += float(v.sum())
                pairs += n
            if pairs:
                out[name] = {**{k: v / pairs for k, v in totals.items()}, "pairs": pairs}
        self.model.train()
        return out

    def _eval_line(self, evaluation: dict[str, dict[str, float]]) -> str:
        sets = " | ".join(f"{d}: loss {m['loss']:.4f} accuracy {m['accuracy']:.3f} margin {m['margin']:.4f} "
                          f"rewards chosen {m['rewards_chosen']:.4f} rejected {m['rewards_rejected']:.4f}"
                          for d, m in evaluation.items())
        return f"step {self.step} eval {sets or 'no held-out pairs'}"

    # -- reporting and saving ------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        total = sum(numel(p) for n, p in self.module.named_parameters() if f".{REFERENCE_ADAPTER}." not in n)
        pairs = len(self.prepared.train)
        return {"method": self.cfg.peft.method, "trainable_parameters": trainable, "parameters": total,
                "train_pairs": pairs, "heldout_pairs": len(self.prepared.heldout),
                "epochs": self.cfg.optim.max_steps * self.global_batch / max(1, pairs),
                "reference": self.reference_kind(), "dpo": self.cfg.dpo.model_dump(mode="json"),
                "data": self.prepared.summary, "unused_fields": self.prepared.unused}

    def print_plan(self, plan: dict[str, Any]) -> None:
        d = plan["dpo"]
        log.info(f"{plan['method']}: {plan['trainable_parameters']:,} trainable of {plan['parameters']:,} parameters; "
                 f"{plan['train_pairs']:,} pairs ({plan['heldout_pairs']:,} held out); {plan['epochs']:.2f} epochs; "
                 f"loss {d['loss']} (beta {d['beta']:g}"
                 + (f", label smoothing {d['label_smoothing']:g}" if d["label_smoothing"] else "")
                 + (f", SFT weight {d['sft_weight']:g}" if d["sft_weight"] else "") + ")")

    def tokens_per_step(self) -> int:
        """Sequence tokens (prompt and answer, both answers of a pair, no padding) per step, from the mean pair."""
        pairs = self.prepared.train
        return max(1, round(self.global_batch * sum(p.tokens for p in pairs) / max(1, len(pairs))))

    def save_final(self, directory: Path, weights: dict[str, torch.Tensor] | None) -> None:
        """The adapter (only the trained one), its tokenizer with the chat template trained on and
        ``mixlab_dpo.json`` into ``directory``/adapter; with ``peft.method: full`` the whole model and the rest into
        ``directory`` itself."""
        full = self.cfg.peft.method == "full"
        home = directory if full else directory / "adapter"
        if full:
            self.module.save_pretrained(str(home), state_dict=weights)
        else:
            if weights is not None:
                weights = {k: v for k, v in weights.items() if f".{REFERENCE_ADAPTER}." not in k}
            self.module.save_pretrained(str(home), state_dict=weights, selected_adapters=["default"])
        if not self.chat.own:
            self.tokenizer.chat_template = sft_data.DEFAULT_JINJA
        self.tokenizer.save_pretrained(str(home))
        meta = {"base": self.continued_base or self.cfg.base, "method": self.cfg.peft.method,
                "chat_format": "tokenizer" if self.chat.own else "default", "steps": self.final_step,
                "reference": self.reference_kind(), "dpo": self.cfg.dpo.model_dump(mode="json"),
                "peft": self.cfg.peft.model_dump(mode="json"), "optim": self.cfg.optim.model_dump(mode="json"),
                "data": {"files": [Path(f.path).name for f in self.cfg.data.files], "summary": self.prepared.summary},
                "heldout": self.final_eval.get("heldout")}
        if self.continued_base is not None:
            meta["continued_from"] = self.cfg.base
        (home / "mixlab_dpo.json").write_text(json.dumps(meta, indent=2) + "\n")
        final_home = self.out / "final" / ("" if full else "adapter")
        (home / "README.md").write_text(card(meta, final_home), encoding="utf-8")


def card(meta: dict[str, Any], home: Path) -> str:
    """A short model card (Markdown with the Hugging Face metadata block) of a `train dpo` result whose README.md
    lies in ``home`` (the base model is named by its path relative to it)."""
    d, held = meta["dpo"], meta.get("heldout")
    loss = {"sigmoid": "DPO", "ipo": "IPO"}[d["loss"]] + (" (cDPO)" if d["label_smoothing"] else "") + \
        (f" + SFT term x {d['sft_weight']:g} (RPO)" if d["sft_weight"] else "")
    lines = ["---", "library_name: " + ("transformers" if meta["method"] == "full" else "peft"),
             "pipeline_tag: text-generation", f"tags: [mixlab, dpo, {meta['method']}]", "---", "",
             f"# DPO {'model' if meta['method'] == 'full' else 'adapter'} ({meta['method']})", "",
             f"Preference optimization with `train dpo`: {loss}, beta {d['beta']:g}, {meta['steps']:,} optimizer "
             f"steps, on {', '.join(meta['data']['files'])}. Base model: `{base_reference(meta['base'], home)}`; "
             f"reference: {meta['reference']}.", ""]
    if held:
        lines += [f"Held-out pairs ({held['pairs']:,}): loss {held['loss']:.4f}, reward accuracy "
                  f"{held['accuracy']:.3f}, margin {held['margin']:.4f}.", ""]
    lines += ["`train generate <this directory>` chats with it in the format it was tuned on.", ""]
    return "\n".join(lines)


def _frozen(model: Any) -> Any:
    model.requires_grad_(False)
    return model.eval()

