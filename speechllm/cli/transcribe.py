"""``speechllm transcribe --model DIR AUDIO...``: transcribe or translate audio files."""

from __future__ import annotations

import argparse

from speechllm.cli._args import call_with_args
from speechllm.languages import TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("transcribe", help="transcribe or translate audio files")
    parser.add_argument("audio", nargs="+", help="audio files (any rate/channels soundfile reads)")
    parser.add_argument("--model", required=True, help="a save_pretrained directory")
    parser.add_argument("--task", default="asr", choices=TASKS)
    parser.add_argument("--src-lang", default="en")
    parser.add_argument("--tgt-lang", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.inference import transcribe_files

    for path, text in call_with_args(transcribe_files, args, model_dir=args.model, paths=args.audio):
        print(f"{path}\t{text}")
    return 0
