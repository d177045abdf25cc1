"""``speechllm whisper-baseline``: the Whisper reference system scored like our models."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import (
    add_device_argument,
    add_precision_argument,
    add_trust_manifest_argument,
    call_with_args,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "whisper-baseline",
        help="decode manifests with Whisper's own decoder and write a scored run directory",
        description="The reference system of the demo: Whisper (a preset, hub name or directory) "
        "greedy-decodes the manifests (ASR in each cut's language, or --task st: Whisper's translate "
        "task into English); its run directory reads like ours.",
    )
    parser.add_argument("--manifest", nargs="+", help="lhotse CutSet manifest(s), scored into --out")
    parser.add_argument(
        "--task",
        default="asr",
        choices=["asr", "st"],
        help="asr (default), or st: translate into English (a multilingual --model, e.g. whisper-base)",
    )
    parser.add_argument("--out", type=Path, help="run directory to write")
    parser.add_argument(
        "--run",
        nargs=3,
        action="append",
        metavar=("TASK", "MANIFEST", "OUT"),
        help="instead of --manifest/--task/--out, repeatable: several run directories with one model "
        "load; a clip that several runs decode is encoded once (e.g. --run asr es.jsonl.gz A "
        "--run st es.jsonl.gz B)",
    )
    parser.add_argument(
        "--model",
        default="whisper-tiny.en",
        help="preset (whisper-tiny.en: English only; whisper-base: multilingual), hub name or directory",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="cuts per batch (default 8)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=200)
    add_precision_argument(parser)  # as our models decode
    add_device_argument(parser, "Whisper")
    add_trust_manifest_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.baselines.whisper_decoder import WhisperRun, evaluate_whisper_runs
    from speechllm.errors import UsageError
    from speechllm.precision import resolve_device

    if args.run and (args.manifest or args.out):
        raise UsageError("whisper-baseline: give --run TASK MANIFEST OUT, or --manifest and --out, not both")
    if args.run:
        runs = [WhisperRun(task, (manifest,), Path(out)) for task, manifest, out in args.run]
    elif args.manifest and args.out:
        runs = [WhisperRun(args.task, tuple(args.manifest), args.out)]
    else:
        raise UsageError("whisper-baseline: give --manifest and --out (or --run TASK MANIFEST OUT)")
    results = call_with_args(
        evaluate_whisper_runs, args, runs=runs, path=args.model, device=str(resolve_device(args.device))
    )
    for one, metrics in zip(runs, results):
        for key in sorted(metrics):
            if key.startswith(("asr_wer_", "st_bleu_")):
                print(f"{key}\t{metrics[key]:.2f}")
        print(f"wrote {one.out_dir}")
    return 0
