"""The report's PNG plots: quality per adapter, and compression ratio against quality.

matplotlib is an optional extra (``pip install 'speechllm[plots]'``) and is imported only here,
inside :func:`write_plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechllm.io import atomic_write
from speechllm.metrics.tables import CompressionRow, Table3, adapter_order, row_order

_METRICS = (("st_comet_avg", "ST COMET avg ↑"), ("asr_wer_avg", "ASR WER avg ↓"))


def _plot_metrics(table: Table3) -> list[tuple[str, str]]:
    """(column, axis label) of the averages the table has."""
    return [(c, label) for c, label in _METRICS if c in table.columns]


def _quality_by_adapter(
    plt: Any, table: Table3, metrics: list[tuple[str, str]], pairs: list[tuple[str, str]], path: Path
) -> Path:
    """Grouped bars: one group per adapter, one bar per (SFM, LLM) pair, a panel per metric."""
    adapters = sorted({k[2] for k in table.rows}, key=adapter_order)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.2), squeeze=False)
    width = 0.8 / len(pairs)
    for ax, (column, label) in zip(axes[0], metrics):
        for i, pair in enumerate(pairs):
            xs, ys = [], []
            for j, adapter in enumerate(adapters):
                value = table.values.get((*pair, adapter), {}).get(column)
                if value is not None:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(value)
            ax.bar(xs, ys, width=width, label=f"{pair[0]} + {pair[1]}")
        ax.set_xticks(range(len(adapters)), adapters, rotation=20)
        ax.set_ylabel(label)
        ax.set_title(label + " per adapter")
        finite = [v for k in table.rows if (v := table.values[k][column]) is not None]
        # Zoom on the spread between adapters: from 0 the bars would all look the same.
        span = max(finite) - min(finite) or 1.0
        ax.set_ylim(max(0.0, min(finite) - span), max(finite) + 0.5 * span)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_write(path, keep_suffixes=True) as tmp:  # savefig picks the format by suffix
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def _compression_vs_quality(
    plt: Any,
    table: Table3,
    ratio: dict[tuple[str, str], float],
    metrics: list[tuple[str, str]],
    pairs: list[tuple[str, str]],
    path: Path,
) -> Path:
    """Scatter of quality against compression ratio (log axis), a panel per metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.2), squeeze=False)
    for ax, (column, label) in zip(axes[0], metrics):
        for pair in pairs:
            points = [
                (ratio[(pair[0], k[2])], table.values[k][column], k[2])
                for k in table.rows
                if k[:2] == pair and (pair[0], k[2]) in ratio and table.values[k][column] is not None
            ]
            if not points:
                continue
            ax.scatter([p[0] for p in points], [p[1] for p in points], label=f"{pair[0]} + {pair[1]}")
            for x, y, adapter in points:
                ax.annotate(adapter, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
        ax.set_xscale("log")
        ticks = sorted({r for (sfm, _), r in ratio.items() if sfm in {p[0] for p in pairs}})
        ax.set_xticks(ticks, [f"{r:g}:1" for r in ticks])
        ax.minorticks_off()
        ax.set_xlabel("compression ratio (encoder frames per adapter output, log)")
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_write(path, keep_suffixes=True) as tmp:  # savefig picks the format by suffix
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_plots(table: Table3, compression: Sequence[CompressionRow], out_dir: Path) -> list[Path]:
    """PNG plots: quality per adapter for each (SFM, LLM) pair; compression ratio vs quality.

    Needs matplotlib (``pip install 'speechllm[plots]'``); without it nothing is written and a
    message says so.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping plots (pip install 'speechllm[plots]')")
        return []
    metrics = _plot_metrics(table)
    if not metrics:
        return []
    pairs = sorted({k[:2] for k in table.rows}, key=lambda p: row_order((*p, "")))
    written = [_quality_by_adapter(plt, table, metrics, pairs, out_dir / "quality_by_adapter.png")]
    ratio = {(r.sfm, r.adapter): r.compression_ratio for r in compression}
    if ratio:
        path = out_dir / "compression_vs_quality.png"
        written.append(_compression_vs_quality(plt, table, ratio, metrics, pairs, path))
    return written
