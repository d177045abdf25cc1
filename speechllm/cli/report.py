"""``speechllm report``: the paper's Table 3 and Table 1 from evaluated run directories."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from speechllm.cli._args import call_with_args
from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES


def default_report_dir(run_dirs: Sequence[Path]) -> Path:
    """``report/`` in the folder that holds every run (the run directories' parents):
    ``runs/tiny/base/eval runs/tiny/conv/eval`` → ``runs/tiny/report``, as the recipes write it.

    Runs with nothing in common but the file system's root report to ``./report``.
    """
    parents = [os.path.abspath(Path(run_dir).parent) for run_dir in run_dirs]
    common = Path(os.path.commonpath(parents))
    if common == Path(common.anchor):
        return Path("report")
    try:
        return common.relative_to(Path.cwd()) / "report"
    except ValueError:  # outside the working directory: say it in full
        return common / "report"


def run(args: argparse.Namespace) -> int:
    from speechllm.metrics.run_report import build_report

    out = args.out if args.out is not None else default_report_dir(args.run_dirs)
    report = call_with_args(
        build_report, args, out_dir=out, with_paper=not args.no_paper, plots=not args.no_plots
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
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: report/ in the folder holding the runs: runs/tiny/*/eval → "
        "runs/tiny/report)",
    )
    parser.add_argument("--n-resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level")
    parser.add_argument("--no-paper", action="store_true", help="do not print the paper's numbers")
    parser.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    parser.set_defaults(func=run)
