"""The ``speechllm`` command. Every subcommand is declared here, one module each.

Each module's ``register(subparsers)`` adds its parser and sets ``func``; handlers import the
library lazily so that ``speechllm --help`` stays fast. The library's own errors
(:class:`~speechllm.errors.SpeechLLMError`: config, manifest, audio, checkpoint, cache) and a
missing file become one line, ``speechllm: error: ...``, and exit status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from speechllm.cli import average, baseline, cache, evaluate, export, plan, prepare, report, train, transcribe
from speechllm.errors import SpeechLLMError
from speechllm.logs import quiet_third_party

COMMANDS = (train, evaluate, transcribe, prepare, cache, report, baseline, average, export, plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechllm", description="Connect speech foundation models to LLMs through trained adapters."
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
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
        args.overrides = [*args.overrides, *extra]  # a new list: the parser's default is shared
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _reopen_log_streams()
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        with quiet_third_party():  # one line per log event, no third-party tips (speechllm.logs)
            return int(args.func(args) or 0)
    except (SpeechLLMError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"speechllm: error: {one_line(err)}", file=sys.stderr)
        return 2


def _reopen_log_streams() -> None:
    """Point log handlers whose stream was closed (a ``sys.stderr`` of an earlier ``main()`` in the
    same process, e.g. a captured one) at today's ``sys.stderr``, instead of a logging traceback."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it would flush the closed one


def one_line(err: BaseException) -> str:
    """The error's message on one line (a missing file names itself)."""
    if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in str(err):
        return f"file not found: {err.filename}"
    return " ".join(str(err).split()) or type(err).__name__
