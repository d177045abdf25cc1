"""``speechllm whisper-baseline``: the Whisper reference system scored like our models."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import add_device_argument, add_trust_manifest_argument, call_with_args, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "whisper-baseline",
        help="decode manifests with Whisper's own decoder and write a scored run directory",
        description="The reference system of the demo: Whisper (a preset, hub name or directory) "
        "greedy-decodes the manifests (ASR in each cut's language, or --task st: Whisper's translate "
        "task into English); its run directory reads like ours.",
    )
    parser.add_argument("--manifest", required=True, nargs="+", help="lhotse CutSet manifest(s)")
    parser.add_argument(
        "--task",
        default="asr",
        choices=["asr", "st"],
        help="asr (default), or st: translate into English (a multilingual --model, e.g. whisper-base)",
    )
    parser.add_argument("--out", required=True, type=Path, help="run directory to write")
    parser.add_argument(
        "--model",
        default="whisper-tiny.en",
        help="preset (whisper-tiny.en: English only; whisper-base: multilingual), hub name or directory",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="cuts per batch (default 8)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=200)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "32"],
        help="auto (default): bf16 autocast where the device runs bf16 natively, else float32, as our "
        "models decode (SPEECHLLM_BF16=0/1 forces the branch; docs/precision.md)",
    )
    add_device_argument(parser, "Whisper")
    add_trust_manifest_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.baselines.whisper_decoder import evaluate_whisper
    from speechllm.precision import resolve_device

    metrics = call_with_args(
        evaluate_whisper,
        args,
        manifests=args.manifest,
        out_dir=args.out,
        path=args.model,
        device=str(resolve_device(args.device)),
    )
    for key in sorted(metrics):
        if key.startswith(("asr_wer_", "st_bleu_")):
            print(f"{key}\t{metrics[key]:.2f}")
    print(f"wrote {args.out}")
    return 0
