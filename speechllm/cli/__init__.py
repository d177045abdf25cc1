"""The ``speechllm`` command. Every subcommand is declared here, one module each.

Each module's ``register(subparsers)`` adds its parser and sets ``func``; handlers import the
library lazily so that ``speechllm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from speechllm.cli import baseline, cache, evaluate, prepare, report, train, transcribe
from speechllm.config import ConfigError

COMMANDS = (train, evaluate, transcribe, prepare, cache, report, baseline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechllm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after flags (`train CONFIG --print-config a=1 b=2`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as err:
        print(f"speechllm: error: {err}", file=sys.stderr)
        return 2
