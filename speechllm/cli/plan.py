"""``speechllm plan``: parameters, FLOPs, memory per GPU, time and cost of a configuration, built
on the ``meta`` device without weights or a GPU (:mod:`speechllm.planning`)."""

from __future__ import annotations

import argparse
import warnings

from speechllm.cli._args import add_config_arguments, positive_float, positive_int


def run(args: argparse.Namespace) -> int:
    from speechllm.config import load_config
    from speechllm.errors import ConfigError
    from speechllm.planning.plan import format_plan, plan

    cfg = load_config(args.config, args.overrides)
    with warnings.catch_warnings():  # transformers' notes on meta modules say nothing about the plan
        warnings.simplefilter("ignore")
        try:
            result = plan(
                cfg,
                gpu=args.gpu,
                gpus=args.gpus,
                mfu=args.mfu,
                price=args.price,
                rate_hz=args.rate,
                batch=args.batch,
            )
        except ValueError as err:
            raise ConfigError(f"{args.config}: {err}") from None
    print(format_plan(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="parameters, FLOPs, memory per GPU, time and cost of a config, offline (no weights, no GPU)",
        description="Build a config on the meta device and print its parameters, LLM sequence lengths, "
        "FLOPs, memory per GPU (DDP, FSDP, DeepSpeed ZeRO-2, with and without activation checkpointing), "
        "the largest batch that fits, and the time and cost of training.",
    )
    add_config_arguments(parser, "YAML config (e.g. recipes/whisper_llama/conf/asr.yaml)")
    parser.add_argument("--gpu", default="h100", help="h100, h200, a100, a100-40gb or l40s (default h100)")
    parser.add_argument("--gpus", type=positive_int, default=None, help="GPUs (default: trainer.devices)")
    parser.add_argument(
        "--mfu", type=positive_float, default=0.4, help="model FLOPs utilisation (default 0.4)"
    )
    parser.add_argument(
        "--price", type=positive_float, default=None, help="$ per GPU-hour (default: the GPU's)"
    )
    parser.add_argument(
        "--rate", type=positive_float, default=None, help="adapter output rate in Hz (default: Table 1)"
    )
    parser.add_argument(
        "--batch", type=positive_int, default=None, help="clips per GPU batch (default: data.max_duration)"
    )
    parser.set_defaults(func=run)
