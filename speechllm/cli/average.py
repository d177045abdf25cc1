"""``speechllm average RUN_DIR``: average a run's last K checkpoints into a model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "average",
        help="average the trained parameters of a run's last K checkpoints into a model directory",
        description="Average the trained parameters (adapter, LoRA, pre-alignment head, trainable "
        "encoder layers) of a training run's last K step checkpoints, element by element, and write "
        "them as a model directory that evaluate, transcribe and export take. Keep K checkpoints "
        "while training with trainer.save_top_k=K (or -1).",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a speechllm train output_dir")
    parser.add_argument(
        "--last", type=positive_int, default=5, help="average the K newest step checkpoints (default 5)"
    )
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="average these checkpoints (*.ckpt or trainable.safetensors) instead of the newest K",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the model directory to write (default RUN_DIR/model_avgK)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.lightning.averaging import average_checkpoints

    out = average_checkpoints(args.run_dir, args.out, args.last, args.checkpoints)
    print(f"wrote {out}")
    return 0
