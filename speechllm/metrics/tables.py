"""The paper's Table 3 (quality) and Table 1 (compression) from loaded runs: values, marks, output.

:func:`compute_table3` puts one row per (SFM, LLM, adapter), marks the best value of each column
within each (SFM, LLM) group (**bold**) and overall (``†``), and stars (``*``) a non-Base result
whose difference from the Base adapter (same SFM, LLM and column) is **not** significant (paired
bootstrap on the per-sentence scores, p ≥ 0.05), the paper's convention. Averages are not tested
(the paper does not star them). :func:`compute_table1` measures compression per (SFM, adapter).
Both are written as Markdown and CSV here; :mod:`speechllm.metrics.run_report` reads the runs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechllm.errors import UsageError
from speechllm.io import atomic_write
from speechllm.metrics.paper import ASR_LANGUAGES, ST_DIRECTIONS, paper_compression, paper_table3
from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES, paired_bootstrap
from speechllm.rundir import Compression

RowKey = tuple[str, str, str]  # (SFM, LLM, adapter), the paper's names
# The option of `speechllm evaluate` that sets the adapter's name in run.json (one report row each).
DUPLICATE_LABEL_OPTION = "--adapter-label"
Mark = tuple[RowKey, str]  # (row, column)

_SFM_ORDER = ("SeamlessM4T", "Whisper")
_LLM_ORDER = ("Mistral", "Llama 3.1")
_ADAPTER_ORDER = ("Base", "CIF-based", "Conv-based", "CTC-based", "WLQ-former")


def lower_is_better(column: str) -> bool:
    return column.startswith("asr_wer")


def _order(value: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(value) if value in known else len(known), value)


def adapter_order(adapter: str) -> tuple[int, str]:
    """Sort key of an adapter: the paper's order, then unknown names alphabetically."""
    return _order(adapter, _ADAPTER_ORDER)


def row_order(key: RowKey) -> tuple:
    """Sort key of a row: the paper's SFM, LLM and adapter order."""
    sfm, llm, adapter = key
    return (_order(sfm, _SFM_ORDER), _order(llm, _LLM_ORDER), adapter_order(adapter))


@dataclass
class RunResult:
    """One evaluated run directory, keyed by the paper's names of its SFM, LLM and adapter."""

    run_dir: Path
    sfm: str
    llm: str
    adapter: str
    scores: dict[str, float] = field(default_factory=dict)
    sentence_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    compression: Compression | None = None
    # per task: (cuts skipped for unusable audio, cuts in the manifests), from run.json
    test_sets: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    decoding: str = "greedy"  # how the run was decoded, e.g. "beam 4, no-repeat 3-grams"

    @property
    def key(self) -> RowKey:
        return (self.sfm, self.llm, self.adapter)


def _merge_runs(runs: Iterable[RunResult]) -> dict[RowKey, RunResult]:
    """Runs of the same (SFM, LLM, adapter), e.g. an ASR and an ST evaluation, become one row.

    Raises:
        UsageError: two runs of one row score the same column (two trainings of one adapter).
    """
    merged: dict[RowKey, RunResult] = {}
    scored_by: dict[tuple[RowKey, str], Path] = {}  # which run a row's column came from
    for run in runs:
        if run.key not in merged:
            merged[run.key] = RunResult(run.run_dir, *run.key, compression=run.compression)
        target = merged[run.key]
        for column, value in run.scores.items():
            first = scored_by.setdefault((run.key, column), run.run_dir)
            if first != run.run_dir:
                raise UsageError(
                    f"{first} and {run.run_dir} both score {column} of {' + '.join(run.key)} (one "
                    "report row): give each run its own adapter label with `speechllm evaluate "
                    f"{DUPLICATE_LABEL_OPTION} LABEL` (e.g. {DUPLICATE_LABEL_OPTION} conv-run2), or "
                    "pass them to separate reports"
                )
            target.scores[column] = value
            target.sentence_scores[column] = run.sentence_scores[column]
        if target.compression is None:
            target.compression = run.compression
    return merged


def _columns(rows: Iterable[RunResult]) -> tuple[list[str], list[str]]:
    """ST then ASR metric columns present in any row, the paper's languages first."""
    present = {c for row in rows for c in row.scores}
    st = [f"st_comet_{d}" for d in ST_DIRECTIONS if f"st_comet_{d}" in present]
    st += sorted(c for c in present if c.startswith("st_comet_") and c not in st)
    asr = [f"asr_wer_{lang}" for lang in ASR_LANGUAGES if f"asr_wer_{lang}" in present]
    asr += sorted(c for c in present if c.startswith("asr_wer_") and c not in asr)
    return st, asr


@dataclass
class Table3:
    """Table 3 as computed: values, best marks, significance and the paper's numbers."""

    columns: list[str]
    rows: list[RowKey]
    values: dict[RowKey, dict[str, float | None]]
    p_values: dict[RowKey, dict[str, float]]
    best_in_group: set[Mark]
    best_overall: set[Mark]
    not_significant: set[Mark]
    paper: dict[RowKey, dict[str, float]]
    paper_not_significant: dict[RowKey, frozenset[str]]


def _row_values(row: RunResult, st_columns: list[str], asr_columns: list[str]) -> dict[str, float | None]:
    """A row's cells: its scores and, when it has every column of a task, the task's average."""
    cells: dict[str, float | None] = {c: row.scores.get(c) for c in st_columns + asr_columns}
    for name, group in (("st_comet_avg", st_columns), ("asr_wer_avg", asr_columns)):
        if group:
            # An average over fewer directions than the other rows would not be comparable.
            present = [row.scores[c] for c in group if c in row.scores]
            cells[name] = sum(present) / len(present) if len(present) == len(group) else None
    return cells


def _best_marks(
    values: dict[RowKey, dict[str, float | None]], keys: list[RowKey], columns: list[str]
) -> tuple[set[Mark], set[Mark]]:
    """(best within each (SFM, LLM) group, best overall) per column; ties all marked."""
    best_in_group: set[Mark] = set()
    best_overall: set[Mark] = set()
    for column in columns:
        pick = min if lower_is_better(column) else max
        scored = [(k, values[k][column]) for k in keys if values[k][column] is not None]
        if not scored:
            continue
        top = pick(v for _, v in scored)
        best_overall |= {(k, column) for k, v in scored if v == top}
        for group in {k[:2] for k, _ in scored}:
            in_group = [(k, v) for k, v in scored if k[:2] == group]
            group_top = pick(v for _, v in in_group)
            best_in_group |= {(k, column) for k, v in in_group if v == group_top}
    return best_in_group, best_overall


def _paired_scores(base: RunResult, other: RunResult, column: str) -> tuple[list[float], list[float]]:
    base_scores, other_scores = base.sentence_scores[column], other.sentence_scores[column]
    if base_scores.keys() != other_scores.keys():
        only_base = len(base_scores.keys() - other_scores.keys())
        only_other = len(other_scores.keys() - base_scores.keys())
        raise ValueError(
            f"{column}: {base.run_dir} and {other.run_dir} scored different sentences "
            f"({only_base} ids only in the first, {only_other} only in the second); "
            "significance needs the same test set"
        )
    ids = list(base_scores)
    return [base_scores[i] for i in ids], [other_scores[i] for i in ids]


def _significance(
    merged: dict[RowKey, RunResult], keys: list[RowKey], columns: list[str], n_resamples: int, seed: int
) -> dict[RowKey, dict[str, float]]:
    """p-values of each non-Base row against its group's Base row, per column both have."""
    p_values: dict[RowKey, dict[str, float]] = {k: {} for k in keys}
    for key in keys:
        base_key = (key[0], key[1], "Base")
        if key[2] == "Base" or base_key not in merged:
            continue
        for column in columns:
            if column not in merged[key].sentence_scores or column not in merged[base_key].sentence_scores:
                continue
            base_scores, scores = _paired_scores(merged[base_key], merged[key], column)
            result = paired_bootstrap(base_scores, scores, n_resamples=n_resamples, seed=seed)
            p_values[key][column] = result.p_value
    return p_values


def compute_table3(
    runs: Iterable[RunResult],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
) -> Table3:
    """Table 3 from runs: averages, best marks and significance against Base (see module docstring)."""
    merged = _merge_runs(runs)
    if not merged:
        raise ValueError("no runs to report")
    st_columns, asr_columns = _columns(merged.values())
    columns = list(st_columns) + (["st_comet_avg"] if st_columns else [])
    columns += list(asr_columns) + (["asr_wer_avg"] if asr_columns else [])
    keys = sorted(merged, key=row_order)
    values = {key: _row_values(merged[key], st_columns, asr_columns) for key in keys}
    best_in_group, best_overall = _best_marks(values, keys, columns)
    p_values = _significance(merged, keys, st_columns + asr_columns, n_resamples, seed)
    not_significant = {(k, c) for k, row in p_values.items() for c, p in row.items() if p >= alpha}
    paper_rows = {(r.sfm, r.llm, r.adapter): r for r in paper_table3()}
    paper = {k: dict(paper_rows[k].scores) for k in keys if k in paper_rows}
    paper_stars = {k: paper_rows[k].not_significant for k in keys if k in paper_rows}
    return Table3(
        columns, keys, values, p_values, best_in_group, best_overall, not_significant, paper, paper_stars
    )


# What Table 1 measured, per row: the stage that feeds the LLM.
ADAPTER_OUTPUTS = "adapter outputs"
PREALIGN_READOUT = "pre-alignment readout"


@dataclass
class CompressionRow:
    """One row of Table 1; ``compression_ratio`` and ``output_hz`` are of ``llm_reads``, the stage
    that feeds the LLM (the adapter's outputs, or a pre-alignment readout that merges them)."""

    sfm: str
    adapter: str
    llms: list[str]
    compression_ratio: float
    output_hz: float
    paper_compression_ratio: float | None
    paper_output_hz: float | None
    llm_reads: str = ADAPTER_OUTPUTS


def compute_table1(runs: Iterable[RunResult]) -> list[CompressionRow]:
    """Measured compression per (SFM, adapter): mean encoder frames / mean vectors the LLM reads.

    The LLM reads the adapter's outputs or, after a pre-alignment readout that merges runs of
    frames (``mean_read_len`` in ``compression.json``), the readout's: Table 1 measures that stage
    and ``llm_reads`` says which. Runs of the same SFM and adapter with different LLMs (CTC and CIF
    depend on the LLM's tokenizer) are averaged; ``llms`` lists them.
    """
    groups: dict[tuple[str, str], list[tuple[str, Compression]]] = {}
    for run in _merge_runs(runs).values():
        if run.compression is not None:
            groups.setdefault((run.sfm, run.adapter), []).append((run.llm, run.compression))
    rows = []
    for (sfm, adapter), members in sorted(groups.items(), key=lambda kv: row_order((kv[0][0], "", kv[0][1]))):
        ratios = [c.llm_input_ratio for _, c in members]
        rates = [c.llm_input_rate_hz for _, c in members]
        stages = sorted({PREALIGN_READOUT if c.reads_readout else ADAPTER_OUTPUTS for _, c in members})
        paper = paper_compression(sfm, adapter)
        rows.append(
            CompressionRow(
                sfm=sfm,
                adapter=adapter,
                llms=sorted(llm for llm, _ in members),
                compression_ratio=sum(ratios) / len(ratios),
                output_hz=sum(rates) / len(rates),
                paper_compression_ratio=None if paper is None else paper.compression_ratio,
                paper_output_hz=None if paper is None else paper.sampling_rate_hz,
                llm_reads=", ".join(stages),
            )
        )
    return rows


# -- output ---------------------------------------------------------------------------------------
def _header(column: str) -> str:
    if column.startswith("st_comet_"):
        return column.removeprefix("st_comet_")
    return column.removeprefix("asr_wer_")


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


def table3_markdown(table: Table3, with_paper: bool = True) -> str:
    """Table 3 in Markdown: ST COMET per direction + avg, then ASR WER per language + avg."""
    st = [c for c in table.columns if c.startswith("st_comet_")]
    asr = [c for c in table.columns if c.startswith("asr_wer_")]
    groups = [("ST COMET ↑", st), ("ASR WER ↓", asr)]
    headers = ["SFM", "LLM", "Adapter"]
    for title, group in groups:
        headers += [f"{title} {_header(c)}" for c in group]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * 3 + "--:|" * (len(headers) - 3)]
    for key in table.rows:
        cells = [*key] + [_cell(table, key, c, with_paper) for c in st + asr]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table1_markdown(rows: Sequence[CompressionRow]) -> str:
    lines = [
        "| SFM | Adapter | LLMs | ratio (ours) | Hz (ours) | ratio (paper) | Hz (paper) | LLM reads |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        paper_ratio = "–" if row.paper_compression_ratio is None else f"{row.paper_compression_ratio:.0f}:1"
        paper_hz = "–" if row.paper_output_hz is None else f"{row.paper_output_hz:.2f}"
        lines.append(
            f"| {row.sfm} | {row.adapter} | {', '.join(row.llms)} | {row.compression_ratio:.1f}:1 "
            f"| {row.output_hz:.2f} | {paper_ratio} | {paper_hz} | {row.llm_reads} |"
        )
    return "\n".join(lines)


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value


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
                }
            )
