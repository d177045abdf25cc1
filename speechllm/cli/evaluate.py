"""``speechllm evaluate --model DIR --manifest M...``: decode test manifests, write a scored run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import (
    add_decoding_arguments,
    add_trust_manifest_argument,
    call_with_args,
    decoding_arguments,
    non_negative_int,
    positive_float,
    positive_int,
)
from speechllm.deprecations import decoder_name
from speechllm.languages import DECODERS, TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="decode test manifests with a trained model and write a scored run directory",
        description="Decode test manifests (greedy), score WER / BLEU / chrF / COMET, write a run "
        "directory that `speechllm report` reads. Progress goes to stderr: a bar per manifest on a "
        "terminal, one summary line otherwise. run.json records the decoding settings and how many "
        "hypotheses stopped at their token limit (capped_hypotheses).",
    )
    parser.add_argument("--model", required=True, type=Path, help="a save_pretrained model directory")
    parser.add_argument(
        "--manifest", required=True, nargs="+", action="extend", type=Path, help="lhotse CutSet manifest(s)"
    )
    parser.add_argument("--task", default="asr", choices=TASKS, help="asr (default) or st")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: MODEL/eval)")
    parser.add_argument("--comet-model", default=None, help="COMET hub name, model directory or model.ckpt")
    parser.add_argument("--comet-batch-size", type=positive_int, default=16)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="cuts per batch")
    parser.add_argument(
        "--max-duration", type=positive_float, default=None, help="seconds of audio per batch"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=200,
        help="at most this many new tokens per clip (default 200; and see --max-new-tokens-per-second)",
    )
    parser.add_argument(
        "--decoder",
        default="llm",
        type=decoder_name,
        choices=DECODERS,
        help="prealign: the pre-aligned adapter decoded alone by the pre-alignment head (CTC greedy, "
        "no LLM; ASR)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="data loader workers")
    parser.add_argument("--sfm", default=None, help="SFM label for run.json (default: from the config)")
    parser.add_argument("--llm", default=None, help="LLM label for run.json (default: from the config)")
    parser.add_argument("--adapter", default=None, help="adapter label (default: from the config)")
    parser.add_argument(
        "--imports",
        nargs="+",
        action="extend",
        default=[],
        metavar="MODULE",
        help="modules registering user components (a training config's imports:)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score a test set some of whose audio is missing or unusable (the count is recorded)",
    )
    add_decoding_arguments(parser)
    add_trust_manifest_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.evaluation import evaluate

    decoding = decoding_arguments(args)
    metrics = call_with_args(evaluate, args, manifests=args.manifest, out_dir=args.out, decoding=decoding)
    out = args.out if args.out is not None else Path(args.model) / "eval"
    for key in sorted(metrics):
        if not key.startswith("num_"):  # counts (sentences, capped hypotheses): in run.json and the log
            print(f"{key}\t{metrics[key]:.2f}")
    print(f"wrote {out}")
    return 0
