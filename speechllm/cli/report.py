"""``speechllm report``: the paper's Table 3 and Table 1 from evaluated run directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechllm.cli._args import call_with_args
from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES


def run(args: argparse.Namespace) -> int:
    from speechllm.metrics.run_report import build_report

    report = call_with_args(
        build_report, args, out_dir=args.out, with_paper=not args.no_paper, plots=not args.no_plots
    )
    print(report.markdown)
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="build Table 3 / Table 1 (Markdown, CSV, plots) from evaluated run directories",
        description="Build the paper's Table 3 and Table 1 from evaluated run directories.",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="evaluated run directories")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--n-resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level")
    parser.add_argument("--no-paper", action="store_true", help="do not print the paper's numbers")
    parser.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    parser.set_defaults(func=run)
