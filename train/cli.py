"""The `train` command. Its subcommands (tokenizer, pretrain, sft, ablate) are not implemented yet."""

from __future__ import annotations

import sys

from mixlab.errors import EXIT_USAGE

COMMANDS: dict[str, str] = {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print("train: no subcommands are available in this version of mixlab "
          "(planned: tokenizer, pretrain, sft, ablate — see DESIGN.md)", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
