"""What every command-line entry point shares: trailing ``key.path=value`` overrides, logging setup, offline
defaults, and one way to turn user errors into a message and an exit code (never a traceback)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from mixlab import logs
from mixlab.errors import EXIT_RUN_FAILED, MixlabError

Command = Callable[[argparse.Namespace], int]


def run(parser: argparse.ArgumentParser, commands: dict[str, Command], argv: list[str] | None,
        interrupted: str) -> int:
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logs.setup(quiet=args.quiet, verbose=args.verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return commands[args.command](args)
    except MixlabError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_RUN_FAILED
