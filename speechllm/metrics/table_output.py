"""Table 3 and Table 1 as computed by :mod:`speechllm.metrics.tables`, written out: Markdown and CSV.

Table 3's marks: **bold** the best of each (SFM, LLM) group, ``†`` the best overall, ``*`` a
difference from Base that is not significant; the paper's value in parentheses where asked.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from speechllm.io import atomic_write
from speechllm.metrics.tables import METRIC_FAMILIES, CompressionRow, RowKey, Table3, metric_family


def _header(column: str) -> str:
    family = metric_family(column)
    return column if family is None else column.removeprefix(family + "_")


def _clips_cell(table: Table3, column: str) -> str:
    """How many sentences the column's values rest on: one number, or the range when rows differ."""
    counts = sorted({table.clips[k][column] for k in table.rows if column in table.clips.get(k, {})})
    if not counts:
        return ""
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _cell(table: Table3, key: RowKey, column: str, with_paper: bool) -> str:
    value = table.values[key][column]
    text = "–" if value is None else f"{value:.2f}"
    if value is not None and (key, column) in table.best_in_group:
        text = f"**{text}**"
    if (key, column) in table.best_overall:
        text += "†"
    if (key, column) in table.not_significant:
        text += "\\*"
    if with_paper and key in table.paper and column in table.paper[key]:
        star = "\\*" if column in table.paper_not_significant.get(key, ()) else ""
        text += f" ({table.paper[key][column]:.2f}{star})"
    return text


def table3_markdown(table: Table3, with_paper: bool = True, clips: bool = False) -> str:
    """Table 3 in Markdown: per metric family (ST COMET, BLEU, chrF, then ASR WER), its columns + avg.

    Args:
        with_paper: the paper's value in parentheses after ours, where the paper has the cell.
        clips: a last row with the number of test sentences each column's values rest on.
    """
    columns = [c for prefix, _ in METRIC_FAMILIES for c in table.columns if metric_family(c) == prefix]
    titles = dict(METRIC_FAMILIES)
    headers = ["SFM", "LLM", "Adapter"] + [f"{titles[metric_family(c)]} {_header(c)}" for c in columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * 3 + "--:|" * (len(headers) - 3)]
    for key in table.rows:
        cells = [*key] + [_cell(table, key, c, with_paper) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if clips:
        lines.append("| clips | | | " + " | ".join(_clips_cell(table, c) for c in columns) + " |")
    return "\n".join(lines)


def _ratio_text(ratio: float | None, digits: int = 1) -> str:
    return "–" if ratio is None else f"{ratio:.{digits}f}:1"


def _hz_text(hz: float | None) -> str:
    return "–" if hz is None else f"{hz:.2f}"


def table1_markdown(rows: Sequence[CompressionRow], adapter_outputs: bool = False) -> str:
    """Table 1 in Markdown; ``adapter_outputs`` adds the adapter's own ratio and rate (before a
    pre-alignment readout) beside those of what the LLM reads."""
    own = " ratio (adapter outputs) | Hz (adapter outputs) |" if adapter_outputs else ""
    ours = "LLM reads" if adapter_outputs else "ours"
    lines = [
        f"| SFM | Adapter | LLMs |{own} ratio ({ours}) | Hz ({ours}) | ratio (paper) | Hz (paper) "
        "| LLM reads |",
        "|---|---|---|" + "--:|" * (4 + 2 * adapter_outputs) + "---|",
    ]
    for row in rows:
        cells = f" {_ratio_text(row.adapter_compression_ratio)} | {_hz_text(row.adapter_output_hz)} |"
        lines.append(
            f"| {row.sfm} | {row.adapter} | {', '.join(row.llms)} |{cells if adapter_outputs else ''} "
            f"{_ratio_text(row.compression_ratio)} | {_hz_text(row.output_hz)} "
            f"| {_ratio_text(row.paper_compression_ratio, 0)} | {_hz_text(row.paper_output_hz)} "
            f"| {row.llm_reads} |"
        )
    return "\n".join(lines)


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value


def _rounded(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)


def write_table3_csv(table: Table3, path: Path) -> None:
    """One line per row: each column's value, its p-value against Base and the paper's value."""
    fields = ["sfm", "llm", "adapter"]
    for column in table.columns:
        fields += [column, f"{column}_p_vs_base", f"paper_{column}"]
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for key in table.rows:
            record: dict[str, str | float] = dict(zip(("sfm", "llm", "adapter"), key))
            for column in table.columns:
                value = table.values[key][column]
                record[column] = "" if value is None else round(value, 4)
                p_value = table.p_values[key].get(column)
                record[f"{column}_p_vs_base"] = "" if p_value is None else round(p_value, 4)
                record[f"paper_{column}"] = table.paper.get(key, {}).get(column, "")
            writer.writerow(record)


def write_table1_csv(rows: Sequence[CompressionRow], path: Path) -> None:
    """One line per (SFM, adapter): measured and paper compression ratio and output rate, and the
    stage measured (``llm_reads``)."""
    fields = ["sfm", "adapter", "llms", "compression_ratio", "output_hz"]
    fields += ["paper_compression_ratio", "paper_output_hz", "llm_reads"]
    fields += ["adapter_compression_ratio", "adapter_output_hz"]
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    "sfm": row.sfm,
                    "adapter": row.adapter,
                    "llms": ";".join(row.llms),
                    "compression_ratio": round(row.compression_ratio, 4),
                    "output_hz": round(row.output_hz, 4),
                    "paper_compression_ratio": _blank_if_none(row.paper_compression_ratio),
                    "paper_output_hz": _blank_if_none(row.paper_output_hz),
                    "llm_reads": row.llm_reads,
                    "adapter_compression_ratio": _rounded(row.adapter_compression_ratio),
                    "adapter_output_hz": _rounded(row.adapter_output_hz),
                }
            )
