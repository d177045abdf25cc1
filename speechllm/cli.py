"""The ``speechllm`` command: train, transcribe, prepare, report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from speechllm.config import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after flags (`train CONFIG --print-config a=1 b=2`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as err:
        print(f"speechllm: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechllm", description=__doc__)
    sub = parser.add_subparsers(metavar="COMMAND")

    train = sub.add_parser("train", help="train an adapter from a YAML config")
    train.add_argument("config", help="YAML config (see recipes/)")
    train.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. model.adapter.name=conv")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument(
        "--resume",
        metavar="last|PATH",
        default=None,
        help="continue from output_dir's last checkpoint ('last') or a checkpoint file, mid-epoch",
    )
    train.set_defaults(func=_train)

    transcribe = sub.add_parser("transcribe", help="transcribe or translate audio files")
    transcribe.add_argument("audio", nargs="+", help="audio files (any rate/channels soundfile reads)")
    transcribe.add_argument("--model", required=True, help="a save_pretrained directory")
    transcribe.add_argument("--task", default="asr", choices=["asr", "st"])
    transcribe.add_argument("--src-lang", default="en")
    transcribe.add_argument("--tgt-lang", default=None)
    transcribe.add_argument("--batch-size", type=int, default=8)
    transcribe.add_argument("--max-new-tokens", type=int, default=200)
    transcribe.add_argument("--device", default="cpu")
    transcribe.set_defaults(func=_transcribe)

    for module, hook in (
        ("speechllm.data.prepare_cli", "add_prepare_commands"),
        ("speechllm.metrics.report", "add_report_command"),
        ("speechllm.data.encoder_cache", "add_cache_command"),
        ("speechllm.evaluation", "add_evaluate_command"),
    ):
        import importlib

        getattr(importlib.import_module(module), hook)(sub)
    return parser


def _train(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from speechllm.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    from speechllm.training import train

    out = train(cfg, resume=args.resume)
    print(f"trained model saved to {out}")
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from speechllm.inference import transcribe_files

    for path, text in transcribe_files(
        args.model,
        args.audio,
        task=args.task,
        src_lang=args.src_lang,
        tgt_lang=args.tgt_lang,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
    ):
        print(f"{path}\t{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
