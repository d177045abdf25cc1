"""Build the paper's Table 3 and Table 1 from evaluated run directories: Markdown, CSV, PNG plots.

A run directory (written by ``speechllm evaluate`` / the evaluation callbacks; its format is
:mod:`speechllm.rundir`'s, see ``docs/evaluation.md``) holds ``run.json`` (the SFM, LLM and
adapter), ``hyps_st_<src>-<tgt>.tsv`` / ``hyps_asr_<lang>.tsv`` (per-sentence COMET × 100 / WER %),
optionally ``metrics.json`` (corpus-level scores under Table 3's column names, ``st_comet_en-de``,
``asr_wer_en``; a column missing there is the mean of its TSV's scores) and ``compression.json``.

:func:`load_run` reads one directory; :func:`build_report` computes the tables
(:mod:`speechllm.metrics.tables`), plots them (:mod:`speechllm.metrics.plots`) and writes
``report.md``, ``table3.csv`` and ``table1.csv``. The marks: **bold** the best of each (SFM, LLM)
group, ``†`` the best overall, ``*`` a difference from Base that is not significant. The
evaluation checks the runs recorded follow (:mod:`speechllm.metrics.checks_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speechllm.deprecations import decoder_name
from speechllm.io import atomic_write
from speechllm.metrics.bleu import sentence_chrfs
from speechllm.metrics.checks_report import checks_sections
from speechllm.metrics.paper import canonical_adapter, canonical_llm, canonical_sfm
from speechllm.metrics.plots import write_plots
from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES
from speechllm.metrics.table_output import (
    table1_markdown,
    table3_markdown,
    write_table1_csv,
    write_table3_csv,
)
from speechllm.metrics.tables import CompressionRow, RunResult, Table3, compute_table1, compute_table3
from speechllm.rundir import (
    bleu_file_name,
    hyps_files,
    read_compression,
    read_hypotheses,
    read_metrics,
    read_run_info,
)


def load_run(run_dir: str | Path, bleu: bool = False) -> RunResult:
    """Read one run directory: its labels (as the paper's names), scores and compression.

    Args:
        bleu: also read each ST direction's ``bleu_st_<src>-<tgt>.tsv`` as two columns,
            ``st_bleu_<pair>`` (per-sentence BLEU) and ``st_chrf_<pair>`` (per-sentence chrF,
            scored from the file's references and hypotheses): ST without a COMET model.

    Raises:
        FileNotFoundError: no ``run.json`` (not an evaluated run directory).
        ValueError: a file is malformed (the message names it), or there is no ``hyps_*.tsv``
            (nor, with ``bleu``, ``bleu_st_*.tsv``).
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    run = RunResult(
        run_dir=run_dir,
        sfm=canonical_sfm(info.sfm),
        llm=canonical_llm(info.llm),
        adapter=canonical_adapter(info.adapter),
        compression=read_compression(run_dir),
    )
    run.decoding = decoding_label(info.extra.get("decoding"), info.extra.get("decoder", "llm"))
    for task in info.tasks:
        skipped = info.extra.get(f"{task}_skipped_cuts")
        total = info.extra.get(f"{task}_cuts")
        if skipped is not None:
            run.test_sets[task] = (int(skipped), None if total is None else int(total))
    metrics = read_metrics(run_dir)
    sentences = {column: _sentence_scores(path) for column, path in hyps_files(run_dir).items()}
    if bleu:
        sentences.update(_bleu_and_chrf(run_dir))
    for column, scores in sentences.items():
        run.sentence_scores[column] = scores
        # The corpus-level score where the run recorded one (corpus WER, BLEU, chrF), else the mean.
        run.scores[column] = metrics[column] if column in metrics else sum(scores.values()) / len(scores)
    if not run.scores:
        raise ValueError(f"{run_dir}: no hyps_*.tsv files" + (" nor bleu_st_*.tsv files" if bleu else ""))
    return run


def _sentence_scores(path: Path) -> dict[str, float]:
    """A hypotheses TSV's ``score`` column by sentence id."""
    return {i: float(r["score"]) for i, r in read_hypotheses(path).items()}


def _bleu_and_chrf(run_dir: Path) -> dict[str, dict[str, float]]:
    """``st_bleu_<pair>`` and ``st_chrf_<pair>`` per-sentence scores of each ``bleu_st_<pair>.tsv``."""
    prefix, suffix = bleu_file_name("|").split("|")
    columns: dict[str, dict[str, float]] = {}
    for path in sorted(run_dir.glob(bleu_file_name("*"))):
        pair = path.name.removeprefix(prefix).removesuffix(suffix)
        rows = read_hypotheses(path)
        columns[f"st_bleu_{pair}"] = {i: float(r["score"]) for i, r in rows.items()}
        refs = [str(r["reference"]) for r in rows.values()]
        hyps = [str(r["hypothesis"]) for r in rows.values()]
        columns[f"st_chrf_{pair}"] = dict(zip(rows, sentence_chrfs(refs, hyps)))
    return columns


def decoding_label(decoding: dict | None, decoder: str = "llm") -> str:
    """How a run was decoded, in words (``run.json``'s ``decoding``; older runs: greedy)."""
    if decoder_name(decoder) == "prealign":  # runs evaluated before 0.2 carry the retired name
        return "the adapter alone (CTC greedy)"
    decoding = decoding or {}
    beams = int(decoding.get("num_beams", 1))
    parts = [
        "greedy" if beams == 1 else f"beam {beams} (length penalty {decoding.get('length_penalty', 1.0)})"
    ]
    if decoding.get("no_repeat_ngram_size"):
        parts.append(f"no repeated {decoding['no_repeat_ngram_size']}-grams")
    if decoding.get("repetition_penalty", 1.0) != 1.0:
        parts.append(f"repetition penalty {decoding['repetition_penalty']}")
    if decoding.get("ctc_weight"):
        parts.append(
            f"joint CTC weight {decoding['ctc_weight']} ({decoding.get('ctc_candidates', 8)} candidates)"
        )
    if decoding.get("chunk_seconds"):
        parts.append(f"{decoding['chunk_seconds']} s chunks")
    return ", ".join(parts)


@dataclass
class Report:
    """What :func:`build_report` produced."""

    table3: Table3
    table1: list[CompressionRow]
    markdown: str
    files: list[Path]


def _markdown(
    runs: Sequence[RunResult],
    run_dirs: Sequence[str | Path],
    table3: Table3,
    table1: list[CompressionRow],
    plot_files: list[Path],
    n_resamples: int,
    alpha: float,
    with_paper: bool,
) -> str:
    """``report.md``: Table 3 with its legend, Table 1 when measured, and the plots."""
    legend = (
        f"**bold**: best of its (SFM, LLM) group; †: best overall; \\*: difference from Base (same SFM, "
        f"LLM, column) not significant (paired bootstrap, {n_resamples} resamples, p ≥ {alpha})."
    )
    if with_paper:
        legend += " In parentheses: the paper's Table 3 (its \\* marks its own non-significant results)."
    sections = [
        "# Evaluation report",
        f"Runs: {len(run_dirs)} ({', '.join(f'{run.run_dir}: {run.decoding}' for run in runs)})",
        "## Table 3: ST (COMET × 100) and ASR (WER %)",
        table3_markdown(table3, with_paper=with_paper),
        legend,
    ]
    if table1:
        sections += [
            "## Table 1: compression",
            table1_markdown(table1),
            "ratio: mean encoder frames / mean vectors the LLM reads per utterance (LLM reads: the "
            "adapter's outputs, or the pre-alignment readout that merges them); Hz: encoder frame "
            "rate / ratio.",
        ]
    shrunk = [
        f"- {run.run_dir} ({task}): {skipped} of {total if total is not None else '?'} cuts not scored "
        "(unusable audio; evaluated with --allow-missing)"
        for run in runs
        for task, (skipped, total) in sorted(run.test_sets.items())
        if skipped
    ]
    if shrunk:
        sections += ["## Smaller test sets", "\n".join(shrunk)]
    # WER by normalizer, decoding speed, degenerate outputs, listening check (where recorded)
    sections += checks_sections(run_dirs)
    if plot_files:
        sections += ["## Plots"] + [f"![{p.stem}]({p.name})" for p in plot_files]
    return "\n\n".join(sections) + "\n"


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
        run_dirs: run directories (format: :mod:`speechllm.rundir`).
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
    write_table3_csv(table3, files[1])
    write_table1_csv(table1, files[2])
    plot_files = write_plots(table3, table1, out_dir) if plots else []
    files += plot_files
    markdown = _markdown(runs, run_dirs, table3, table1, plot_files, n_resamples, alpha, with_paper)
    with atomic_write(files[0]) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return Report(table3=table3, table1=table1, markdown=markdown, files=files)
