"""The `train` command: tokenizer, pretrain, sft, dpo, doremi, ablate, generate."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mixlab import cli, logs
from mixlab.config import load_config
from mixlab.errors import EXIT_OK, EXIT_RUN_FAILED, ConfigError
from mixlab.logs import log
from train.config_reference import train_commands

OVERRIDES_HELP = "change config values, e.g. optim.lr=1e-4 (the value is parsed as YAML)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description="Train tokenizers and models on mixlab corpora.")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    p.add_argument("--verbose", "-v", action="store_true", help="also debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenizer", help="SentencePiece BPE (byte fallback) on a weight-respecting corpus sample")
    t.add_argument("--corpus", required=True, type=Path, help="a corpus directory written by `curate run`")
    t.add_argument("--out", required=True, type=Path, help="directory to write the tokenizer to (new or empty)")
    t.add_argument("--vocab-size", type=int, default=32_000, help="tokens in the vocabulary (default %(default)s)")
    t.add_argument("--sample-chars", type=int, default=200_000_000,
                   help="characters to train on, drawn from each domain by its weight (default %(default)s)")
    t.add_argument("--seed", type=int, default=0, help="seed of the corpus sample (default 0)")
    pt = sub.add_parser("pretrain", help="continued pretraining (or from scratch) on the corpus mixture")
    pt.add_argument("config", type=Path, help="the config YAML file (keys: `train config pretrain`)")
    pt.add_argument("overrides", nargs="*", metavar="key.path=value", help=OVERRIDES_HELP)
    pt.add_argument("--resume", nargs="?", const="latest", help="resume from the latest checkpoint or from PATH")
    pt.add_argument("--stop-at", type=int, metavar="STEP", help="checkpoint and stop at this step (resume later)")
    pt.add_argument("--merge", action="store_true", help="with a peft section: also write OUT/final/merged, the "
                                                         "adapter folded into model.path")
    for name, what in (("sft", "LoRA (or another peft method) supervised fine-tuning on chat data"),
                       ("dpo", "preference optimization (DPO, IPO) of a tuned model on chosen/rejected pairs")):
        tune = sub.add_parser(name, help=what)
        tune.add_argument("config", type=Path, help=f"the config YAML file (keys: `train config {name}`)")
        tune.add_argument("overrides", nargs="*", metavar="key.path=value", help=OVERRIDES_HELP)
        tune.add_argument("--resume", nargs="?", const="latest", help="resume from the latest checkpoint or from PATH")
        tune.add_argument("--stop-at", type=int, metavar="STEP", help="checkpoint and stop at this step (resume later)")
        tune.add_argument("--merge", action="store_true", help="also write OUT/final/merged, the adapter folded in")
    dr = sub.add_parser("doremi", help="DoReMi domain weights: a reference model, then a proxy trained with Group DRO")
    dr.add_argument("config", type=Path, help="the config YAML file (keys: `train config doremi`)")
    dr.add_argument("overrides", nargs="*", metavar="key.path=value", help=OVERRIDES_HELP)
    dr.add_argument("--resume", action="store_true", help="continue a killed run in the same out")
    ab = sub.add_parser("ablate", help="mixture study: proxy runs per (mixture, seed), a regression, a proposed mixture")
    ab.add_argument("config", type=Path, help="the config YAML file (keys: `train config ablate`)")
    ab.add_argument("overrides", nargs="*", metavar="key.path=value", help=OVERRIDES_HELP)
    c = sub.add_parser("config", help="every key of a command's config: type, default, description (Markdown)")
    c.add_argument("name", metavar="COMMAND", nargs="?",
                   help=f"the command whose config to describe: {', '.join(train_commands())}")
    c.add_argument("--update", type=Path, metavar="README", help="rewrite the tables between a README's config "
                   "markers (<!-- config:NAME --> ... <!-- /config:NAME -->)")
    c.add_argument("--check", type=Path, metavar="README", help="exit 1 when a marked table differs from the models")
    g = sub.add_parser("generate", help="sample from a model, an adapter or a merged model with its chat format")
    g.add_argument("model", type=Path, help="a model directory (final/ of `train pretrain`, final/merged of "
                   "`train sft`) or an adapter directory (final/adapter)")
    g.add_argument("--prompt", help="one user message (else --interactive)")
    g.add_argument("--system", help="a system message")
    g.add_argument("--interactive", action="store_true", help="chat turn by turn on the terminal")
    g.add_argument("--raw", action="store_true", help="plain completion: continue the --prompt text (or each "
                                                      "--interactive line) without a chat template")
    g.add_argument("--max-new-tokens", type=int, default=128, help="tokens per reply at most (default 128)")
    g.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 is greedy (default 0.7)")
    g.add_argument("--top-p", type=float, default=0.9,
                   help="nucleus sampling: draw from the most likely tokens holding this probability (default 0.9)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    return p


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from train.tokenizer import train_tokenizer

    info = train_tokenizer(args.corpus, args.out, args.vocab_size, args.sample_chars, seed=args.seed)
    print(f"{args.out}: {info['vocab_size']} tokens (hash {info['hash']}), trained on "
          f"{sum(info['sample_chars'].values()) / 1e6:.1f} M characters")
    return EXIT_OK


def _training_arguments(args: argparse.Namespace) -> None:
    """Read ``--resume key=value`` as an override, and refuse a ``--stop-at`` below 1 (ConfigError)."""
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        args.overrides, args.resume = [*args.overrides, args.resume], "latest"
    if args.stop_at is not None and args.stop_at < 1:
        raise ConfigError(f"--stop-at {args.stop_at}: must be a step of at least 1")


@contextmanager
def _interruptible(out: Path) -> Iterator[None]:
    """An interrupt before the training loop (which says itself how to go on) says how to go on from ``out``."""
    try:
        yield
    except KeyboardInterrupt as e:
        if str(e):
            raise
        from train.loop import continue_hint

        raise KeyboardInterrupt(continue_hint(out)) from None


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from train.config import PretrainConfig
    from train.pretrain import Pretrainer

    _training_arguments(args)
    cfg = load_config(PretrainConfig, args.config, args.overrides).resolve(args.config.resolve().parent)
    logs.configure_libraries()
    with _interruptible(Path(cfg.out)):
        result = Pretrainer(cfg, resume=args.resume, merge=args.merge).run(stop_at=args.stop_at)
    for d, m in sorted(result["eval"].items()):
        log.info(f"  {d:<14} held-out loss {m['loss']:.4f}  ppl {m['ppl']:.2f}")
    if result["finished"]:
        log.info(f"final model: {Path(cfg.out) / 'final'}")
        if args.merge:
            from train.checkpoint import writing
            from train.sft import merge

            final = Path(cfg.out) / "final"
            with writing(final / "merged", "the merged model"):
                log.info(f"merged model: {merge(final / 'adapter', final / 'merged')}")
    else:
        log.info(f"stopped at step {result['steps']}; continue with --resume")
    return EXIT_OK


def _cmd_sft(args: argparse.Namespace) -> int:
    from train.config import SFTConfig
    from train.sft import SFTTrainer

    return _tune(args, SFTConfig, SFTTrainer, lambda m: f"loss {m['loss']:.4f}  ppl {m['ppl']:.2f}", ())


def _cmd_dpo(args: argparse.Namespace) -> int:
    from train.config import DPOConfig
    from train.dpo import DPOTrainer

    return _tune(args, DPOConfig, DPOTrainer, lambda m: f"loss {m['loss']:.4f}  reward accuracy {m['accuracy']:.3f}  "
                 f"margin {m['margin']:.4f}", ("mixlab_dpo.json", "README.md"))


def _tune(args: argparse.Namespace, config_cls: Any, trainer_cls: Any, describe: Any, keep: tuple[str, ...]) -> int:
    """`train sft` and `train dpo`: train, print the held-out figures (``describe``: metrics -> text), and with
    ``--merge`` write final/merged, copying the adapter's files named in ``keep`` beside it."""
    import shutil

    from train.checkpoint import writing
    from train.sft import merge

    _training_arguments(args)
    cfg = load_config(config_cls, args.config, args.overrides).resolve(args.config.resolve().parent)
    logs.configure_libraries()
    with _interruptible(Path(cfg.out)):
        result = trainer_cls(cfg, resume=args.resume, merge=args.merge).run(stop_at=args.stop_at)
    for name, m in sorted(result["eval"].items()):
        log.info(f"  {name:<14} {describe(m)}")
    if not result["finished"]:
        log.info(f"stopped at step {result['steps']}; continue with --resume")
        return EXIT_OK
    final = Path(cfg.out) / "final"
    log.info(f"model: {final}" if cfg.peft.method == "full" else f"adapter: {final / 'adapter'}")
    if args.merge:
        with writing(final / "merged", "the merged model"):
            merged = merge(final / "adapter", final / "merged")
            for name in keep:
                shutil.copyfile(final / "adapter" / name, merged / name)
        log.info(f"merged model: {merged}")
    return EXIT_OK


def _cmd_doremi(args: argparse.Namespace) -> int:
    from train.config import DoReMiConfig
    from train.doremi import learn

    cfg = load_config(DoReMiConfig, args.config, args.overrides).resolve(args.config.resolve().parent)
    logs.configure_libraries()
    with _interruptible(Path(cfg.out)):
        mixture = learn(cfg, resume=args.resume)
    log.info("doremi weights: " + ", ".join(f"{d} {w:.4f}" for d, w in mixture["weights"].items()))
    log.info(f"mixture: {Path(cfg.out) / 'mixture.json'}")
    return EXIT_OK


def _cmd_ablate(args: argparse.Namespace) -> int:
    from train.ablate import run_study
    from train.config import AblateConfig

    cfg = load_config(AblateConfig, args.config, args.overrides).resolve(args.config.resolve().parent)
    logs.configure_libraries()
    result = run_study(cfg)
    log.info(f"best observed: {result['best']['mixture']} ({result['best']['mean']:.4f}); proposed ("
             f"{result['model']}, predicted {result['predicted']:.4f}): "
             + ", ".join(f"{d} {w:.3f}" for d, w in result["proposal"].items()))
    log.info(f"report: {result['report']}; mixture: {result['mixture']}")
    return EXIT_OK


def _check_generate_arguments(args: argparse.Namespace) -> None:
    """Refuse sampling settings and model paths that cannot work, before a model is loaded (ConfigError)."""
    from train.model import check_model_directory
    from train.tokenizer import TOKENIZER_FILES

    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1")
    if not 0 <= args.temperature < float("inf"):
        raise ConfigError(f"--temperature {args.temperature}: must be 0 (greedy) or positive")
    if not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p {args.top_p}: must be in (0, 1]")
    if not args.interactive and not args.prompt:
        raise ConfigError("give --prompt TEXT or --interactive")
    if args.raw and args.system:
        raise ConfigError("--system: a system message is part of a chat template; --raw completes plain text")
    model = args.model
    check_model_directory(model)
    if not any((model / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(f"{model}: holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})")


def _cmd_generate(args: argparse.Namespace) -> int:
    from train import generate

    _check_generate_arguments(args)
    logs.configure_libraries()
    model, tok = generate.load(args.model, raw=args.raw)
    opts = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
            "seed": args.seed}
    if args.interactive:
        generate.interactive(model, tok, raw=args.raw, **opts)
        return EXIT_OK
    if args.raw:
        print(generate.complete(model, tok, args.prompt, **opts))
        return EXIT_OK
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": args.prompt}]
    print(generate.reply(model, tok, messages, **opts))
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    from train.config_reference import render_readme, readme_sections, stale_sections, table

    readme = args.update or args.check
    if readme is not None:
        if not readme.is_file():
            raise ConfigError(f"{readme}: No such file or directory")
        if args.check:
            stale = stale_sections(readme)
            if stale:
                log.error(f"{readme}: stale config tables: {', '.join(stale)}; run train config --update {readme}")
                return EXIT_RUN_FAILED
            print(f"{readme}: config tables up to date")
            return EXIT_OK
        text = readme.read_text(encoding="utf-8")
        new = render_readme(text)
        if new != text:
            readme.write_text(new, encoding="utf-8")
        print(f"{readme}: {len(readme_sections(new))} config tables, {'updated' if new != text else 'up to date'}")
        return EXIT_OK
    if args.name not in train_commands():
        raise ConfigError(f"config {args.name!r}: no such command; one of {', '.join(train_commands())}")
    print(table(args.name), end="")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    commands = {"tokenizer": _cmd_tokenizer, "pretrain": _cmd_pretrain, "sft": _cmd_sft, "dpo": _cmd_dpo,
                "doremi": _cmd_doremi, "ablate": _cmd_ablate, "generate": _cmd_generate, "config": _cmd_config}
    return cli.run(_parser(), commands, argv, interrupted="run the same command again")


if __name__ == "__main__":
    sys.exit(main())
