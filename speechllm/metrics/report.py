"""Build the paper's Table 3 and Table 1 from evaluated run directories: Markdown, CSV, PNG plots.

A run directory (written by the evaluation callbacks / ``speechllm evaluate``; see
``docs/evaluation.md``) holds:

- ``run.json``: ``{"sfm": "seamless", "llm": "llama", "adapter": "wlq_former", ...}``;
- ``hyps_st_<src>-<tgt>.tsv`` and ``hyps_asr_<lang>.tsv``: UTF-8, tab-separated, a header
  ``id  reference  hypothesis  score`` (optionally ``source``), one line per test sentence; ``score``
  is the sentence's score (COMET × 100 for ST, WER in percent for ASR);
- ``metrics.json`` (optional): corpus-level scores under Table 3's column names
  (``"st_comet_en-de"``, ``"asr_wer_en"``; other keys are ignored); a column missing there is
  the mean of its TSV's ``score`` column;
- ``compression.json`` (optional): ``{"encoder_frame_rate_hz": 50.0, "mean_in_len": ...,
  "mean_out_len": ...}`` (mean encoder frames and adapter outputs per utterance).

The report marks, per column, the best value within each (SFM, LLM) group in **bold** and the
best overall with ``†``; a ``*`` marks a non-Base result whose difference from the Base adapter
(same SFM, LLM and column) is **not** significant (paired bootstrap on the per-sentence scores,
p ≥ 0.05), the paper's convention. Averages are not tested (the paper does not star them).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechllm.metrics.paper import (
    ASR_LANGUAGES,
    ST_DIRECTIONS,
    canonical_adapter,
    canonical_llm,
    canonical_sfm,
    paper_compression,
    paper_table3,
)
from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES, paired_bootstrap

HYPS_COLUMNS = ("id", "reference", "hypothesis", "score")
_HYPS_FILE = re.compile(r"^hyps_(asr|st)_([A-Za-z]{2,3})(?:-([A-Za-z]{2,3}))?\.tsv$")
_SFM_ORDER = ("SeamlessM4T", "Whisper")
_LLM_ORDER = ("Mistral", "Llama 3.1")
_ADAPTER_ORDER = ("Base", "CIF-based", "Conv-based", "CTC-based", "WLQ-former")


def write_hypotheses(
    path: str | Path,
    ids: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    scores: Sequence[float],
    sources: Sequence[str] | None = None,
) -> None:
    """Write a hypotheses TSV in the run-directory format (tabs and newlines in text become spaces)."""
    columns = list(HYPS_COLUMNS) if sources is None else ["id", "source", "reference", "hypothesis", "score"]
    lengths = {len(ids), len(references), len(hypotheses), len(scores)} | (
        set() if sources is None else {len(sources)}
    )
    if len(lengths) != 1:
        raise ValueError(f"{path}: ids, references, hypotheses, scores (and sources) differ in length")

    def clean(text: str) -> str:
        return " ".join(str(text).split())

    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(columns) + "\n")
        for i in range(len(ids)):
            row = {"id": ids[i], "reference": references[i], "hypothesis": hypotheses[i], "score": scores[i]}
            if sources is not None:
                row["source"] = sources[i]
            cells = [repr(float(row["score"])) if c == "score" else clean(row[c]) for c in columns]
            handle.write("\t".join(cells) + "\n")


def read_hypotheses(path: str | Path) -> dict[str, dict[str, str | float]]:
    """Read a hypotheses TSV: ``{id: {"reference", "hypothesis", "score", ["source"]}}`` in file order."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in HYPS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(HYPS_COLUMNS)}")
        rows: dict[str, dict[str, str | float]] = {}
        for line_no, record in enumerate(reader, start=2):
            sentence_id = record["id"]
            if sentence_id in rows:
                raise ValueError(f"{path} line {line_no}: duplicate id {sentence_id!r}")
            try:
                score = float(record["score"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path} line {line_no}: bad score {record['score']!r}") from error
            if not math.isfinite(score):
                raise ValueError(f"{path} line {line_no}: score is not finite")
            rows[sentence_id] = {**record, "score": score}
    if not rows:
        raise ValueError(f"{path}: no sentences")
    return rows


def column_for_hyps_file(name: str) -> str | None:
    """Table 3 column of a hypotheses file name: ``hyps_st_en-de.tsv`` → ``st_comet_en-de``."""
    match = _HYPS_FILE.match(name)
    if match is None:
        return None
    task, first, second = match.group(1), match.group(2).lower(), match.group(3)
    if task == "asr":
        if second is not None and second.lower() != first:
            return None
        return f"asr_wer_{first}"
    if second is None:
        return None
    return f"st_comet_{first}-{second.lower()}"


def lower_is_better(column: str) -> bool:
    return column.startswith("asr_wer")


@dataclass
class RunResult:
    """One evaluated run directory, keyed by the paper's names of its SFM, LLM and adapter."""

    run_dir: Path
    sfm: str
    llm: str
    adapter: str
    scores: dict[str, float] = field(default_factory=dict)
    sentence_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    compression: dict[str, float] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.sfm, self.llm, self.adapter)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def load_run(run_dir: str | Path) -> RunResult:
    """Read one run directory (format in the module docstring)."""
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise FileNotFoundError(f"{run_file} not found: is {run_dir} an evaluated run directory?")
    info = _read_json(run_file)
    for key in ("sfm", "llm", "adapter"):
        if not isinstance(info.get(key), str):
            raise ValueError(f"{run_file}: missing string key {key!r}")
    run = RunResult(
        run_dir=run_dir,
        sfm=canonical_sfm(info["sfm"]),
        llm=canonical_llm(info["llm"]),
        adapter=canonical_adapter(info["adapter"]),
    )
    metrics = _read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    for path in sorted(run_dir.glob("hyps_*.tsv")):
        column = column_for_hyps_file(path.name)
        if column is None:
            raise ValueError(f"{path}: name must be hyps_st_<src>-<tgt>.tsv or hyps_asr_<lang>.tsv")
        rows = read_hypotheses(path)
        run.sentence_scores[column] = {i: float(r["score"]) for i, r in rows.items()}
        if column in metrics:
            if not isinstance(metrics[column], (int, float)):
                raise ValueError(f"{run_dir / 'metrics.json'}: {column!r} must be a number")
            run.scores[column] = float(metrics[column])
        else:
            values = run.sentence_scores[column].values()
            run.scores[column] = sum(values) / len(values)
    if not run.scores:
        raise ValueError(f"{run_dir}: no hyps_*.tsv files")
    compression_file = run_dir / "compression.json"
    if compression_file.is_file():
        compression = _read_json(compression_file)
        for key in ("encoder_frame_rate_hz", "mean_in_len", "mean_out_len"):
            if not isinstance(compression.get(key), (int, float)) or compression[key] <= 0:
                raise ValueError(f"{compression_file}: {key!r} must be a positive number")
        run.compression = {
            k: float(compression[k]) for k in ("encoder_frame_rate_hz", "mean_in_len", "mean_out_len")
        }
    return run


def _merge_runs(runs: Iterable[RunResult]) -> dict[tuple[str, str, str], RunResult]:
    """Runs of the same (SFM, LLM, adapter), e.g. an ASR and an ST evaluation, become one row."""
    merged: dict[tuple[str, str, str], RunResult] = {}
    for run in runs:
        if run.key not in merged:
            merged[run.key] = RunResult(run.run_dir, *run.key, compression=run.compression)
        target = merged[run.key]
        for column, value in run.scores.items():
            if column in target.scores:
                raise ValueError(f"{column} of {run.key} is in both {target.run_dir} and {run.run_dir}")
            target.scores[column] = value
            target.sentence_scores[column] = run.sentence_scores[column]
        if target.compression is None:
            target.compression = run.compression
    return merged


def _order(value: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(value) if value in known else len(known), value)


def _row_order(key: tuple[str, str, str]) -> tuple:
    sfm, llm, adapter = key
    return (_order(sfm, _SFM_ORDER), _order(llm, _LLM_ORDER), _order(adapter, _ADAPTER_ORDER))


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
    rows: list[tuple[str, str, str]]
    values: dict[tuple[str, str, str], dict[str, float | None]]
    p_values: dict[tuple[str, str, str], dict[str, float]]
    best_in_group: set[tuple[tuple[str, str, str], str]]
    best_overall: set[tuple[tuple[str, str, str], str]]
    not_significant: set[tuple[tuple[str, str, str], str]]
    paper: dict[tuple[str, str, str], dict[str, float]]
    paper_not_significant: dict[tuple[str, str, str], frozenset[str]]


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
    keys = sorted(merged, key=_row_order)

    values: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for key in keys:
        row = merged[key]
        cells: dict[str, float | None] = {c: row.scores.get(c) for c in st_columns + asr_columns}
        for name, group in (("st_comet_avg", st_columns), ("asr_wer_avg", asr_columns)):
            if group:
                # An average over fewer directions than the other rows would not be comparable.
                present = [row.scores[c] for c in group if c in row.scores]
                cells[name] = sum(present) / len(present) if len(present) == len(group) else None
        values[key] = cells

    best_in_group: set = set()
    best_overall: set = set()
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

    p_values: dict[tuple[str, str, str], dict[str, float]] = {k: {} for k in keys}
    not_significant: set = set()
    for key in keys:
        base_key = (key[0], key[1], "Base")
        if key[2] == "Base" or base_key not in merged:
            continue
        for column in st_columns + asr_columns:
            if column not in merged[key].sentence_scores or column not in merged[base_key].sentence_scores:
                continue
            base_scores, scores = _paired_scores(merged[base_key], merged[key], column)
            result = paired_bootstrap(base_scores, scores, n_resamples=n_resamples, seed=seed)
            p_values[key][column] = result.p_value
            if result.p_value >= alpha:
                not_significant.add((key, column))

    paper_rows = {(r.sfm, r.llm, r.adapter): r for r in paper_table3()}
    paper = {k: dict(paper_rows[k].scores) for k in keys if k in paper_rows}
    paper_stars = {k: paper_rows[k].not_significant for k in keys if k in paper_rows}
    return Table3(
        columns, keys, values, p_values, best_in_group, best_overall, not_significant, paper, paper_stars
    )


@dataclass
class CompressionRow:
    sfm: str
    adapter: str
    llms: list[str]
    compression_ratio: float
    output_hz: float
    paper_compression_ratio: float | None
    paper_output_hz: float | None


def compute_table1(runs: Iterable[RunResult]) -> list[CompressionRow]:
    """Measured compression per (SFM, adapter): mean encoder frames / mean adapter outputs.

    Runs of the same SFM and adapter with different LLMs (CTC and CIF depend on the LLM's
    tokenizer) are averaged; ``llms`` lists them.
    """
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in _merge_runs(runs).values():
        if run.compression is not None:
            groups.setdefault((run.sfm, run.adapter), []).append(run)
    rows = []
    for (sfm, adapter), members in sorted(
        groups.items(), key=lambda kv: _row_order((kv[0][0], "", kv[0][1]))
    ):
        ratios = [m.compression["mean_in_len"] / m.compression["mean_out_len"] for m in members]
        rates = [m.compression["encoder_frame_rate_hz"] / r for m, r in zip(members, ratios)]
        paper = paper_compression(sfm, adapter)
        rows.append(
            CompressionRow(
                sfm=sfm,
                adapter=adapter,
                llms=sorted(m.llm for m in members),
                compression_ratio=sum(ratios) / len(ratios),
                output_hz=sum(rates) / len(rates),
                paper_compression_ratio=None if paper is None else paper.compression_ratio,
                paper_output_hz=None if paper is None else paper.sampling_rate_hz,
            )
        )
    return rows


def _header(column: str) -> str:
    if column.startswith("st_comet_"):
        return column.removeprefix("st_comet_")
    return column.removeprefix("asr_wer_")


def _cell(table: Table3, key: tuple[str, str, str], column: str, with_paper: bool) -> str:
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
        "| SFM | Adapter | LLMs | ratio (ours) | Hz (ours) | ratio (paper) | Hz (paper) |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        paper_ratio = "–" if row.paper_compression_ratio is None else f"{row.paper_compression_ratio:.0f}:1"
        paper_hz = "–" if row.paper_output_hz is None else f"{row.paper_output_hz:.2f}"
        lines.append(
            f"| {row.sfm} | {row.adapter} | {', '.join(row.llms)} | {row.compression_ratio:.1f}:1 "
            f"| {row.output_hz:.2f} | {paper_ratio} | {paper_hz} |"
        )
    return "\n".join(lines)


def _write_table3_csv(table: Table3, path: Path) -> None:
    fields = ["sfm", "llm", "adapter"]
    for column in table.columns:
        fields += [column, f"{column}_p_vs_base", f"paper_{column}"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
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


def _write_table1_csv(rows: Sequence[CompressionRow], path: Path) -> None:
    fields = [
        "sfm",
        "adapter",
        "llms",
        "compression_ratio",
        "output_hz",
        "paper_compression_ratio",
        "paper_output_hz",
    ]
    with open(path, "w", encoding="utf-8", newline="") as handle:
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
                    "paper_compression_ratio": ""
                    if row.paper_compression_ratio is None
                    else row.paper_compression_ratio,
                    "paper_output_hz": "" if row.paper_output_hz is None else row.paper_output_hz,
                }
            )


def _plot_metrics(table: Table3) -> list[tuple[str, str]]:
    return [
        (c, label)
        for c, label in (("st_comet_avg", "ST COMET avg ↑"), ("asr_wer_avg", "ASR WER avg ↓"))
        if c in table.columns
    ]


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
    pairs = sorted({k[:2] for k in table.rows}, key=lambda p: _row_order((*p, "")))
    adapters = sorted({k[2] for k in table.rows}, key=lambda a: _order(a, _ADAPTER_ORDER))
    written = []

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
        span = max(finite) - min(finite) or 1.0
        ax.set_ylim(max(0.0, min(finite) - span), max(finite) + 0.5 * span)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    path = out_dir / "quality_by_adapter.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

    ratio = {(r.sfm, r.adapter): r.compression_ratio for r in compression}
    if ratio:
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
                    ax.annotate(
                        adapter, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small"
                    )
            ax.set_xscale("log")
            ticks = sorted({r for (sfm, _), r in ratio.items() if sfm in {p[0] for p in pairs}})
            ax.set_xticks(ticks, [f"{r:g}:1" for r in ticks])
            ax.minorticks_off()
            ax.set_xlabel("compression ratio (encoder frames per adapter output, log)")
            ax.set_ylabel(label)
        axes[0][0].legend(fontsize="small")
        fig.tight_layout()
        path = out_dir / "compression_vs_quality.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


@dataclass
class Report:
    """What :func:`build_report` produced."""

    table3: Table3
    table1: list[CompressionRow]
    markdown: str
    files: list[Path]


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    with_paper: bool = True,
    plots: bool = True,
) -> Report:
    """Read evaluated run directories and write ``report.md``, ``table3.csv``, ``table1.csv`` and plots.

    Args:
        run_dirs: run directories (format in the module docstring).
        out_dir: created if missing.
        n_resamples, seed, alpha: paired bootstrap settings for the ``*`` marks.
        with_paper: print the paper's value in parentheses after ours where the paper has it.
        plots: write the PNG plots (needs matplotlib).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in run_dirs]
    table3 = compute_table3(runs, n_resamples=n_resamples, seed=seed, alpha=alpha)
    table1 = compute_table1(runs)
    files = [out_dir / "report.md", out_dir / "table3.csv", out_dir / "table1.csv"]
    _write_table3_csv(table3, files[1])
    _write_table1_csv(table1, files[2])
    plot_files = write_plots(table3, table1, out_dir) if plots else []
    files += plot_files

    legend = (
        f"**bold**: best of its (SFM, LLM) group; †: best overall; \\*: difference from Base (same SFM, "
        f"LLM, column) not significant (paired bootstrap, {n_resamples} resamples, p ≥ {alpha})."
    )
    if with_paper:
        legend += " In parentheses: the paper's Table 3 (its \\* marks its own non-significant results)."
    sections = [
        "# Evaluation report",
        f"Runs: {len(runs)} ({', '.join(str(d) for d in run_dirs)})",
        "## Table 3: ST (COMET × 100) and ASR (WER %)",
        table3_markdown(table3, with_paper=with_paper),
        legend,
    ]
    if table1:
        sections += [
            "## Table 1: compression",
            table1_markdown(table1),
            "ratio: mean encoder frames / mean adapter outputs per utterance; "
            "Hz: encoder frame rate / ratio.",
        ]
    if plot_files:
        sections += ["## Plots"] + [f"![{p.stem}]({p.name})" for p in plot_files]
    markdown = "\n\n".join(sections) + "\n"
    files[0].write_text(markdown, encoding="utf-8")
    return Report(table3=table3, table1=table1, markdown=markdown, files=files)
