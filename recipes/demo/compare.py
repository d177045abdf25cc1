"""Dev WER and training loss against minutes for several demo runs, side by side (one PNG).

A run directory's ``prealign/curve.tsv`` (the pre-alignment stage: CTC loss, the adapter's own
greedy dev WER) is drawn first and its ``curve.tsv`` (the LLM stage) after it on the same time
axis, so a run with pre-alignment and one without line up by the minutes they trained.

Usage: python recipes/demo/compare.py --out FIG.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import read_curve, smooth  # recipes/demo/report.py (this script's directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(11, 4))
    for item in args.runs:
        label, _, run = item.partition("=")
        pre = read_curve(Path(run) / "prealign" / "curve.tsv")
        offset = pre["loss"][-1][1] / 60 if pre["loss"] else 0.0
        stages = [(pre, 0.0, f"{label}: pre-alignment (CTC loss; adapter alone)")]
        stages.append((read_curve(Path(run) / "curve.tsv"), offset, f"{label}: with the LLM (LM loss)"))
        for curve, start, name in stages:
            if curve["loss"]:
                minutes = [start + s / 60 for _, s, _ in curve["loss"]]
                ax_loss.plot(minutes, smooth([v for *_, v in curve["loss"]]), label=name)
            if curve["dev"]:
                minutes = [start + s / 60 for _, s, _ in curve["dev"]]
                ax_wer.plot(minutes, [v for *_, v in curve["dev"]], "o-", label=name)
    ax_loss.set(
        xlabel="training minutes", ylabel="loss", title="training loss (running mean of 10)", yscale="log"
    )
    ax_wer.set(
        xlabel="training minutes", ylabel="dev WER (%), 8 clips", title="dev WER (greedy)", ylim=(0, 160)
    )
    for ax in (ax_loss, ax_wer):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
