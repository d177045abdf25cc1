"""``speechllm export RUN_DIR OUT_DIR``: the LLM with LoRA merged, the adapter and a model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import add_import_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model: LLM with LoRA merged (transformers), adapter, model card",
        description="Export a trained model into OUT_DIR: llm/ (the LLM with its LoRA merged, a "
        "standard transformers directory with its tokenizer), trainable.safetensors (the adapter), "
        "config.yaml (SpeechLLM.from_pretrained(OUT_DIR) loads it), encoder.json (the speech "
        "encoder's name and options), prompt.json (the prompt format) and README.md (a model card "
        "with the evaluation results found in RUN_DIR).",
    )
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a training output_dir or a model directory"
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the export directory to write")
    parser.add_argument(
        "--eval",
        dest="eval_dirs",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="evaluated run directories for the model card, besides those found in RUN_DIR",
    )
    add_import_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="write into a directory that holds files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechllm.export import export_model

    trust = True if args.trust_imports else list(args.imports)
    out = export_model(args.run_dir, args.out_dir, trust, args.eval_dirs, args.overwrite)
    print(f"wrote {out}")
    return 0
