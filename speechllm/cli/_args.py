"""What every command shares: forwarding parsed arguments to the library function they name, and
the options several commands take (one definition each, so names, defaults and help agree)."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from speechllm.deprecations import decoder_name, warn_retired
from speechllm.languages import DECODERS, EXTRA_NEW_TOKENS, MAX_NEW_TOKENS_PER_SECOND, TASKS


def call_with_args(func: Callable[..., Any], args: argparse.Namespace, **overrides: Any) -> Any:
    """Call ``func`` with each of its parameters taken from the same-named attribute of ``args``.

    ``overrides`` supply parameters whose flag has another name or needs converting first. A
    parameter that neither provides keeps its default.
    """
    kwargs = {name: getattr(args, name) for name in inspect.signature(func).parameters if hasattr(args, name)}
    kwargs.update(overrides)
    return func(**kwargs)


def module_names(text: str) -> list[str]:
    """argparse type: ``a`` or ``a,b.c`` → module names (one flag value, so that a positional
    argument after ``--imports m`` is never read as a module)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no module name in {text!r}")
    return names


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


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (a share, a probability)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def tokens_per_second(text: str) -> float | None:
    """argparse type: a rate > 0, or 0 (off: ``None``)."""
    value = float(text)
    if value == 0:
        return None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number or 0 (off), got {text}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``CONFIG [KEY=VALUE ...]``: a YAML file and dotlist overrides (paths in the file are relative
    to the file; in overrides, to the working directory)."""
    parser.add_argument("config", metavar="CONFIG", help=help_text)
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # without a default, argparse calls the list required when CONFIG is missing
        metavar="KEY=VALUE",
        help="dotlist overrides, e.g. model.adapter.name=conv (paths: relative to the working directory)",
    )


def add_trust_manifest_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-manifest-sources``: read audio through recording sources that run a command or
    fetch a URL (refused by default: a manifest is untrusted input, docs/reliability.md)."""
    parser.add_argument(
        "--trust-manifest-sources",
        action="store_true",
        help="read audio from manifest recording sources that run a command or fetch a URL "
        "(refused by default: lhotse runs `command` sources in a shell)",
    )


class DeprecatedAlias(argparse.Action):
    """An option's retired spelling: hidden from ``--help``; using it warns, naming the new one,
    and sets the same value."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        warn_retired(f"the option {option_string}", self.new)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: Any, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """``old`` read as ``new`` (which writes ``dest``) for one release, with a warning."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, default=argparse.SUPPRESS, **kwargs)


def add_device_argument(parser: Any, what: str = "the model") -> None:
    """``--device``, default ``auto``, the same in every command that runs a model."""
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where {what} runs: cpu, cuda, cuda:N, or auto (default: CUDA when available, else cpu)",
    )


def add_precision_argument(parser: Any) -> None:
    """``--precision auto|bf16|32``, as decoding takes it (:func:`speechllm.precision.decode_precision`)."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "32"],
        help="auto (default): bf16 autocast where the device runs bf16 natively, else float32 "
        "(SPEECHLLM_BF16=0/1 forces the branch; docs/precision.md)",
    )


def add_task_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task", default="asr", choices=TASKS, help="asr (default): transcribe; st: translate"
    )


def add_model_dir_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model DIR`` (a trained model directory) and the two ways to import the user modules it
    lists: ``--imports`` (these, trusted) and ``--trust-imports`` (all it lists)."""
    parser.add_argument(
        "--model",
        required=True,
        type=Path,
        metavar="DIR",
        help="a trained model directory (save_pretrained; a training run's <output_dir>/model)",
    )
    add_import_arguments(parser)


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The two ways to import the user modules a model directory lists: ``--imports`` (these,
    trusted) and ``--trust-imports`` (all it lists)."""
    parser.add_argument(
        "--imports",
        action="extend",
        type=module_names,
        default=[],
        metavar="MODULE[,MODULE]",
        help="modules registering user components (a training config's imports:), imported and "
        "trusted; repeatable",
    )
    parser.add_argument(
        "--trust-imports",
        action="store_true",
        help="import every module the model directory lists under imports: (their code runs)",
    )


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """What a command that decodes with a model directory takes: the decoder, beam search, the
    repetition guard, long-audio chunking (see ``SpeechLLM.generate``) and ``--precision``."""
    group = parser.add_argument_group("decoding (default: greedy, as the paper)")
    group.add_argument(
        "--decoder",
        default="llm",
        type=decoder_name,
        choices=DECODERS,
        help="llm (default): the model; prealign: the pre-aligned adapter decoded alone by the "
        "pre-alignment head (CTC greedy, no LLM; ASR)",
    )
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
        "--ctc-weight",
        type=fraction,
        default=0.0,
        metavar="W",
        help="joint CTC decoding (ASR, a model pre-aligned with CTC): rank the LLM's next tokens by "
        "(1-W) log p_LLM + W log p_CTC of the adapter's head, so the output keeps to the audio (0: off)",
    )
    group.add_argument(
        "--ctc-candidates",
        type=positive_int,
        default=8,
        help="with --ctc-weight: the LLM's most likely next tokens scored by CTC at each step",
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
    add_precision_argument(group)
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
        "ctc_weight",
        "ctc_candidates",
        "chunk_seconds",
    )
    return {name: getattr(args, name) for name in names}
