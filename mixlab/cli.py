"""What every command-line entry point shares: common options before or after the subcommand, trailing
``key.path=value`` overrides, logging setup, offline defaults, and one way to turn user errors into a message and
an exit code (never a traceback)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Callable

from mixlab import logs
from mixlab.errors import EXIT_RUN_FAILED, MixlabError, storage_problem

Command = Callable[[argparse.Namespace], int]

COMMON_OPTIONS = {"--quiet": ("-q", "only warnings and errors"), "--verbose": ("-v", "also debug messages")}


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Accept ``--quiet``/``--verbose`` on every subcommand at any depth too (``train pretrain CFG --quiet``).

    The top-level parser must define them; a subcommand's copy has no default, so it never resets a value given
    before the subcommand.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in {id(p): p for p in action.choices.values()}.values():
            for name, (short, help_text) in COMMON_OPTIONS.items():
                if name not in sub._option_string_actions:
                    flags = [name] + ([short] if short not in sub._option_string_actions else [])
                    sub.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, help=help_text)
            add_common_options(sub)


def run(parser: argparse.ArgumentParser, commands: dict[str, Command], argv: list[str] | None,
        interrupted: str) -> int:
    """Parse ``argv``, run the chosen command and return the process exit code.

    A :class:`MixlabError` is printed as one ``prog: error: message`` line with its exit code; a full, read-only or
    forbidden filesystem (also met inside a worker process) as one line naming the path, exit 1; an interrupt as
    ``prog: interrupted; HOW TO GO ON`` (the KeyboardInterrupt's message, else ``interrupted``), exit 1. Any other
    exception is a bug and propagates with its traceback.
    """
    add_common_options(parser)
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logs.setup(quiet=args.quiet, verbose=args.verbose)
    logging.raiseExceptions = False  # a log file on a full disk must not print a traceback of its own
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return commands[args.command](args)
    except MixlabError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print(f"{parser.prog}: interrupted; {str(e) or interrupted}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except OSError as e:
        problem = storage_problem(e)
        if problem is None:
            raise
        _traceback_to_log_files()
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return EXIT_RUN_FAILED


def _traceback_to_log_files() -> None:
    record = logs.log.makeRecord(logs.log.name, logging.DEBUG, __file__, 0, traceback.format_exc(), None, None)
    for handler in logs.log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
