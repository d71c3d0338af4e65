"""The `train` command: tokenizer, pretrain."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mixlab import logs
from mixlab.config import load_config
from mixlab.errors import EXIT_OK, EXIT_RUN_FAILED, MixlabError
from mixlab.logs import log


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description="Train tokenizers and models on mixlab corpora.")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenizer", help="SentencePiece BPE (byte fallback) on a weight-respecting corpus sample")
    t.add_argument("--corpus", required=True, type=Path)
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--vocab-size", type=int, default=32_000)
    t.add_argument("--sample-chars", type=int, default=200_000_000)
    t.add_argument("--seed", type=int, default=0)
    pt = sub.add_parser("pretrain", help="continued pretraining (or from scratch) on the corpus mixture")
    pt.add_argument("config", type=Path)
    pt.add_argument("overrides", nargs="*", metavar="key.path=value")
    pt.add_argument("--resume", nargs="?", const="latest", help="resume from the latest checkpoint or from PATH")
    pt.add_argument("--stop-at", type=int, metavar="STEP", help="checkpoint and stop at this step (resume later)")
    return p


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from train.tokenizer import train_tokenizer

    info = train_tokenizer(args.corpus, args.out, args.vocab_size, args.sample_chars, seed=args.seed)
    print(f"{args.out}: {info['vocab_size']} tokens (hash {info['hash']}), trained on "
          f"{sum(info['sample_chars'].values()) / 1e6:.1f} M characters")
    return EXIT_OK


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from train.config import PretrainConfig
    from train.pretrain import Pretrainer

    if args.resume and "=" in args.resume and not Path(args.resume).exists():  # `--resume key=value`: an override
        args.overrides, args.resume = [*args.overrides, args.resume], "latest"
    cfg = load_config(PretrainConfig, args.config, args.overrides).resolve(args.config.resolve().parent)
    result = Pretrainer(cfg, resume=args.resume).run(stop_at=args.stop_at)
    for d, m in sorted(result["eval"].items()):
        log.info(f"  {d:<14} held-out loss {m['loss']:.4f}  ppl {m['ppl']:.2f}")
    if result["steps"] == cfg.optim.max_steps:
        log.info(f"final model: {Path(cfg.out) / 'final'}")
    else:
        log.info(f"stopped at step {result['steps']}; continue with --resume")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logs.setup(quiet=args.quiet, verbose=args.verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return {"tokenizer": _cmd_tokenizer, "pretrain": _cmd_pretrain}[args.command](args)
    except MixlabError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("train: interrupted; `--resume` continues from the last checkpoint", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
