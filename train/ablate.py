"""`train ablate`: a mixture study. Every (mixture, seed) pair is one `train pretrain` run of the same proxy model on
the same token budget, trained by :class:`~train.pretrain.Pretrainer` in a worker process on the corpus's shared
token cache; the per-domain held-out losses go into ``results.csv``, and `train/ablate_report.py` fits a regression
from weights to the objective and proposes a mixture (the RegMix recipe: Liu et al. 2024, "RegMix: Data Mixture as
Regression for Language Model Pre-training").

Output directory::

    OUT/ablation.json    the study as planned: config, mixtures, runs (written first)
    OUT/tokenizer/       trained here when the config names no tokenizer
    OUT/runs/<id>/       one `train pretrain` output per run; result.json (checksummed) marks it finished
    OUT/logs/<id>.log    each run's log
    OUT/results.csv      one row per run, in plan order
    OUT/report.md, OUT/*.png, OUT/mixture.json   from `train/ablate_report.py`

A run's id is a hash of everything that decides its losses (weights, seed, model, data and optimizer settings,
token budget, evaluation, corpus and tokenizer contents), so a study run again skips finished runs, resumes a
killed run from its last checkpoint (or starts it over when it has none: training is deterministic), and writes
the same ``results.csv``; its wall time column is the one recorded when each run finished.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from mixlab import logs
from mixlab.errors import ConfigError, MixlabError, RunError
from curate.layout import write_text_atomic
from mixlab.logs import log
from train.config import AblateConfig, DomainObjective, PretrainConfig, WeightedObjective, weights_problem
from train.corpus import Corpus

DECIMALS = 6
"""weights are rounded to this many decimals before they name a run or reach the sampler"""
STUDY_FILE = "ablation.json"
RESULT_FILE = "result.json"
NAMED = ("natural", "uniform", "corpus")


@dataclass(frozen=True)
class Mixture:
    name: str
    weights: dict[str, float]  # every corpus domain, sums to 1 (up to rounding)


@dataclass(frozen=True)
class Run:
    id: str
    mixture: Mixture
    seed: int
    steps: int
    tokens: int


# -- mixtures ----------------------------------------------------------------------------------------------------
def normalized(weights: dict[str, float], domains: list[str]) -> dict[str, float]:
    """``weights`` over every one of ``domains`` (absent ones 0), summing to 1, rounded to :data:`DECIMALS`."""
    total = float(sum(weights.values()))
    return {d: round(float(weights.get(d, 0.0)) / total, DECIMALS) for d in domains}


def natural_weights(corpus: Corpus) -> dict[str, float]:
    """Each domain's share of the corpus's tokens (``mixture.json``'s ``tokens``, else the manifest's estimate),
    as curate's ``natural`` method weighs them."""
    tokens = _mixture_file(corpus.root / "mixture.json").get("tokens") if (corpus.root / "mixture.json").exists() \
        else None
    if not isinstance(tokens, dict) or not tokens:
        tokens = {d: corpus.manifest["domains"][d].get("est_tokens", 0) for d in corpus.domains}
    counts = {d: float(tokens.get(d, 0)) for d in corpus.domains}
    if not any(counts.values()):
        counts = {d: float(corpus.text_bytes(d)) for d in corpus.domains}
    return normalized(counts, corpus.domains)


def grid(domains: list[str], step: float) -> list[dict[str, float]]:
    """Every mixture of ``domains`` whose weights are multiples of ``step`` and sum to 1, in lexicographic order of
    the weights (stars and bars: C(n + k - 1, k - 1) mixtures for n = 1/step units over k domains)."""
    n, k = round(1 / step), len(domains)
    out = []
    for bars in combinations(range(n + k - 1), k - 1):
        edges = (-1, *bars, n + k - 1)
        units = [edges[i + 1] - edges[i] - 1 for i in range(k)]
        out.append({d: u / n for d, u in zip(domains, units)})
    return sorted(out, key=lambda w: [-w[d] for d in domains])


def dirichlet(natural: dict[str, float], count: int, concentration: float, min_weight: float,
              seed: int) -> list[dict[str, float]]:
    """``count`` mixtures sampled around ``natural`` as RegMix does: Dirichlet with alpha = concentration x k x
    natural share (k domains), then ``w = min_weight + (1 - k min_weight) x sample`` so every weight is at least
    ``min_weight`` (an affine map, not a rejection loop). Seeded: the same arguments give the same mixtures."""
    domains = sorted(natural)
    k = len(domains)
    alpha = np.maximum(np.array([natural[d] for d in domains]) * concentration * k, 1e-3)
    samples = np.random.default_rng([seed, 0xD1]).dirichlet(alpha, size=count)
    samples = min_weight + (1 - k * min_weight) * samples
    return [dict(zip(domains, row.tolist())) for row in samples]


def _mixture_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mixture.json object")
    return data


def _checked(weights: Any, domains: list[str], key: str) -> dict[str, float]:
    """``weights`` normalized over ``domains``; ConfigError naming ``key`` when a domain is unknown or the weights
    are not finite numbers >= 0 summing to more than 0."""
    if not isinstance(weights, dict) or not weights:
        raise ConfigError(f"{key}: expected {{domain: weight, ...}}")
    unknown = sorted(set(weights) - set(domains))
    if unknown:
        raise ConfigError(f"{key}: unknown domain {unknown[0]!r} (the corpus has {', '.join(domains)})")
    if (problem := weights_problem(weights)) is not None:
        raise ConfigError(f"{key}: {problem}")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{key}: the weights sum to 0")
    return normalized(weights, domains)


def mixtures(cfg: AblateConfig, corpus: Corpus) -> list[Mixture]:
    """The study's mixtures in a stable order: named, then listed, grid and Dirichlet ones; a mixture equal to an
    earlier one (after rounding) is dropped. ConfigError naming the key for an unknown domain, weights that do not
    sum to more than 0, a missing or unreadable mixture.json, or fewer than 2 distinct mixtures."""
    domains, src = corpus.domains, cfg.mixtures
    natural = natural_weights(corpus)
    found: list[Mixture] = []
    for i, name in enumerate(src.named):
        key = f"mixtures.named[{i}]"
        if name == "natural":
            found.append(Mixture("natural", natural))
        elif name == "uniform":
            found.append(Mixture("uniform", normalized(dict.fromkeys(domains, 1.0), domains)))
        elif name == "corpus":
            if not corpus.mixture:
                raise ConfigError(f"{key}: the corpus has no mixture.json")
            found.append(Mixture("corpus", _checked(corpus.mixture, domains, key)))
        else:
            path = Path(name)
            if not path.is_file():
                raise ConfigError(f"{key}: {name} is not {', '.join(NAMED)} or an existing mixture.json")
            label = path.parent.name if path.name == "mixture.json" and path.parent.name else path.stem
            found.append(Mixture(label, _checked(_mixture_file(path).get("weights"), domains, f"{key} ({name})")))
    for i, w in enumerate(src.explicit):
        found.append(Mixture(f"list-{i}", _checked(w, domains, f"mixtures.list[{i}]")))
    if src.grid is not None:
        over = src.grid.domains or domains
        unknown = sorted(set(over) - set(domains))
        if unknown:
            raise ConfigError(f"mixtures.grid.domains: unknown domain {unknown[0]!r} (the corpus has "
                              f"{', '.join(domains)})")
        if len(set(over)) != len(over):
            raise ConfigError(f"mixtures.grid.domains: a domain is listed twice ({over})")
        found += [Mixture(f"grid-{i}", normalized(w, domains)) for i, w in enumerate(grid(sorted(over), src.grid.step))]
    if src.dirichlet is not None:
        d = src.dirichlet
        if d.min_weight * len(domains) >= 1:
            raise ConfigError(f"mixtures.dirichlet.min_weight: {d.min_weight} x {len(domains)} domains is at least 1")
        seed = cfg.seed if d.seed is None else d.seed
        found += [Mixture(f"dirichlet-{i}", normalized(w, domains))
                  for i, w in enumerate(dirichlet(natural, d.count, d.concentration, d.min_weight, seed))]
    unique: list[Mixture] = []
    for m in found:
        if all(m.weights != u.weights for u in unique):
            name, n = m.name, 2
            while any(u.name == name for u in unique):
                name, n = f"{m.name}-{n}", n + 1
            unique.append(Mixture(name, m.weights))
    if len(unique) < 2:
        raise ConfigError(f"mixtures: {len(unique)} distinct mixture(s); a study (and its regression) needs at "
                          "least 2")
    return unique


# -- objective ---------------------------------------------------------------------------------------------------
def objective_value(losses: dict[str, float], objective: Any) -> float:
    """The study's objective from per-domain held-out losses (nats/token): ``average`` (their mean), ``worst``
    (their max), ``{domain: D}`` (D's loss) or ``{weights: {D: w}}`` (the weighted mean, weights normalized)."""
    if objective == "average":
        return float(np.mean(list(losses.values())))
    if objective == "worst":
        return float(max(losses.values()))
    if isinstance(objective, DomainObjective):
        return float(losses[objective.domain])
    assert isinstance(objective, WeightedObjective)
    total = sum(objective.weights.values())
    return float(sum(w * losses[d] for d, w in objective.weights.items()) / total)


def objective_name(objective: Any) -> str:
    """How the objective reads in a report and a csv header."""
    if isinstance(objective, str):
        return {"average": "mean held-out loss over domains", "worst": "worst domain's held-out loss"}[objective]
    if isinstance(objective, DomainObjective):
        return f"held-out loss of {objective.domain}"
    return "weighted held-out loss (" + ", ".join(f"{d} {w:g}" for d, w in objective.weights.items()) + ")"


def _check_objective(objective: Any, domains: list[str]) -> None:
    named = [objective.domain] if isinstance(objective, DomainObjective) else \
        list(objective.weights) if isinstance(objective, WeightedObjective) else []
    unknown = sorted(set(named) - set(domains))
    if unknown:
        key = "objective.domain" if isinstance(objective, DomainObjective) else "objective.weights"
        raise ConfigError(f"{key}: unknown domain {unknown[0]!r} (the corpus has {', '.join(domains)})")
    if isinstance(objective, WeightedObjective) and ((p := weights_problem(objective.weights))
                                                     or sum(objective.weights.values()) <= 0):
        raise ConfigError(f"objective.weights: {p or 'the weights sum to 0'}")


# -- planning ----------------------------------------------------------------------------------------------------
class Study:
    """A planned study: its mixtures, its runs and the config of each run. Everything a run needs is checked here,
    before any run starts (ConfigError naming the key)."""

    def __init__(self, cfg: AblateConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.corpus = Corpus(Path(cfg.corpus))
        self.domains = self.corpus.domains
        _check_objective(cfg.objective, self.domains)
        self.mixtures = mixtures(cfg, self.corpus)
        o, L = cfg.optim, cfg.data.seq_len
        per_step = o.batch_size * o.grad_accum * L
        self.steps = max(1, round(cfg.tokens / per_step))
        self.tokens = self.steps * per_step
        if o.warmup_steps >= self.steps:
            raise ConfigError(f"optim.warmup_steps: {o.warmup_steps} is not below the {self.steps} steps that "
                              f"tokens {cfg.tokens:,} make at {per_step:,} tokens per step")
        self.tokenizer: Path | None = Path(cfg.tokenizer) if cfg.tokenizer else None
        self.runs: list[Run] = []

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def plan_runs(self, tokenizer: Path) -> list[Run]:
        """The runs, mixture-major then by seed, once the tokenizer is known (it is part of each run's id)."""
        from train.tokenizer import tokenizer_hash

        self.tokenizer = tokenizer
        base = {k: v for k, v in self.run_config(self.mixtures[0], self.cfg.seeds[0], "").model_dump(mode="json")
                .items() if k not in ("out", "corpus", "tokenizer", "seed", "log", "checkpoint")}
        base["data"].pop("workers", None)
        base["data"].pop("weights", None)
        identity = {"corpus": self.corpus.manifest.get("corpus_sha256"), "tokenizer": tokenizer_hash(tokenizer),
                    **base}
        runs = []
        for m in self.mixtures:
            for seed in self.cfg.seeds:
                blob = json.dumps({**identity, "weights": m.weights, "seed": seed}, sort_keys=True)
                runs.append(Run(hashlib.sha256(blob.encode()).hexdigest()[:12], m, seed, self.steps, self.tokens))
        self.runs = runs
        return runs

    def run_config(self, mixture: Mixture, seed: int, run_id: str) -> PretrainConfig:
        """The `train pretrain` config of one run: the study's sections, ``data.weights`` = the mixture,
        ``optim.max_steps`` from the token budget, one tokenizing process (the cache is built before)."""
        c = self.cfg
        return PretrainConfig.model_validate({
            "corpus": c.corpus, "tokenizer": str(self.tokenizer), "out": str(self.runs_dir / run_id), "seed": seed,
            "model": c.model.model_dump(), "data": {**c.data.model_dump(), "weights": mixture.weights, "workers": 1},
            "optim": {**c.optim.model_dump(), "max_steps": self.steps}, "eval": c.eval.model_dump(),
            "checkpoint": c.checkpoint.model_dump(), "log": c.log.model_dump(),
            "distributed": c.distributed.model_dump()})

    def check_draws(self) -> None:
        """Refuse (ConfigError naming the mixture) a mixture the sampler cannot draw under ``data.max_repetition``
        at this budget, for every seed (all seeds share one held-out set), before any run starts."""
        from train import data as data_mod

        assert self.tokenizer is not None
        used = sorted({d for m in self.mixtures for d, w in m.weights.items() if w > 0})
        for seed in self.cfg.seeds:
            data = data_mod.prepare(self.corpus.root, self.tokenizer,
                                    self.cfg.data.model_copy(update={"weights": dict.fromkeys(used, 1.0)}))
            for m in self.mixtures:
                active = {d: w for d, w in m.weights.items() if w > 0}
                sub = data_mod.Data(data.corpus, active, {d: data.train[d] for d in active}, data.heldout)
                try:
                    data_mod.sampler(sub, self.cfg.data, self.steps * self.cfg.optim.batch_size
                                     * self.cfg.optim.grad_accum, seed)
                except ConfigError as e:
                    raise ConfigError(f"mixtures: {m.name} ({_show_weights(m.weights)}) at tokens "
                                      f"{self.cfg.tokens:,}, seed {seed}: {e}") from None


def _show_weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{d} {w:.3f}" for d, w in weights.items())


# -- output directory --------------------------------------------------------------------------------------------
def check_output(out: Path) -> None:
    """Refuse (ConfigError) an ``out`` that is a file, or a non-empty directory that holds no study
    (``ablation.json``): its files are not mixlab's to write among."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file, not a directory")
    if out.is_dir() and any(p.name != ".lock" for p in out.iterdir()) and not (out / STUDY_FILE).is_file():
        raise ConfigError(f"out: {out} holds files but no ablation study ({STUDY_FILE}); give an empty or new "
                          "directory, or the out of an earlier `train ablate` to continue it")


def prepare_tokenizer(study: Study) -> Path:
    """The tokenizer the study uses: the config's, else ``OUT/tokenizer`` (trained there on the corpus as
    `train tokenizer` does, with ``vocab_size`` tokens and the config's seed, unless a finished one is there)."""
    from train.tokenizer import MARKER, load_tokenizer, train_tokenizer

    if study.tokenizer is not None:
        load_tokenizer(study.tokenizer, "tokenizer")
        return study.tokenizer
    path = study.out / "tokenizer"
    if not (path / MARKER).is_file() or not any((path / n).is_file() for n in ("tokenizer.json", "tokenizer.model")):
        if path.exists() and not (path / MARKER).is_file():
            shutil.rmtree(path)  # a staging leftover of a killed study: train_tokenizer writes its marker last
        log.info(f"no tokenizer given: training one of {study.cfg.vocab_size} tokens into {path}")
        train_tokenizer(study.corpus.root, path, study.cfg.vocab_size, seed=study.cfg.seed)
    return path


def _sealed(record: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(record, sort_keys=True)
    return {**record, "checksum": hashlib.sha256(body.encode()).hexdigest()}


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's record (``result.json`` whose checksum matches its content), or None."""
    try:
        record = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        checksum = record.pop("checksum")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
        return None
    return record if _sealed(record)["checksum"] == checksum else None


RUN_WRITES = {"plan.json", "config.json", "metrics.jsonl", "summary.json", "tb", "checkpoints", ".final.tmp",
              "final", RESULT_FILE}
"""what a run writes into OUT/runs/<id>/ (the training loop's files and its result)"""


def _resume_point(run_dir: Path, steps: int) -> str | None:
    """How an unfinished run goes on: ``latest`` when it has a checkpoint before its last step; else None after
    clearing what it wrote (training is deterministic, so it starts over). ConfigError when the directory holds
    files a run does not write."""
    if not run_dir.exists():
        return None
    stray = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_WRITES and not p.name.startswith("."))
    if stray:
        raise ConfigError(f"{run_dir}: holds {', '.join(stray)}, which no run writes; move it away")
    ckpts = [int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*")
             if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "state.json").is_file()]
    if ckpts and max(ckpts) < steps:
        for name in ("final", "summary.json", RESULT_FILE):
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        return "latest"
    shutil.rmtree(run_dir)
    return None


# -- running -----------------------------------------------------------------------------------------------------
def _init_worker(threads: int, gpus: Any) -> None:
    """Set up a worker process before torch is imported: its GPU (one per worker, when there are GPUs), its share
    of the CPU threads, and quiet logging (each run logs to its own file, :func:`run_log`)."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    logs.setup(quiet=True)
    logs.configure_libraries()


def train_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one run of a study (in a worker process, or in the study's own when it has one worker) and write its
    ``result.json``; returns that record. ``spec``: ``config`` (a PretrainConfig as JSON), ``id``, ``mixture``,
    ``weights``, ``seed``, ``domains`` (every domain, all evaluated), ``resume`` (None or ``latest``)."""
    from train import data as data_mod
    from train.pretrain import Pretrainer

    class AblationRun(Pretrainer):
        """A `train pretrain` run that also evaluates the domains its mixture gives no weight (a study compares
        every mixture on every domain)."""

        def __init__(self, cfg: PretrainConfig, resume: str | None, domains: list[str]) -> None:
            super().__init__(cfg, resume)
            missing = [d for d in domains if d not in self._eval]
            if missing:
                extra = data_mod.prepare(Path(cfg.corpus), Path(cfg.tokenizer),
                                         cfg.data.model_copy(update={"weights": dict.fromkeys(missing, 1.0)}))
                self._eval.update({d: data_mod.eval_sequences(s, cfg.data.seq_len, cfg.eval.tokens_per_domain)
                                   for d, s in extra.heldout.items()})

    cfg = PretrainConfig.model_validate(spec["config"])
    run_dir = Path(cfg.out)
    handler = logs.add_file(run_log(run_dir))
    try:
        start = time.perf_counter()
        trainer = AblationRun(cfg, spec["resume"], spec["domains"])
        result = trainer.run()
        wall = time.perf_counter() - start
        record = {"id": spec["id"], "mixture": spec["mixture"], "weights": spec["weights"], "seed": spec["seed"],
                  "losses": {d: result["eval"][d]["loss"] for d in spec["domains"]},
                  "tokens": result["plan"]["tokens"], "steps": result["steps"],
                  "parameters": result["plan"]["parameters"], "wall_seconds": round(wall, 2)}
        write_text_atomic(run_dir / RESULT_FILE, json.dumps(_sealed(record), indent=2) + "\n")
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # final/ holds the model; the result is kept
        return record
    except Exception as e:
        log.debug(f"run {spec['id']} failed", exc_info=not isinstance(e, MixlabError))
        raise
    finally:
        logs.log.removeHandler(handler)
        handler.close()


def default_workers() -> int:
    """One worker per GPU when there are GPUs, else one per CPU core."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


def execute(study: Study, todo: list[tuple[Run, str | None]], workers: int) -> dict[str, dict[str, Any]]:
    """Train ``todo`` (runs and how each resumes) on ``workers`` processes, each with ``cores / workers`` torch
    threads (one GPU each when there are GPUs); with one worker, in this process. Returns the records by run id.
    A failed run lets the running ones finish, then raises RunError naming it and its log."""
    import torch

    specs = [{"config": study.run_config(r.mixture, r.seed, r.id).model_dump(mode="json"), "id": r.id,
              "mixture": r.mixture.name, "weights": r.mixture.weights, "seed": r.seed, "domains": study.domains,
              "resume": resume} for r, resume in todo]
    records: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()

    def done(record: dict[str, Any]) -> None:
        records[record["id"]] = record
        n, total = len(records), len(specs)
        eta = (time.perf_counter() - started) / n * (total - n)
        objective = objective_value(record["losses"], study.cfg.objective)
        log.info(f"run {n}/{total} done: {record['id']} {record['mixture']} seed {record['seed']}: objective "
                 f"{objective:.4f} ({record['wall_seconds']:.0f} s; about {eta / 60:.1f} min left)")

    interrupted = "finished runs are kept: run the same command again to train the rest"
    if workers == 1:
        for spec in specs:
            try:
                done(train_run(spec))
            except MixlabError as e:
                raise RunError(_failure(study, spec, e)) from None
            except KeyboardInterrupt:
                raise KeyboardInterrupt(interrupted) from None
        return records
    gpus = None
    ctx = mp.get_context("spawn")
    if torch.cuda.is_available():
        gpus = ctx.Queue()
        for i in range(workers):
            gpus.put(i % torch.cuda.device_count())
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, gpus))
    failure: str | None = None
    try:
        futures: dict[Future, dict[str, Any]] = {pool.submit(train_run, s): s for s in specs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                if f.cancelled():
                    continue
                error = f.exception()
                if error is None:
                    done(f.result())
                elif failure is None:
                    failure = _failure(study, futures[f], error)
                    for other in pending:
                        other.cancel()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise KeyboardInterrupt(interrupted) from None
    pool.shutdown()
    if failure is not None:
        raise RunError(failure)
    return records


def run_log(run_dir: Path) -> Path:
    """Where a run logs: ``OUT/logs/<id>.log`` (a run's own directory must be empty when it starts)."""
    return run_dir.parent.parent / "logs" / f"{run_dir.name}.log"


def _failure(study: Study, spec: dict[str, Any], error: BaseException) -> str:
    log_path = run_log(study.runs_dir / spec["id"])
    what = str(error) if isinstance(error, MixlabError) else f"{type(error).__name__}: {error}"
    return (f"run {spec['id']} ({spec['mixture']}, seed {spec['seed']}) failed: {what}; its log: {log_path}; "
            "finished runs are kept: run the same command again to train the rest")


# -- results -----------------------------------------------------------------------------------------------------
def results_rows(study: Study, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run in plan order: id, mixture, seed, weight and held-out loss per domain, objective, tokens,
    steps, wall seconds."""
    rows = []
    for r in study.runs:
        rec = records[r.id]
        row: dict[str, Any] = {"id": r.id, "mixture": r.mixture.name, "seed": r.seed}
        row.update({f"weight_{d}": r.mixture.weights[d] for d in study.domains})
        row.update({f"loss_{d}": rec["losses"][d] for d in study.domains})
        row.update({"objective": objective_value(rec["losses"], study.cfg.objective), "tokens": rec["tokens"],
                    "steps": rec["steps"], "wall_seconds": rec["wall_seconds"]})
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    write_text_atomic(path, buf.getvalue())


def run_study(cfg: AblateConfig) -> dict[str, Any]:
    """Plan, run (resuming) and report a study; returns ``{"runs", "trained", "results", "report", "mixture",
    "proposal", ...}``. ConfigError for a wrong config or output before any run; RunError when a run fails."""
    from curate.layout import OutputLock
    from train import ablate_report, token_cache

    out = Path(cfg.out)
    check_output(out)
    study = Study(cfg)
    workers = cfg.workers or default_workers()
    with OutputLock(out):
        plan: dict[str, Any] = {"config": cfg.model_dump(mode="json", by_alias=True)}
        write_text_atomic(out / STUDY_FILE, json.dumps(plan, indent=2) + "\n")  # first: OUT now holds a study
        tokenizer = prepare_tokenizer(study)
        runs = study.plan_runs(tokenizer)
        token_cache.build(study.corpus, tokenizer, study.domains, cfg.data.workers)
        study.check_draws()
        plan.update({"domains": study.domains, "steps": study.steps, "tokens": study.tokens,
                     "mixtures": [{"name": m.name, "weights": m.weights} for m in study.mixtures],
                     "runs": [{"id": r.id, "mixture": r.mixture.name, "seed": r.seed} for r in runs]})
        write_text_atomic(out / STUDY_FILE, json.dumps(plan, indent=2) + "\n")
        records: dict[str, dict[str, Any]] = {}
        todo: list[tuple[Run, str | None]] = []
        for r in runs:
            record = read_result(study.runs_dir / r.id)
            if record is not None:
                records[r.id] = record
            else:
                todo.append((r, _resume_point(study.runs_dir / r.id, study.steps)))
        log.info(f"study: {len(study.mixtures)} mixtures x {len(cfg.seeds)} seeds = {len(runs)} runs of "
                 f"{study.steps} steps ({study.tokens:,} tokens) each; {len(records)} finished, {len(todo)} to train "
                 f"on {min(workers, max(1, len(todo)))} worker(s)")
        if todo:
            records.update(execute(study, todo, min(workers, len(todo))))
        rows = results_rows(study, records)
        write_csv(out / "results.csv", rows)
        summary = ablate_report.write(study, rows, [records[r.id] for r in runs])
    return {"runs": len(runs), "trained": len(todo), "results": out / "results.csv", **summary}

