"""The report's PNG plots: quality per adapter, and compression ratio against quality.

matplotlib is an optional extra (``pip install 'speechllm[plots]'``) and is imported only inside
these functions. A run without an adapter (``speechllm whisper-baseline``: adapter
:data:`~speechllm.rundir.NO_ADAPTER`) is a reference, drawn in both plots as a labelled dashed
horizontal line at its score, never as a bar or a point. The figure builders return the
matplotlib figure, so what a plot shows can be checked without reading pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechllm.io import atomic_write
from speechllm.metrics.tables import CompressionRow, RowKey, Table3, adapter_order, row_order
from speechllm.rundir import NO_ADAPTER

_METRICS = (
    ("st_comet_avg", "ST COMET avg (× 100) ↑"),
    ("st_bleu_avg", "ST BLEU avg ↑"),  # ST scored without a COMET model (load_run(bleu=True))
    ("asr_wer_avg", "ASR WER avg (%) ↓"),
)
_BASELINE_STYLES = ("--", ":", "-.")
_X_MARGIN = 1.6  # the compression axis spans the ratios ÷ and × this (log scale)
_MIN_TICK_GAP = 1.15  # neighbouring ratio ticks closer than this factor would print over each other


def _pyplot() -> Any | None:
    """``matplotlib.pyplot`` drawing to files only, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _plot_metrics(table: Table3) -> list[tuple[str, str]]:
    """(column, axis label) of the averages the table has."""
    return [(c, label) for c, label in _METRICS if c in table.columns]


def _baselines(table: Table3) -> list[RowKey]:
    return [k for k in table.rows if k[2] == NO_ADAPTER]


def _pairs(table: Table3) -> list[tuple[str, str]]:
    """(SFM, LLM) pairs that have an adapter, in the paper's order."""
    return sorted({k[:2] for k in table.rows if k[2] != NO_ADAPTER}, key=lambda p: row_order((*p, "")))


def _draw_baselines(ax: Any, table: Table3, column: str) -> list[float]:
    """A labelled dashed line per reference run with a value in ``column``; returns the values."""
    values = []
    for i, key in enumerate(_baselines(table)):
        value = table.values[key][column]
        if value is None:
            continue
        style = _BASELINE_STYLES[i % len(_BASELINE_STYLES)]
        name = f"{key[0]} + {key[1]} (no adapter)"
        ax.axhline(value, color="0.25", linestyle=style, linewidth=1.2, label=name)
        values.append(value)
    return values


def _zoom(ax: Any, values: Sequence[float]) -> None:
    """Zoom on the spread between the values: from 0 the bars would all look the same."""
    if not values:
        return
    span = max(values) - min(values) or abs(max(values)) or 1.0
    ax.set_ylim(max(0.0, min(values) - span), max(values) + 0.5 * span)


def quality_by_adapter_figure(table: Table3) -> Any | None:
    """Bars grouped by adapter, one per (SFM, LLM) pair that has a value there, a panel per metric.

    A group holds only the bars it has, centred on its tick (no empty slots); a pair keeps its
    colour across groups. Reference runs without an adapter are dashed lines. None without
    matplotlib or without a Table 3 average to plot.
    """
    plt, metrics = _pyplot(), _plot_metrics(table)
    if plt is None or not metrics:
        return None
    pairs = _pairs(table)
    colours = {pair: f"C{i}" for i, pair in enumerate(pairs)}
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.2), squeeze=False)
    for ax, (column, label) in zip(axes[0], metrics):
        groups: dict[str, list[tuple[tuple[str, str], float]]] = {}
        for key in sorted(table.rows, key=row_order):
            value = table.values[key][column]
            if key[2] != NO_ADAPTER and value is not None:
                groups.setdefault(key[2], []).append((key[:2], value))
        adapters = sorted(groups, key=adapter_order)
        width = 0.8 / max((len(bars) for bars in groups.values()), default=1)
        shown: set[tuple[str, str]] = set()
        for j, adapter in enumerate(adapters):
            for i, (pair, value) in enumerate(groups[adapter]):
                x = j + (i - (len(groups[adapter]) - 1) / 2) * width
                name = f"{pair[0]} + {pair[1]}" if pair not in shown else "_nolegend_"
                ax.bar(x, value, width=width, color=colours[pair], label=name)
                shown.add(pair)
        reference = _draw_baselines(ax, table, column)
        ax.set_xticks(range(len(adapters)), adapters)
        ax.set_xlabel("adapter")
        ax.set_ylabel(label)
        ax.set_title(label + " per adapter")
        _zoom(ax, [value for bars in groups.values() for _, value in bars] + reference)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _round_ratio(ratio: float) -> float:
    """A ratio as people say it: 3.976 → 4, 1.46 → 1.5, 205.2 → 205."""
    return float(round(ratio)) if ratio >= 10 else round(ratio, 1)


def ratio_ticks(ratios: Sequence[float]) -> list[tuple[float, str]]:
    """(position, label) of the x ticks: each ratio rounded, ``4:1``, none printed over another."""
    ticks: list[tuple[float, str]] = []
    for value in sorted({_round_ratio(r) for r in ratios if r > 0}):
        if not ticks or value / ticks[-1][0] >= _MIN_TICK_GAP:
            ticks.append((value, f"{value:g}:1"))
    return ticks


def compression_vs_quality_figure(table: Table3, compression: Sequence[CompressionRow]) -> Any | None:
    """Quality against the compression ratio of what the LLM reads (log axis), a panel per metric.

    One point per run with a measured ratio, named by its adapter; ticks at the rounded ratios;
    reference runs without an adapter are dashed lines. None without matplotlib, without a
    Table 3 average or without a measured ratio.
    """
    plt, metrics = _pyplot(), _plot_metrics(table)
    ratio = {(r.sfm, r.adapter): r.compression_ratio for r in compression}
    if plt is None or not metrics or not ratio:
        return None
    pairs = _pairs(table)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.2), squeeze=False)
    for ax, (column, label) in zip(axes[0], metrics):
        xs: list[float] = []
        for i, pair in enumerate(pairs):
            points = [
                (ratio[(pair[0], k[2])], table.values[k][column], k[2])
                for k in table.rows
                if k[:2] == pair
                and k[2] != NO_ADAPTER
                and (pair[0], k[2]) in ratio
                and table.values[k][column] is not None
            ]
            if not points:
                continue
            xs += [p[0] for p in points]
            name = f"{pair[0]} + {pair[1]}"
            ax.scatter([p[0] for p in points], [p[1] for p in points], color=f"C{i}", label=name)
            for x, y, adapter in points:
                ax.annotate(adapter, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
        _draw_baselines(ax, table, column)
        ax.set_xscale("log")
        if xs:  # a margin on the log axis: a single ratio sits mid-panel, not on an edge
            ax.set_xlim(min(xs) / _X_MARGIN, max(xs) * _X_MARGIN)
            ticks = ratio_ticks(xs)
            ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("compression ratio: encoder frames per vector the LLM reads (log scale)")
        ax.set_ylabel(label)
        ax.set_title(label + " against compression")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _save(plt: Any, fig: Any, path: Path) -> Path:
    with atomic_write(path, keep_suffixes=True) as tmp:  # savefig picks the format by suffix
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_plots(table: Table3, compression: Sequence[CompressionRow], out_dir: Path) -> list[Path]:
    """``quality_by_adapter.png`` and, with measured compression, ``compression_vs_quality.png``.

    Needs matplotlib (``pip install 'speechllm[plots]'``); without it nothing is written and a
    message says so.
    """
    plt = _pyplot()
    if plt is None:
        print("matplotlib is not installed: skipping plots (pip install 'speechllm[plots]')")
        return []
    written = []
    figures = (
        ("quality_by_adapter.png", quality_by_adapter_figure(table)),
        ("compression_vs_quality.png", compression_vs_quality_figure(table, compression)),
    )
    for name, fig in figures:
        if fig is not None:
            written.append(_save(plt, fig, out_dir / name))
    return written
