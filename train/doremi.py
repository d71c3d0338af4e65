"""`train doremi`: domain weights learned by DoReMi (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up
Language Model Pretraining", Algorithm 1), on the shared loop.

1. A reference model (a :class:`~train.pretrain.Pretrainer` run) is trained on the reference mixture.
2. A proxy model of the same shape (:class:`DoReMiTrainer`, a ``Pretrainer``) is trained on batches drawn uniformly
   over domains (``doremi.sampling: uniform``, as in the paper) or by the reference weights. At each update the
   per-domain excess loss is the sum over the domain's target tokens in the batch of
   ``max(proxy token loss - reference token loss, 0)``, divided by that domain's token count; the weights follow
   :func:`update_weights` (exponentiated gradient, renormalized, smoothed towards uniform); the proxy's loss weights
   each domain's mean token loss by the new weights.
3. The result is the mean of the weights over all updates. With ``rounds`` > 1, round k's result is round k+1's
   reference mixture (iterated DoReMi).

The reference runs in inference mode, without gradients, under the proxy's autocast precision. A DoReMi update is one
micro-batch (the whole global batch across processes: excess losses and token counts are summed over processes, so
every process holds the same weights); with ``optim.grad_accum`` 1 (the default) it is one optimizer step.

Layout of OUT: ``tokenizer/`` (when none is given), ``round-K/reference/`` and ``round-K/proxy/`` (each a training
run's directory with ``final/`` and its model card ``final/README.md``), ``mixture.json``, ``eval.json``,
``trajectory.csv``, ``trajectory.png``. ``--resume`` continues a killed run: finished models are kept (after
checking they were trained with this config), the one in progress resumes from its last checkpoint, the weights and
their running sum included, so the result equals an uninterrupted run's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from mixlab.errors import ConfigError
from mixlab.logs import log
from train import checkpoint
from train import data as data_mod
from train.config import DataConfig, DoReMiConfig, DoReMiParams, PretrainConfig, weights_problem
from train.corpus import Corpus
from train.loop import IGNORE, RUN_FILES, Batch, check_output
from train.pretrain import Pretrainer
from train.tokenizer import MARKER, tokenizer_hash, train_tokenizer

PAPER = "Xie et al. 2023, DoReMi: Optimizing Data Mixtures Speeds Up Language Model Pretraining, Algorithm 1"


def update_weights(alpha: Any, excess: Any, present: Any, eta: float, smoothing: float) -> torch.Tensor:
    """One DoReMi weight update (exponentiated gradient on the excess loss, then smoothing), float64.

    ``alpha``: (k,) weights summing to 1; ``excess``: (k,) per-domain excess losses in nats per token; ``present``:
    (k,) bool, the domains that have target tokens in the batch (torch tensors or anything ``torch.as_tensor``
    takes). Returns the new (k,) weights, summing to 1.

    With every domain present this is Algorithm 1 of Xie et al. 2023: ``a = alpha * exp(eta * excess)``,
    ``a = a / sum(a)``, ``a = (1 - c) * a + c / k`` with ``c = smoothing``. A domain absent from the batch has no
    excess loss to learn from and keeps its weight exactly: the update runs on the present domains alone, inside the
    mass ``m`` they held, ``a_P = m * a_P / sum(a_P)`` then ``a_P = (1 - c) * a_P + c * m / n`` over the ``n``
    present domains, so the absent domains' weights and the sum (1) are unchanged. Nothing present: ``alpha``.
    """
    a = torch.as_tensor(alpha, dtype=torch.float64)
    e = torch.as_tensor(excess, dtype=torch.float64, device=a.device)
    p = torch.as_tensor(present, dtype=torch.bool, device=a.device)
    n = p.sum()
    if not bool(n):
        return a.clone()
    mass = a[p].sum()
    logits = torch.where(p, torch.log(a) + eta * torch.where(p, e, 0.0), -math.inf)
    new = mass * torch.softmax(logits, dim=0)
    new = (1 - smoothing) * new + smoothing * mass / n
    return torch.where(p, new, a)


def token_losses(model: torch.nn.Module, batch: Batch, autocast: torch.dtype | None) -> torch.Tensor:
    """(B, L) next-token cross-entropy of ``model`` on ``batch`` in nats, 0 where the label is ignored; logits
    computed under ``autocast`` (None: full precision), losses in float32."""
    device = batch.labels.device
    ctx = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
    with ctx:
        logits = model(**{"use_cache": False, **batch.inputs}).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch.labels.reshape(-1),
                           ignore_index=IGNORE, reduction="none").view(batch.labels.shape)


class ReferenceTrainer(Pretrainer):
    """The reference model: a plain pretraining run on the reference mixture."""

    task = "doremi reference"


class DoReMiTrainer(Pretrainer):
    """The proxy model: a pretraining run whose loss is DoReMi's weighted per-domain loss, updating the domain
    weights at every micro-batch against the reference model in ``reference`` (a saved model directory). The
    weights are over the domains of the sampler (those with a positive weight in ``cfg.data.weights``), uniform at
    the start. Each step's weights go to ``steps.jsonl`` as ``weight/<domain>``."""

    task = "doremi proxy"

    def __init__(self, cfg: PretrainConfig, reference: Path, params: DoReMiParams, resume: str | None = None) -> None:
        from train.model import from_pretrained

        self.params = params
        self.reference_dir = Path(reference)
        self._reference_id: str | None = None
        self._saved: dict[str, Any] | None = None
        super().__init__(cfg, resume)
        self.domains = sorted(self.data.weights)
        self.index = {d: i for i, d in enumerate(self.domains)}
        device = self.dist.device
        self.reference = from_pretrained(self.reference_dir, "reference model").to(device).eval()
        self.reference.requires_grad_(False)
        k = len(self.domains)
        saved = self._saved
        if saved is not None and saved["domains"] != self.domains:
            raise ConfigError(f"--resume: the checkpoint's DoReMi domains {saved['domains']} differ from "
                              f"{self.domains}")
        self.alpha = torch.tensor(saved["alpha"] if saved else [1.0 / k] * k, dtype=torch.float64, device=device)
        self.alpha_sum = torch.tensor(saved["alpha_sum"] if saved else [0.0] * k, dtype=torch.float64, device=device)
        self.updates = int(saved["updates"]) if saved else 0

    def resume_fields(self) -> dict[str, Any]:
        """The pretraining fields, DoReMi's parameters and the reference model (its config and summary)."""
        if self._reference_id is None:  # read once every process has started (the reference's run has ended)
            self._reference_id = _run_identity(self.reference_dir.parent)
        return {**super().resume_fields(), "doremi (eta, smoothing, sampling)": self.params.model_dump(mode="json"),
                "reference model (its config.json and summary.json)": self._reference_id}

    def loss(self, batch: Batch) -> torch.Tensor:
        """Training: update the weights on this micro-batch, then return the weighted per-domain mean token loss.
        Evaluation (the model in eval mode): the plain mean token loss."""
        if not self.module.training:
            return super().loss(batch)
        mask = batch.labels != IGNORE
        proxy = token_losses(self.model, batch, self.autocast)
        with torch.inference_mode():
            reference = token_losses(self.reference, batch, self.autocast)
        k, device = len(self.domains), proxy.device
        rows = torch.tensor([self.index[n] for n in batch.names], device=device)
        with torch.no_grad():
            excess_rows = ((proxy.detach() - reference).clamp_min(0) * mask).sum(1)
            stats = torch.zeros(2, k, dtype=torch.float64, device=device)
            stats[0].index_add_(0, rows, mask.sum(1).to(torch.float64))
            stats[1].index_add_(0, rows, excess_rows.to(torch.float64))
            if self.dist.kind != "none":
                torch.distributed.all_reduce(stats)
            counts = stats[0]
            self.alpha = update_weights(self.alpha, stats[1] / counts.clamp_min(1), counts > 0, self.params.eta,
                                        self.params.smoothing)
            self.alpha_sum += self.alpha
            self.updates += 1
        per_domain = torch.zeros(k, dtype=proxy.dtype, device=device).index_add(0, rows, (proxy * mask).sum(1))
        # divided by the global token counts and scaled by the processes, so that the processes' mean (what DDP's
        # gradient averaging takes) is sum_d alpha_d x (mean token loss of domain d over the global batch)
        scale = (self.alpha / counts.clamp_min(1)).to(proxy.dtype) * self.dist.world
        return (per_domain * scale).sum()

    def per_step(self) -> dict[str, Any]:
        return {f"weight/{d}": self.alpha[i] for i, d in enumerate(self.domains)}

    @property
    def mean_weights(self) -> dict[str, float]:
        """The mean of the weights over all updates so far (uniform before the first)."""
        mean = self.alpha_sum / self.updates if self.updates else self.alpha
        return {d: float(mean[i]) for i, d in enumerate(self.domains)}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "doremi": {"domains": self.domains, "alpha": self.alpha.tolist(),
                                              "alpha_sum": self.alpha_sum.tolist(), "updates": self.updates,
                                              "mean_weights": self.mean_weights}}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._saved = state["doremi"]


def _run_identity(run: Path) -> str:
    """A short hash of a finished training run's ``config.json`` and ``summary.json``."""
    h = hashlib.sha256()
    for name in ("config.json", "summary.json"):
        p = run / name
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()[:16]


# -- the whole procedure -----------------------------------------------------------------------------------------
def learn(cfg: DoReMiConfig, resume: bool = False) -> dict[str, Any]:
    """Run DoReMi as ``cfg`` says (the module docstring) and write OUT; returns the content of ``mixture.json``.

    Without ``resume`` OUT must be empty or absent (ConfigError otherwise); with it, a killed run continues.
    ConfigError for a config that cannot work (a reference mixture naming unknown domains, a mixture the corpus
    cannot draw under ``data.max_repetition``, ...); RunError when a run fails (a full disk, a damaged shard)."""
    out = Path(cfg.out)
    check_output(out, "latest" if resume else None)
    main = int(os.environ.get("RANK", "0")) == 0
    if cfg.tokenizer is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("tokenizer: give one when train doremi runs in several processes (train it first with "
                          "`train tokenizer`)")
    corpus = Corpus(Path(cfg.corpus))
    if len(corpus.domains) < 2:
        raise ConfigError(f"corpus: {corpus.root} has {len(corpus.domains)} domain(s) with documents; DoReMi weighs "
                          "two or more")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    tokenizer = _tokenizer(cfg, out)
    tokens = training_tokens(cfg, tokenizer)
    natural = _normalized({d: float(n) for d, n in tokens.items()})
    reference_weights = _reference_weights(cfg, corpus, natural)
    rounds: list[dict[str, Any]] = []
    for r in range(1, cfg.rounds + 1):
        where = out / f"round-{r}"
        log.info(f"doremi round {r}/{cfg.rounds}: reference model on "
                 + ", ".join(f"{d} {w:.3f}" for d, w in reference_weights.items()))
        ref_cfg = _stage_config(cfg, tokenizer, where / "reference", reference_weights)
        reference = _train(lambda c, res: ReferenceTrainer(c, res), ref_cfg)
        sampling = ({d: 1.0 for d in corpus.domains} if cfg.doremi.sampling == "uniform" else reference_weights)
        proxy_cfg = _stage_config(cfg, tokenizer, where / "proxy", sampling)
        log.info(f"doremi round {r}/{cfg.rounds}: proxy model, batches drawn "
                 + ("uniformly over domains" if cfg.doremi.sampling == "uniform" else "by the reference weights"))
        proxy = _train(lambda c, res: DoReMiTrainer(c, where / "reference" / "final", cfg.doremi, res), proxy_cfg)
        weights = {d: proxy["doremi"]["mean_weights"].get(d, 0.0) for d in corpus.domains}
        rounds.append({"round": r, "reference_weights": reference_weights, "sampling_weights": _normalized(sampling),
                       "weights": weights, "updates": proxy["doremi"]["updates"],
                       "reference_eval": _losses(reference["eval"]), "proxy_eval": _losses(proxy["eval"])})
        for role, run_cfg, drawn in (("reference", ref_cfg, reference_weights), ("proxy", proxy_cfg, sampling)):
            if main:
                _write_card(Path(run_cfg.out) / "final", role, r, cfg, tokenizer, drawn, rounds[-1])
        reference_weights = weights
    mixture = _mixture(cfg, corpus, tokenizer, tokens, rounds, time.time() - started)
    if main:
        _write_outputs(out, cfg, rounds, mixture)
    return mixture


def training_tokens(cfg: DoReMiConfig, tokenizer: Path) -> dict[str, int]:
    """Each domain's training tokens (held-out documents excluded) under ``tokenizer``, whose shares are the
    natural mixture; builds the token cache."""
    corpus = Corpus(Path(cfg.corpus))
    every = cfg.data.model_copy(update={"weights": {d: 1.0 for d in corpus.domains}})
    data = data_mod.prepare(Path(cfg.corpus), tokenizer, every)
    return {d: data.train[d].tokens for d in sorted(data.train)}


def _normalized(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {d: w / total for d, w in sorted(weights.items())}


def _tokenizer(cfg: DoReMiConfig, out: Path) -> Path:
    """``cfg.tokenizer``, or one trained on the corpus into ``OUT/tokenizer`` (kept from an earlier run)."""
    if cfg.tokenizer is not None:
        return Path(cfg.tokenizer)
    directory = out / "tokenizer"
    if not (directory / MARKER).is_file():
        log.info(f"doremi: training a {cfg.vocab_size}-token tokenizer on the corpus into {directory}")
        train_tokenizer(Path(cfg.corpus), directory, cfg.vocab_size, seed=cfg.seed)
    return directory


def _reference_weights(cfg: DoReMiConfig, corpus: Corpus, natural: dict[str, float]) -> dict[str, float]:
    """The first round's reference mixture: natural, uniform, or read from a mixture.json (ConfigError naming
    ``reference.weights`` when it is unreadable or names domains the corpus lacks)."""
    spec = cfg.reference.weights
    if spec == "natural":
        return natural
    if spec == "uniform":
        return _normalized({d: 1.0 for d in corpus.domains})
    path = Path(spec)
    try:
        weights = json.loads(path.read_text(encoding="utf-8"))["weights"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"reference.weights: {path} is not natural, uniform or a readable mixture.json with "
                          f"weights ({e})") from None
    if not isinstance(weights, dict) or (problem := weights_problem(weights)):
        raise ConfigError(f"reference.weights: {path}: {problem if isinstance(weights, dict) else 'no weights'}")
    unknown = sorted(d for d, w in weights.items() if w > 0 and d not in corpus.domains)
    if unknown:
        raise ConfigError(f"reference.weights: {path} weighs {', '.join(unknown)}, which the corpus has no documents "
                          f"in (domains: {', '.join(corpus.domains)})")
    return _normalized({d: float(weights.get(d, 0.0)) for d in corpus.domains})


def _stage_config(cfg: DoReMiConfig, tokenizer: Path, out: Path, weights: dict[str, float]) -> PretrainConfig:
    """The pretraining config of one model: the DoReMi config's model, optim and data, with ``weights`` drawn."""
    data = DataConfig(**{**cfg.data.model_dump(), "weights": {d: w for d, w in weights.items() if w > 0}})
    return PretrainConfig(out=str(out), seed=cfg.seed, optim=cfg.optim, eval=cfg.eval, checkpoint=cfg.checkpoint,
                          log=cfg.log, distributed=cfg.distributed, corpus=cfg.corpus, tokenizer=str(tokenizer),
                          model=cfg.model, data=data)


def _train(make: Callable[[PretrainConfig, str | None], Pretrainer], cfg: PretrainConfig) -> dict[str, Any]:
    """Train one model into ``cfg.out`` (or resume it there) and return its summary (``eval`` and the trainer's
    state); a model already trained there with this config is not trained again."""
    out = Path(cfg.out)
    resume = None
    if out.is_dir() and any(out.iterdir()):
        if any(p.is_dir() for p in (out / "checkpoints").glob("step-*")):
            resume = "latest"
        else:  # killed before its first checkpoint: only what a run writes before one is there
            for name in RUN_FILES:
                path = out / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    trainer = make(cfg, resume)
    summary = out / "summary.json"
    if trainer.step == cfg.optim.max_steps and summary.is_file() and (out / "final").is_dir():
        log.info(f"{out}: already trained to step {trainer.step}")
        trainer.dist.close()
        return json.loads(summary.read_text(encoding="utf-8"))
    return trainer.run()


def _losses(evaluation: dict[str, dict[str, float]]) -> dict[str, float]:
    return {d: m["loss"] for d, m in sorted(evaluation.items())}


def _mixture(cfg: DoReMiConfig, corpus: Corpus, tokenizer: Path, tokens: dict[str, int],
             rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The content of ``mixture.json`` (the corpus's mixture format, plus DoReMi's record)."""
    model = cfg.model.model_dump(mode="json")
    last = rounds[-1]
    return {
        "weights": last["weights"], "method": "doremi",
        "provenance": f"DoReMi ({PAPER}): mean over {last['updates']} updates of the proxy's domain weights, "
                      f"round {len(rounds)} of {cfg.rounds}",
        "parameters": {"eta": cfg.doremi.eta, "smoothing": cfg.doremi.smoothing, "sampling": cfg.doremi.sampling,
                       "rounds": cfg.rounds, "steps": cfg.optim.max_steps, "batch_size": cfg.optim.batch_size,
                       "grad_accum": cfg.optim.grad_accum, "seq_len": cfg.data.seq_len,
                       "reference_weights": cfg.reference.weights},
        "tokens": tokens, "natural_weights": _normalized({d: float(n) for d, n in tokens.items()}),
        "corpus": {"path": str(corpus.root), "name": corpus.name, "sha256": corpus.manifest.get("corpus_sha256")},
        "tokenizer": {"path": str(tokenizer), "hash": tokenizer_hash(tokenizer)},
        "reference": {"model": model, "seed": cfg.seed, "weights": rounds[0]["reference_weights"],
                      "optim": cfg.optim.model_dump(mode="json")},
        "proxy": {"model": model, "seed": cfg.seed, "sampling": cfg.doremi.sampling,
                  "optim": cfg.optim.model_dump(mode="json")},
        "rounds": rounds, "seconds": round(seconds, 1),
    }


def _write(path: Path, text: str, what: str) -> None:
    """``text`` into ``path`` through a temporary name (RunError naming the file on a full disk)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with checkpoint.writing(path, what):
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def trajectory(out: Path, rounds: int, domains: list[str]) -> list[dict[str, Any]]:
    """The weights after each step of every round's proxy, from its ``steps.jsonl``: rows of round, step and
    one weight per domain (empty for a domain the proxy did not draw)."""
    rows = []
    for r in range(1, rounds + 1):
        for line in (out / f"round-{r}" / "proxy" / "steps.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            rows.append({"round": r, "step": record["step"],
                         **{d: record.get(f"weight/{d}", "") for d in domains}})
    return rows


def _write_outputs(out: Path, cfg: DoReMiConfig, rounds: list[dict[str, Any]], mixture: dict[str, Any]) -> None:
    domains = sorted(mixture["weights"])
    rows = trajectory(out, cfg.rounds, domains)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["round", "step", *domains], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write(out / "trajectory.csv", text.getvalue(), "the weight trajectory")
    _plot(out / "trajectory.png", rows, domains, mixture["weights"], cfg.optim.max_steps)
    evaluation = {f"round-{x['round']}": {"reference": x["reference_eval"], "proxy": x["proxy_eval"]} for x in rounds}
    _write(out / "eval.json", json.dumps(evaluation, indent=2) + "\n", "the held-out losses")
    _write(out / "mixture.json", json.dumps(mixture, indent=2) + "\n", "the mixture")


def _plot(path: Path, rows: list[dict[str, Any]], domains: list[str], result: dict[str, float], steps: int) -> None:
    """Each domain's weight over the proxy's steps (rounds one after another), the result dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = [(row["round"] - 1) * steps + row["step"] for row in rows]
    for i, d in enumerate(domains):
        color = f"C{i % 10}"
        ax.plot(x, [np.nan if row[d] == "" else row[d] for row in rows], color=color, label=d)
        ax.axhline(result[d], color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel("proxy step" + (" (rounds one after another)" if rows and rows[-1]["round"] > 1 else ""))
    ax.set_ylabel("domain weight")
    ax.set_title("DoReMi domain weights (dashed: the result, their mean)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    with checkpoint.writing(path, "the trajectory plot"):
        fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_card(final: Path, role: str, r: int, cfg: DoReMiConfig, tokenizer: Path, drawn: dict[str, float],
                record: dict[str, Any]) -> None:
    """A model card (``README.md``) in a finished model's ``final/`` directory."""
    losses = record["reference_eval" if role == "reference" else "proxy_eval"]
    drawn = _normalized({d: w for d, w in drawn.items() if w > 0})
    what = ("the reference model of DoReMi: a plain pretraining run on the reference mixture; the proxy's excess "
            "loss is measured against it" if role == "reference" else
            "the proxy model of DoReMi: trained with the domain-weighted loss (Group DRO) whose weights are the "
            "DoReMi result; its loss weights, not its data, follow the weights")
    o = cfg.optim
    lines = [f"# DoReMi {role} model, round {r}", "", f"This is {what}. Made by `train doremi` ({PAPER}).", "",
             f"- corpus: `{cfg.corpus}`", f"- tokenizer: `{tokenizer}` (hash {tokenizer_hash(tokenizer)})",
             f"- model: `{json.dumps(cfg.model.model_dump(mode='json'))}`",
             f"- training: {o.max_steps} steps x {o.batch_size * o.grad_accum} sequences x {cfg.data.seq_len} tokens, "
             f"lr {o.lr:g}, seed {cfg.seed}",
             f"- DoReMi: eta {cfg.doremi.eta:g}, smoothing {cfg.doremi.smoothing:g}, sampling {cfg.doremi.sampling}",
             "", "| domain | weight of the batches drawn | held-out loss (nats/token) |", "|---|--:|--:|"]
    lines += [f"| {d} | {drawn.get(d, 0.0):.4f} | {losses[d]:.4f} |" if d in losses else
              f"| {d} | {drawn.get(d, 0.0):.4f} | - |" for d in sorted(record["weights"])]
    if role == "proxy":
        lines += ["", "DoReMi weights of this round: "
                  + ", ".join(f"{d} {w:.4f}" for d, w in sorted(record["weights"].items())) + "."]
    lines += ["", "A proxy-sized model trained to find a mixture, not a model to use.", ""]
    _write(final / "README.md", "\n".join(lines), "the model card")
