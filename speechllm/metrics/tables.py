"""The paper's Table 3 (quality) and Table 1 (compression) from loaded runs: values, marks, output.

:func:`compute_table3` puts one row per (SFM, LLM, adapter), marks the best value of each column
within each (SFM, LLM) group (**bold**) and overall (``†``), and stars (``*``) a non-Base result
whose difference from the Base adapter (same SFM, LLM and column) is **not** significant (paired
bootstrap on the per-sentence scores, p ≥ 0.05), the paper's convention. Averages are not tested
(the paper does not star them). Columns come in metric families (:data:`METRIC_FAMILIES`: the
paper's ST COMET and ASR WER, and ST BLEU / chrF when no COMET model is at hand), each with its
average. :func:`compute_table1` measures compression per (SFM, adapter). Both are written as
Markdown and CSV by :mod:`speechllm.metrics.table_output`; :mod:`speechllm.metrics.run_report`
reads the runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechllm.errors import UsageError
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
# Table 3's metric families, in the order the table shows them: (column prefix, heading).
METRIC_FAMILIES = (
    ("st_comet", "ST COMET ↑"),
    ("st_bleu", "ST BLEU ↑"),
    ("st_chrf", "ST chrF ↑"),
    ("asr_wer", "ASR WER ↓"),
)


def lower_is_better(column: str) -> bool:
    return column.startswith("asr_wer")


def metric_family(column: str) -> str | None:
    """The family prefix of a Table 3 column (``st_bleu_de-en`` → ``st_bleu``), or None."""
    return next((prefix for prefix, _ in METRIC_FAMILIES if column.startswith(prefix + "_")), None)


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


def merge_runs(runs: Iterable[RunResult]) -> dict[RowKey, RunResult]:
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


def _columns(rows: Iterable[RunResult]) -> dict[str, list[str]]:
    """Metric columns present in any row, per family (:data:`METRIC_FAMILIES` order), the paper's
    directions and languages first, then the others (e.g. another test set's) alphabetically."""
    present = {c for row in rows for c in row.scores}
    columns: dict[str, list[str]] = {}
    for prefix, _ in METRIC_FAMILIES:
        known = ASR_LANGUAGES if prefix == "asr_wer" else ST_DIRECTIONS
        group = [f"{prefix}_{name}" for name in known if f"{prefix}_{name}" in present]
        group += sorted(c for c in present if metric_family(c) == prefix and c not in group)
        if group:
            columns[prefix] = group
    return columns


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
    # sentences each value rests on (the per-sentence scores read), per row and column
    clips: dict[RowKey, dict[str, int]] = field(default_factory=dict)


def _row_values(row: RunResult, families: dict[str, list[str]]) -> dict[str, float | None]:
    """A row's cells: its scores and, when it has every column of a family, the family's average."""
    cells: dict[str, float | None] = {c: row.scores.get(c) for group in families.values() for c in group}
    for prefix, group in families.items():
        # An average over fewer directions than the other rows would not be comparable.
        present = [row.scores[c] for c in group if c in row.scores]
        cells[f"{prefix}_avg"] = sum(present) / len(present) if len(present) == len(group) else None
    return cells


def _best_marks(
    values: dict[RowKey, dict[str, float | None]], keys: list[RowKey], columns: list[str]
) -> tuple[set[Mark], set[Mark]]:
    """(best within each (SFM, LLM) group, best overall) per column among ``keys``; ties all marked."""
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
    reference_adapters: Collection[str] = (),
) -> Table3:
    """Table 3 from runs: averages, best marks and significance against Base (see module docstring).

    Args:
        reference_adapters: adapter labels of reference rows (an untrained floor, another system's
            own decoder): shown and tested against Base, never marked best.
    """
    merged = merge_runs(runs)
    if not merged:
        raise ValueError("no runs to report")
    families = _columns(merged.values())
    columns = [c for prefix, group in families.items() for c in [*group, f"{prefix}_avg"]]
    scored = [c for group in families.values() for c in group]
    keys = sorted(merged, key=row_order)
    values = {key: _row_values(merged[key], families) for key in keys}
    candidates = [k for k in keys if k[2] not in reference_adapters]
    best_in_group, best_overall = _best_marks(values, candidates, columns)
    p_values = _significance(merged, keys, scored, n_resamples, seed)
    not_significant = {(k, c) for k, row in p_values.items() for c, p in row.items() if p >= alpha}
    paper_rows = {(r.sfm, r.llm, r.adapter): r for r in paper_table3()}
    paper = {k: dict(paper_rows[k].scores) for k in keys if k in paper_rows}
    paper_stars = {k: paper_rows[k].not_significant for k in keys if k in paper_rows}
    clips = {k: {c: len(s) for c, s in merged[k].sentence_scores.items()} for k in keys}
    return Table3(
        columns,
        keys,
        values,
        p_values,
        best_in_group,
        best_overall,
        not_significant,
        paper,
        paper_stars,
        clips,
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
    # the adapter's own outputs, before any readout (what the paper's adapters feed the LLM)
    adapter_compression_ratio: float | None = None
    adapter_output_hz: float | None = None


def compute_table1(runs: Iterable[RunResult]) -> list[CompressionRow]:
    """Measured compression per (SFM, adapter): mean encoder frames / mean vectors the LLM reads.

    The LLM reads the adapter's outputs or, after a pre-alignment readout that merges runs of
    frames (``mean_read_len`` in ``compression.json``), the readout's: Table 1 measures that stage
    and ``llm_reads`` says which; ``adapter_*`` keep the adapter's own outputs. Runs of the same
    SFM and adapter with different LLMs (CTC and CIF depend on the LLM's tokenizer) are averaged;
    ``llms`` lists them.
    """
    groups: dict[tuple[str, str], list[tuple[str, Compression]]] = {}
    for run in merge_runs(runs).values():
        if run.compression is not None:
            groups.setdefault((run.sfm, run.adapter), []).append((run.llm, run.compression))
    rows = []
    for (sfm, adapter), members in sorted(groups.items(), key=lambda kv: row_order((kv[0][0], "", kv[0][1]))):
        ratios = [c.llm_input_ratio for _, c in members]
        rates = [c.llm_input_rate_hz for _, c in members]
        own_ratios = [c.compression_ratio for _, c in members]
        own_rates = [c.output_rate_hz for _, c in members]
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
                adapter_compression_ratio=sum(own_ratios) / len(own_ratios),
                adapter_output_hz=sum(own_rates) / len(own_rates),
            )
        )
    return rows
