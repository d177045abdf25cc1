"""``speechllm evaluate --model DIR --manifest M...``: decode test manifests, write a scored run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import (
    add_decoding_arguments,
    add_deprecated_alias,
    add_device_argument,
    add_model_dir_arguments,
    add_task_argument,
    add_trust_manifest_argument,
    call_with_args,
    decoding_arguments,
    non_negative_int,
    positive_float,
    positive_int,
)
from speechllm.metrics.listening import DEFAULT_LISTENING_CLIPS
from speechllm.metrics.normalizers import NORMALIZERS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="decode test manifests with a trained model and write a scored run directory",
        description="Decode test manifests (greedy), score WER / BLEU / chrF / COMET, write a run "
        "directory that `speechllm report` reads. Progress goes to stderr: a bar per manifest on a "
        "terminal, one summary line otherwise. run.json records the decoding settings and how many "
        "hypotheses stopped at their token limit (capped_hypotheses).",
    )
    add_model_dir_arguments(parser)
    parser.add_argument(
        "--manifest", required=True, nargs="+", action="extend", type=Path, help="lhotse CutSet manifest(s)"
    )
    add_task_argument(parser)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: MODEL/eval)")
    parser.add_argument("--comet-model", default=None, help="COMET hub name, model directory or model.ckpt")
    parser.add_argument(
        "--comet-batch-size", type=positive_int, default=16, help="sentences per COMET batch (default 16)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="cuts per batch (default 8)")
    parser.add_argument(
        "--max-duration", type=positive_float, default=None, help="seconds of audio per batch"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=200,
        help="at most this many new tokens per clip (default 200; and see --max-new-tokens-per-second)",
    )
    add_device_argument(parser)
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="data loader workers")
    labels = parser.add_argument_group(
        "labels (what run.json and the report call this run; they change nothing in decoding)"
    )
    for kind, name in (("sfm", "SFM"), ("llm", "LLM"), ("adapter", "adapter")):
        labels.add_argument(
            f"--{kind}-label",
            dest=kind,
            default=None,
            metavar="LABEL",
            help=f"the {name} label in run.json and the report (default: named from the model's config)",
        )
        add_deprecated_alias(labels, f"--{kind}", f"--{kind}-label", dest=kind)
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score a test set some of whose audio is missing or unusable (the count is recorded)",
    )
    parser.add_argument(
        "--normalizer",
        choices=NORMALIZERS,
        default="paper",
        help="also score ASR under this text normalizer (default paper: the paper's only; "
        "whisper_english: Whisper's English normalizer, numbers and spellings; whisper_basic: its "
        "multilingual one); Table 3's WER stays the paper's",
    )
    parser.add_argument(
        "--listening-check",
        dest="listening",
        action="store_true",
        help="decode the first --listening-clips clips again with another clip's audio and with "
        "silence, and say whether the model's output depends on the audio",
    )
    parser.add_argument(
        "--listening-clips",
        type=positive_int,
        default=DEFAULT_LISTENING_CLIPS,
        help=f"clips the listening check decodes twice more (default {DEFAULT_LISTENING_CLIPS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the listening check's audio swap")
    parser.add_argument(
        "--devices",
        type=positive_int,
        default=1,
        help="decode on this many devices (GPUs, or CPU processes with --device cpu), one process "
        "each through Lightning; one run directory (default 1)",
    )
    parser.add_argument(
        "--strategy",
        choices=("ddp", "ddp_spawn"),
        default="ddp",
        help="how Lightning starts the processes of --devices (default ddp)",
    )
    add_decoding_arguments(parser)
    add_trust_manifest_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.evaluation import evaluate

    decoding = decoding_arguments(args)
    metrics = call_with_args(evaluate, args, manifests=args.manifest, out_dir=args.out, decoding=decoding)
    if not metrics:  # a rank other than 0 of a several-device evaluation: rank 0 reports
        return 0
    out = args.out if args.out is not None else Path(args.model) / "eval"
    for key in sorted(metrics):
        if not key.startswith("num_"):  # counts (sentences, capped hypotheses): in run.json and the log
            print(f"{key}\t{metrics[key]:.2f}")
    print(f"wrote {out}")
    return 0
