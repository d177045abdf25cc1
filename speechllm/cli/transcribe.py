"""``speechllm transcribe --model DIR AUDIO...``: transcribe or translate files, directories, globs."""

from __future__ import annotations

import argparse
import json
import sys

from speechllm.cli._args import (
    add_decoding_arguments,
    add_device_argument,
    add_model_dir_arguments,
    add_task_argument,
    call_with_args,
    decoding_arguments,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe or translate audio files",
        description="Transcribe or translate audio files, directories (searched recursively) and "
        "globs. A file that fails is reported on stderr, one line each; the others are still "
        "written. Exit status 1 when some failed. Progress goes to stderr: a bar on a terminal, "
        "one summary line otherwise.",
    )
    parser.add_argument("audio", nargs="+", help="audio files, directories or globs ('data/**/*.wav')")
    add_model_dir_arguments(parser)
    add_task_argument(parser)
    parser.add_argument("--src-lang", default="en", help="the audio's language (default: en)")
    parser.add_argument("--tgt-lang", default=None, help="the translation's language (--task st)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="files per batch (default 8)")
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=200,
        help="at most this many new tokens per clip (default 200; and see --max-new-tokens-per-second)",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--format",
        default="text",
        choices=("text", "jsonl"),
        help="text: 'path<TAB>text' lines; jsonl: {path, text, seconds, decode_seconds} per line",
    )
    add_decoding_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.inference import expand_audio_paths, transcribe_files
    from speechllm.progress import progress

    paths, failures = expand_audio_paths(args.audio)
    for failure in failures:
        print(f"speechllm: error: {failure.path}: {failure.error}", file=sys.stderr)
    if not paths:  # every argument failed: nothing to decode, no model to load
        return 1
    # A bar that moves as each file's decoding stops (a terminal), or a summary line (a pipe).
    with progress("transcribe", len(paths), unit="files") as advance:
        results = call_with_args(
            transcribe_files,
            args,
            model_dir=args.model,
            paths=paths,
            on_done=advance,
            decoding=decoding_arguments(args),
        )
        for result in results:
            if result.error is not None:
                failures.append(result)
                print(f"speechllm: error: {result.path}: {result.error}", file=sys.stderr)
            elif args.format == "jsonl":
                print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
            else:
                print(f"{result.path}\t{result.text}", flush=True)
    return 1 if failures else 0
