"""What every command shares: forwarding parsed arguments to the library function they name."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from speechllm.languages import EXTRA_NEW_TOKENS, MAX_NEW_TOKENS_PER_SECOND


def call_with_args(func: Callable[..., Any], args: argparse.Namespace, **overrides: Any) -> Any:
    """Call ``func`` with each of its parameters taken from the same-named attribute of ``args``.

    ``overrides`` supply parameters whose flag has another name or needs converting first. A
    parameter that neither provides keeps its default.
    """
    kwargs = {name: getattr(args, name) for name in inspect.signature(func).parameters if hasattr(args, name)}
    kwargs.update(overrides)
    return func(**kwargs)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (a batch size, a token count)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0 (worker counts, n-gram sizes where 0 means off)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (seconds)."""
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def tokens_per_second(text: str) -> float | None:
    """argparse type: a rate > 0, or 0 (off: ``None``)."""
    value = float(text)
    if value == 0:
        return None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number or 0 (off), got {text}")
    return value


def add_trust_manifest_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-manifest-sources``: read audio through recording sources that run a command or
    fetch a URL (refused by default: a manifest is untrusted input, docs/reliability.md)."""
    parser.add_argument(
        "--trust-manifest-sources",
        action="store_true",
        help="read audio from manifest recording sources that run a command or fetch a URL "
        "(refused by default: lhotse runs `command` sources in a shell)",
    )


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """What a command that decodes with a model directory takes: ``--trust-imports``, beam search,
    the repetition guard, long-audio chunking (see ``SpeechLLM.generate``) and ``--precision``."""
    parser.add_argument(
        "--trust-imports",
        action="store_true",
        help="import the modules the model directory lists under imports: (their code runs)",
    )
    group = parser.add_argument_group("decoding (default: greedy, as the paper)")
    group.add_argument("--num-beams", type=positive_int, default=1, help="beam search width (1: greedy)")
    group.add_argument("--length-penalty", type=float, default=1.0, help="beam score = log p / length**this")
    group.add_argument(
        "--no-repeat-ngram-size",
        type=non_negative_int,
        default=0,
        help="never repeat an n-gram of this size (0: off)",
    )
    group.add_argument(
        "--repetition-penalty", type=float, default=1.0, help="penalize tokens already generated (1: off)"
    )
    group.add_argument(
        "--max-new-tokens-per-second",
        type=tokens_per_second,
        default=MAX_NEW_TOKENS_PER_SECOND,
        metavar="RATE",
        help=f"also stop each clip after ceil(RATE x its seconds) + {EXTRA_NEW_TOKENS} new tokens, so "
        f"that a model that never stops stops early (default {MAX_NEW_TOKENS_PER_SECOND:g}: speech "
        "takes 3-15; 0: off, --max-new-tokens alone)",
    )
    group.add_argument(
        "--chunk-seconds",
        type=positive_float,
        default=None,
        help="decode longer audio in chunks of this many seconds and join the texts (e.g. 30 for Whisper)",
    )
    group.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "32"],
        help="auto (default): bf16 autocast where the device runs bf16 natively, else float32 "
        "(SPEECHLLM_BF16=0/1 forces the branch; docs/precision.md)",
    )
    group.add_argument(
        "--bf16", dest="precision", action="store_const", const="bf16", help="same as --precision bf16"
    )


def decoding_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags as ``SpeechLLM.generate`` keywords."""
    names = (
        "num_beams",
        "length_penalty",
        "no_repeat_ngram_size",
        "repetition_penalty",
        "max_new_tokens_per_second",
        "chunk_seconds",
    )
    return {name: getattr(args, name) for name in names}
