"""``speechllm train CONFIG [overrides]``: train an adapter (pre-alignment first when configured)."""

from __future__ import annotations

import argparse

from speechllm.cli._args import add_config_arguments, add_trust_manifest_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an adapter from a YAML config",
        description="Train an adapter as CONFIG says, with KEY=VALUE overrides on top; writes the "
        "run to output_dir (the trained model: <output_dir>/model).",
    )
    add_config_arguments(parser, "YAML config (see recipes/*/conf/)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--resume",
        metavar="last|PATH",
        default=None,
        help="continue from output_dir's last checkpoint ('last') or a checkpoint file, mid-epoch",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run's model and checkpoints in output_dir (default: refuse)",
    )
    add_trust_manifest_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from speechllm.config import load_config

    trust = ["data.trust_manifest_sources=true"] if args.trust_manifest_sources else []
    cfg = load_config(args.config, [*args.overrides, *trust])
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    from speechllm.training import train

    out = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"trained model saved to {out}")
    return 0
