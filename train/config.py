"""Typed configs for the `train` commands; loaded with the shared loader (`mixlab.config`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mixlab.config import Strict
from mixlab.paths import resolve_path


def _resolver(base: Path) -> Any:
    def resolve(p: str | None) -> str | None:
        if p is None:
            return None
        return str(resolve_path(base, p, canonical=True))

    return resolve


def weights_problem(weights: dict[str, Any]) -> str | None:
    """What is wrong with domain mixture ``weights`` (each a finite number >= 0, not all zero), or None."""
    for domain, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            return f"weight of {domain!r} is {w!r}: weights must be finite numbers >= 0"
    if weights and not any(weights.values()):
        return "every weight is 0: at least one domain must have a positive weight"
    return None


def mixture_file_weights(path: Path, key: str) -> dict[str, float]:
    """The domain weights of a mixture file: a ``mixture.json`` (its ``weights`` object: a corpus's, or the result
    of `train doremi` / `train ablate`) or a plain ``{domain: weight}`` JSON object. Raises ConfigError naming
    ``key`` and the file when it is missing, not JSON, or its weights break :func:`weights_problem`."""
    import json

    from mixlab.errors import ConfigError

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{key}: {path} is not a readable JSON file ({e})") from None
    weights = value.get("weights", value) if isinstance(value, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise ConfigError(f"{key}: {path} holds no weights: expected a mixture.json (a 'weights' object) or a "
                          "non-empty {domain: weight} object")
    if problem := weights_problem(weights):
        raise ConfigError(f"{key}: {path}: {problem}")
    return {str(d): float(w) for d, w in weights.items()}


class ModelConfig(Strict):
    path: str | None = Field(default=None, description="local HF checkpoint directory (continued pretraining)")
    architecture: str | None = Field(default=None, description="from scratch: a transformers model_type with a "
                                     "causal-LM class (llama, qwen2, mistral, gemma2, phi3, gpt2, gpt_neox, ...); "
                                     "default: model.config's model_type, else llama")
    config: dict[str, Any] = Field(default_factory=dict, description="architecture config (from scratch)")

    @model_validator(mode="after")
    def _one_source(self) -> "ModelConfig":
        if self.path is not None and (self.config or self.architecture):
            raise ValueError("give model.path (continue a checkpoint) or model.config/model.architecture (from "
                             "scratch), not both")
        given = self.config.get("model_type")
        if given is not None and self.architecture is not None and given != self.architecture:
            raise ValueError(f"model.architecture is {self.architecture!r} but model.config.model_type is "
                             f"{given!r}; give one")
        return self

    @property
    def model_type(self) -> str:
        """The transformers ``model_type`` to build from scratch."""
        return str(self.architecture or self.config.get("model_type") or "llama")


class DataConfig(Strict):
    seq_len: int = Field(default=512, ge=8, description="tokens per training sequence")
    weights: dict[str, float] | str | None = Field(
        default=None, description="domain weights (finite, >= 0, not all zero), or the path of a mixture.json (e.g. "
                                  "a `train doremi` or `train ablate` result); default: the corpus's mixture.json")
    max_repetition: float = Field(default=4.0, gt=0, description="epochs a domain may be repeated")
    heldout_fraction: float = Field(default=0.01, ge=0, lt=0.5, description="documents kept for evaluation")
    document_masking: bool = Field(default=False, description="attention and positions restart at each document")
    workers: int = Field(default=2, ge=1, description="tokenization processes")

    @field_validator("weights")
    @classmethod
    def _valid_weights(cls, weights: dict[str, float] | str | None) -> dict[str, float] | str | None:
        if isinstance(weights, dict) and (problem := weights_problem(weights)):
            raise ValueError(problem)
        return weights


class OptimConfig(Strict):
    batch_size: int = Field(default=8, ge=1, description="sequences per micro-batch (per process)")
    grad_accum: int = Field(default=1, ge=1, description="micro-batches per optimizer step (global batch: batch_size "
                                                     "x grad_accum x processes)")
    max_steps: int = Field(default=1000, ge=1, description="optimizer steps; may be raised on --resume to extend a "
                           "run. Give max_steps or epochs, not both")
    epochs: float | None = Field(default=None, gt=0, description="train for this many passes over the training data "
                                 "instead of max_steps (steps = ceil(epochs x rows per epoch / global batch); sft: the "
                                 "packed rows of one epoch; pretrain: the sequences the mixture draws before its "
                                 "first domain runs out); may be raised on --resume to extend a run")
    lr: float = Field(default=3e-4, gt=0, description="peak learning rate of AdamW")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="the cosine decay ends at lr x min_lr_ratio")
    warmup_steps: int = Field(default=100, ge=0, description="steps of linear warmup to lr")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW weight decay (none on norms and biases)")
    betas: tuple[float, float] = Field(default=(0.9, 0.95), description="AdamW's beta1 and beta2")
    grad_clip: float | None = Field(default=1.0, gt=0, description="clip the gradient norm to this; null: no "
                                                                   "clipping")
    precision: Literal["auto", "fp32", "bf16"] = Field(default="auto", description="auto: bf16 autocast on GPUs "
                                                                            "that support it, else fp32")
    gradient_checkpointing: bool = Field(default=False, description="recompute activations in the backward pass: "
                                                                  "less memory, more time")
    compile: bool = Field(default=False, description="torch.compile the model")

    @model_validator(mode="before")
    @classmethod
    def _steps_or_epochs(cls, data: Any, info: ValidationInfo) -> Any:
        given = isinstance(data, dict) and info.field_name not in cls.model_fields  # a config read, not an assignment
        if given and data.get("epochs") is not None and data.get("max_steps") is not None:
            raise ValueError("give optim.max_steps or optim.epochs, not both")
        return data


class EarlyStoppingConfig(Strict):
    patience: int = Field(default=3, ge=1, description="evaluations in a row without improvement before stopping")
    min_delta: float = Field(default=0.0, ge=0, description="the least decrease of the held-out loss (nats per "
                                                           "token) that counts as an improvement")


class EvalConfig(Strict):
    every: int = Field(default=100, ge=1, description="evaluate on the held-out sets every this many steps (and at "
                                                      "the last step)")
    tokens_per_domain: int = Field(default=100_000, ge=1, description="held-out target tokens per evaluation set")
    early_stopping: EarlyStoppingConfig | None = Field(
        default=None, description="stop when the held-out loss (mean over the evaluation sets) has not improved by "
                                  "min_delta for patience evaluations; the best checkpoint is kept and is the final "
                                  "model")


class CheckpointConfig(Strict):
    every: int = Field(default=500, ge=1, description="save a checkpoint (model, optimizer, RNG states, step) every "
                                                      "this many steps")
    keep: int = Field(default=2, ge=1, description="checkpoints kept; older ones are deleted")


class LogConfig(Strict):
    every: int = Field(default=10, ge=1, description="a progress line (without a terminal) and one metrics.jsonl "
                                                     "record, averaged over the steps since the last, every this "
                                                     "many steps")
    tensorboard: bool = Field(default=True, description="also write TensorBoard event files to OUT/tb")


class DistributedConfig(Strict):
    backend: Literal["auto", "ddp", "deepspeed"] = Field(
        default="auto", description="auto: DDP when launched by torchrun with several processes, else none")
    zero_stage: int = Field(default=2, ge=0, le=3, description="DeepSpeed ZeRO stage")
    deepspeed: dict[str, Any] = Field(default_factory=dict, description="extra DeepSpeed config, merged in")


class TrainConfig(Strict):
    """The sections every training command shares (`train pretrain`, `sft`, `doremi`, `ablate`), read by
    `train/loop.py`'s :class:`~train.loop.Trainer`. A command's config adds its own sections (data, model, peft...)
    and may change these defaults."""

    out: str = Field(description="output directory: checkpoints, logs, metrics.jsonl and final/")
    seed: int = Field(default=0, description="seed of the model's initialization and of the data order (`train "
                                             "ablate`: of the Dirichlet samples and the mixture search)")
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="before")
    @classmethod
    def _sections_over_command_defaults(cls, data: Any) -> Any:
        """A section the config gives in part keeps the command's own defaults for the rest (`train sft`'s lr 2e-4,
        not the shared 3e-4): the given keys are laid over the values the command's default section sets."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            default = field.default
            if isinstance(default, Strict) and isinstance(data.get(name), dict):
                base = default.model_dump(exclude_unset=True)
                if data[name].get("epochs") is not None:  # epochs given: the default step count no longer applies
                    base.pop("max_steps", None)
                data = {**data, name: {**base, **data[name]}}
        return data

    def resolve(self, base: Path) -> Self:
        """A copy with relative paths made relative to ``base`` (the config file's directory): ``out`` and the paths
        :meth:`_resolve_paths` names."""
        out = self.model_copy(deep=True)
        r = _resolver(base)
        out.out = r(self.out)  # type: ignore[assignment]
        out._resolve_paths(r)
        return out

    def _resolve_paths(self, r: Any) -> None:
        """Resolve a command's own path fields in place with ``r`` (str | None -> absolute str | None)."""


PROMPT_METHODS = ("prompt_tuning", "prefix_tuning", "p_tuning")
"""peft methods that prepend virtual tokens to every sample: no packing, nothing to merge"""


class PeftConfig(Strict):
    method: Literal["full", "lora", "adalora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"] = Field(
        default="lora", description="full: every weight trains and final/ is a whole model (no adapter); the others "
                                    "are peft methods whose adapter is saved in final/adapter")
    r: int = Field(default=8, ge=1, description="LoRA/AdaLoRA rank (AdaLoRA: the target rank)")
    alpha: float = Field(default=16.0, gt=0, description="LoRA/AdaLoRA scaling: the update is scaled by alpha / r")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA/AdaLoRA dropout on the adapter's input")
    target_modules: list[str] | None = Field(default=None,
                                             description="default: every linear layer of the decoder blocks "
                                                         "(peft's all-linear)")
    use_dora: bool = Field(default=False, description="DoRA, weight-decomposed LoRA (Liu et al. 2024, peft's "
                                                      "use_dora); lora only")
    num_virtual_tokens: int = Field(default=20, ge=1, description="prompt/prefix/p-tuning")
    qlora: bool = Field(default=False, description="4-bit base weights (bitsandbytes, CUDA only)")

    @field_validator("target_modules")
    @classmethod
    def _not_for_full(cls, targets: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if targets and info.data.get("method") == "full":
            raise ValueError("full fine-tuning trains every weight; remove target_modules")
        return targets

    @field_validator("use_dora")
    @classmethod
    def _dora_is_lora(cls, use_dora: bool, info: ValidationInfo) -> bool:
        if use_dora and info.data.get("method") != "lora":
            raise ValueError(f"DoRA is a kind of LoRA; it needs method lora, not {info.data.get('method')}")
        return use_dora

    @field_validator("qlora")
    @classmethod
    def _qlora_trains_an_adapter(cls, qlora: bool, info: ValidationInfo) -> bool:
        if qlora and info.data.get("method") == "full":
            raise ValueError("4-bit weights cannot be trained; full fine-tuning needs qlora: false")
        return qlora


class PretrainConfig(TrainConfig):
    corpus: str = Field(description="a corpus directory written by `curate run`")
    tokenizer: str = Field(description="a tokenizer directory written by `train tokenizer`")
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    peft: PeftConfig | None = Field(default=None, description="an adapter (lora, adalora or ia3) on model.path "
                                                               "instead of training every weight; final/adapter "
                                                               "holds it (`train pretrain --merge` folds it in)")

    @field_validator("peft")
    @classmethod
    def _adapter_on_a_model(cls, peft: PeftConfig | None, info: ValidationInfo) -> PeftConfig | None:
        if peft is None:
            return peft
        model = info.data.get("model")
        if model is not None and model.path is None:
            raise ValueError("an adapter continues a trained model: set model.path (from scratch every weight "
                             "trains: remove peft)")
        if peft.method == "full" or peft.method in PROMPT_METHODS:
            raise ValueError(f"method {peft.method} is not for pretraining: use lora, adalora or ia3 (or remove "
                             "peft to train every weight)")
        if peft.qlora:
            raise ValueError("qlora: `train pretrain` loads model.path in full precision; QLoRA is for `train sft`")
        return peft

    def _resolve_paths(self, r: Any) -> None:
        self.corpus, self.tokenizer = r(self.corpus), r(self.tokenizer)
        self.model.path = r(self.model.path)
        if isinstance(self.data.weights, str):
            self.data.weights = mixture_file_weights(Path(r(self.data.weights)), "data.weights")


class SFTFile(Strict):
    path: str = Field(description="a .json file (a list of records) or a .jsonl file (a record per line)")
    format: Literal["auto", "alpaca", "sharegpt", "messages", "xtuner"] = Field(
        default="auto", description="the records' format; auto: detected per record")
    weight: float = Field(default=1.0, gt=0, description="the file's share of an epoch relative to the other files' "
                                                        "weights (its examples are repeated or subsampled)")


class SFTDataConfig(Strict):
    files: list[SFTFile] = Field(min_length=1, description="the chat data files")
    max_len: int = Field(default=1024, ge=16, description="tokens per sample (and per packed row)")
    train_on: Literal["assistant", "last", "all"] = Field(
        default="assistant", description="the tokens the loss falls on: assistant (every assistant turn, tool calls "
                                          "included), last (the last assistant turn) or all")
    packing: bool = Field(default=True, description="several samples per row, no attention across them")
    heldout_fraction: float = Field(default=0.05, ge=0, lt=0.5, description="records of each file kept for "
                                                                          "evaluation")
    on_error: Literal["skip", "fail"] = Field(default="skip", description="a malformed record: skip (reported with "
                                                                        "file and line) or fail the run")

    @property
    def seq_len(self) -> int:
        return self.max_len


class SFTConfig(TrainConfig):
    base: str = Field(description="the model to tune: a local directory (e.g. the final/ of `train pretrain`)")
    tokenizer: str | None = Field(default=None, description="default: the base model's directory")
    data: SFTDataConfig = Field(description="the chat data and how it becomes training rows")
    peft: PeftConfig = PeftConfig()
    optim: OptimConfig = OptimConfig(lr=2e-4, max_steps=200, warmup_steps=10, weight_decay=0.0)
    eval: EvalConfig = EvalConfig(every=50)
    checkpoint: CheckpointConfig = CheckpointConfig(every=100)

    def _resolve_paths(self, r: Any) -> None:
        self.base, self.tokenizer = r(self.base), r(self.tokenizer)
        for f in self.data.files:
            f.path = r(f.path)


class ProxyStudyConfig(TrainConfig):
    """What `train doremi` and `train ablate` share: a corpus, a tokenizer (or one of ``vocab_size`` tokens trained
    on the corpus into ``OUT/tokenizer``), one small proxy ``model`` and its ``data`` settings. The mixture is what
    the command computes (``data.weights`` is refused), and every run trains a fixed number of steps
    (``optim.epochs`` and ``eval.early_stopping`` are refused)."""

    WEIGHTS_BY: ClassVar[str] = "the command"
    LENGTH_BY: ClassVar[str] = "its runs train a fixed number of steps"

    corpus: str = Field(description="a corpus directory written by `curate run`")
    tokenizer: str | None = Field(default=None, description="a tokenizer directory; default: one of vocab_size "
                                                            "tokens trained on the corpus into OUT/tokenizer")
    vocab_size: int = Field(default=8000, ge=300, description="of the tokenizer trained when none is given")
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()

    @model_validator(mode="after")
    def _computed_mixture_and_length(self) -> Self:
        if self.data.weights is not None:
            raise ValueError(f"data.weights is {self.WEIGHTS_BY}")
        for key, value in (("optim.epochs", self.optim.epochs), ("eval.early_stopping", self.eval.early_stopping)):
            if value is not None:
                raise ValueError(f"{key} is not taken here: {self.LENGTH_BY}")
        return self

    def _resolve_paths(self, r: Any) -> None:
        self.corpus, self.tokenizer = r(self.corpus), r(self.tokenizer)
        self.model.path = r(self.model.path)


class DoReMiParams(Strict):
    eta: float = Field(default=1.0, gt=0, description="step size of the exponentiated-gradient weight update")
    smoothing: float = Field(default=1e-3, ge=0, le=1, description="c in alpha <- (1 - c) alpha + c / k")
    sampling: Literal["uniform", "reference"] = Field(
        default="uniform", description="how the proxy's batches are drawn: uniformly over domains (the paper), or "
                                       "by the reference weights")


class ReferenceConfig(Strict):
    weights: str = Field(default="natural", description="the reference model's mixture: natural (the corpus's "
                                                        "tokens per domain), uniform, or a mixture.json path")


class DoReMiConfig(ProxyStudyConfig):
    """`train doremi`: DoReMi domain weights (Xie et al. 2023). The issue's keys map onto the shared sections:
    ``steps`` is ``optim.max_steps``, ``batch_size`` is ``optim.batch_size``, ``seq_len`` is ``data.seq_len``,
    ``eta``/``smoothing`` are ``doremi.eta``/``doremi.smoothing``; ``model`` is the proxy's model, and the reference
    model has the same shape and the same ``optim`` and ``seed``. Without ``tokenizer``, one of ``vocab_size``
    tokens is trained on the corpus into ``OUT/tokenizer`` (as `train tokenizer` does). ``rounds`` > 1 is iterated
    DoReMi: round k's weights are round k+1's reference mixture."""

    WEIGHTS_BY: ClassVar[str] = "what DoReMi computes; set reference.weights for the reference model"
    LENGTH_BY: ClassVar[str] = "the reference and the proxy each train optim.max_steps steps"

    doremi: DoReMiParams = DoReMiParams()
    reference: ReferenceConfig = ReferenceConfig()
    rounds: int = Field(default=1, ge=1, le=10, description="iterated DoReMi: round k's weights are round k+1's "
                                                          "reference mixture")

    def _resolve_paths(self, r: Any) -> None:
        super()._resolve_paths(r)
        if self.reference.weights not in ("natural", "uniform"):
            self.reference.weights = r(self.reference.weights)


class GridMixtures(Strict):
    domains: list[str] | None = Field(default=None, description="the domains the grid spreads weight over (the "
                                                                "others get 0); default: every corpus domain")
    step: float = Field(gt=0, le=1, description="weight step; must divide 1 (0.5, 0.25, 0.2, 0.1, ...)")

    @field_validator("step")
    @classmethod
    def _divides_one(cls, step: float) -> float:
        if abs(round(1 / step) * step - 1) > 1e-9:
            raise ValueError(f"{step} does not divide 1 (use 1/n: 0.5, 0.25, 0.2, 0.1, ...)")
        return step


class DirichletMixtures(Strict):
    count: int = Field(ge=1, description="mixtures to sample")
    concentration: float = Field(default=1.0, gt=0, description="alpha = concentration x domains x natural share: "
                                                                "1 is flat when the natural shares are equal; larger "
                                                                "stays closer to the natural mixture")
    min_weight: float = Field(default=0.0, ge=0, lt=1, description="every domain gets at least this weight")
    seed: int | None = Field(default=None, description="default: the config's seed")


class MixtureSources(Strict):
    explicit: list[dict[str, float]] = Field(default_factory=list, alias="list",
                                             description="mixtures given as {domain: weight} (normalized)")
    grid: GridMixtures | None = Field(default=None, description="every mixture on a grid of weight steps")
    dirichlet: DirichletMixtures | None = Field(default=None, description="mixtures sampled from a Dirichlet "
                                                                         "distribution around the natural mixture")
    named: list[str] = Field(default_factory=list, description="natural (the corpus's tokens per domain), uniform, "
                                                              "corpus (its mixture.json), or a mixture.json path")


class DomainObjective(Strict):
    domain: str = Field(description="minimize this domain's held-out loss")


class WeightedObjective(Strict):
    weights: dict[str, float] = Field(description="minimize the mean of the domains' held-out losses with these "
                                                  "weights")


class AblateConfig(ProxyStudyConfig):
    """`train ablate`: one proxy run per (mixture, seed) with the `train pretrain` machinery, then a regression from
    weights to ``objective``. ``tokens`` is each run's budget (``optim.max_steps`` follows from it); ``seed`` seeds
    the Dirichlet samples and the mixture search; ``workers`` runs in parallel (default: one per GPU, else one per
    core). Without ``tokenizer``, one of ``vocab_size`` tokens is trained into ``OUT/tokenizer``."""

    WEIGHTS_BY: ClassVar[str] = "set by each mixture; list mixtures under mixtures"
    LENGTH_BY: ClassVar[str] = "each run trains the steps its token budget (tokens) makes"

    tokens: int = Field(ge=1, description="training tokens per run")
    seeds: list[int] = Field(default=[0], min_length=1, description="one run per mixture and seed")
    mixtures: MixtureSources = Field(description="the mixtures to train: the list, grid, dirichlet and named "
                                                 "ones together")
    objective: Literal["average", "worst"] | DomainObjective | WeightedObjective = Field(
        default="average", description="what the proposed mixture minimizes: average (the mean held-out loss over "
                                       "domains), worst (the largest), {domain: D} or {weights: {domain: w}}")
    workers: int | None = Field(default=None, ge=1, description="runs in parallel; default: one per GPU, else one "
                                                               "per core")
    eval: EvalConfig = EvalConfig(every=1_000_000_000, tokens_per_domain=50_000)  # every: at the end only
    log: LogConfig = LogConfig(every=50, tensorboard=False)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    def _resolve_paths(self, r: Any) -> None:
        super()._resolve_paths(r)
        self.mixtures.named = [n if n in ("natural", "uniform", "corpus") else r(n) for n in self.mixtures.named]


class DPOFile(Strict):
    path: str = Field(description="a .json file (a list of records) or a .jsonl file (a record per line) of "
                                  "preference pairs")
    format: Literal["auto", "prompt", "messages", "sharegpt", "alpaca"] = Field(
        default="auto", description="the records' format: prompt ({prompt, chosen, rejected}, trl and "
                                    "LLaMA-Factory; strings or message lists), messages ({messages, chosen, "
                                    "rejected}), sharegpt ({conversations, chosen, rejected}), alpaca ({instruction, "
                                    "input, system, history, chosen, rejected}); auto: detected per record")
    weight: float = Field(default=1.0, gt=0, description="the file's share of an epoch relative to the other files' "
                                                        "weights (its pairs are repeated or subsampled)")


class DPODataConfig(Strict):
    files: list[DPOFile] = Field(min_length=1, description="the preference data files")
    max_len: int = Field(default=1024, ge=16, description="tokens per sequence (prompt and one answer); longer "
                                                        "sequences are cut at the end, and a pair with an answer "
                                                        "cut away entirely is dropped")
    heldout_fraction: float = Field(default=0.05, ge=0, lt=0.5, description="pairs of each file kept for "
                                                                          "evaluation")
    on_error: Literal["skip", "fail"] = Field(default="skip", description="a malformed record: skip (reported with "
                                                                        "file and line) or fail the run")

    @property
    def seq_len(self) -> int:
        return self.max_len


class DPOParams(Strict):
    loss: Literal["sigmoid", "ipo"] = Field(
        default="sigmoid", description="sigmoid: DPO (Rafailov et al. 2023), -log σ(β·margin); ipo: IPO (Azar et "
                                       "al. 2023), (margin / answer tokens - 1/(2β))², log-ratios averaged over each "
                                       "answer's tokens as trl does")
    beta: float = Field(default=0.1, gt=0, description="β: how far the policy may move from the reference (IPO: "
                                                       "the τ of the paper)")
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5, description="cDPO: the probability that a pair's "
                                                                        "preference is flipped (sigmoid loss only)")
    sft_weight: float = Field(default=0.0, ge=0, description="RPO (Pang et al. 2024): add this times the negative "
                                                             "log-likelihood per token of the chosen answers")

    @field_validator("label_smoothing")
    @classmethod
    def _smoothing_is_dpo(cls, smoothing: float, info: ValidationInfo) -> float:
        if smoothing and info.data.get("loss") == "ipo":
            raise ValueError("label smoothing (cDPO) is for the sigmoid loss; IPO takes none")
        return smoothing


class DPOConfig(TrainConfig):
    """`train dpo`: direct preference optimization of a tuned model on preference pairs."""

    base: str = Field(description="the model to align: a local directory, a whole model (e.g. final/merged of "
                                  "`train sft`) or an adapter (final/adapter), which trains further")
    tokenizer: str | None = Field(default=None, description="default: the base model's directory")
    reference: str | None = Field(default=None, description="a model directory for the reference model, loaded "
                                                            "as a second, frozen copy; default: the policy with "
                                                            "its adapter disabled (an adapter base: a frozen copy of "
                                                            "the adapter as it starts), or with peft.method full a "
                                                            "frozen copy of base")
    data: DPODataConfig = Field(description="the preference pairs and how they become training rows")
    dpo: DPOParams = DPOParams()
    peft: PeftConfig = PeftConfig()
    optim: OptimConfig = OptimConfig(batch_size=4, lr=5e-5, max_steps=200, warmup_steps=10, weight_decay=0.0)
    eval: EvalConfig = EvalConfig(every=50)
    checkpoint: CheckpointConfig = CheckpointConfig(every=100)

    @field_validator("peft")
    @classmethod
    def _dpo_methods(cls, peft: PeftConfig) -> PeftConfig:
        if peft.method not in ("lora", "ia3", "full"):
            raise ValueError(f"method {peft.method} is not for `train dpo`: use lora (or DoRA), ia3 or full")
        return peft

    def _resolve_paths(self, r: Any) -> None:
        self.base, self.tokenizer, self.reference = r(self.base), r(self.tokenizer), r(self.reference)
        for f in self.data.files:
            f.path = r(f.path)
