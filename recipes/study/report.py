"""The study's report, read from its run directories: Tables 1 and 3, a plot, the paper's conclusions.

Reads what recipes/study/run.sh wrote under OUT: each cell's ``done.json`` and evaluated sets
(``cells/<cell>/eval/<set>``, and ``eval_alone/<set>`` for the adapter decoded alone), and Whisper's
own decoders (``anchors/<model>/<set>``). Writes ``report.md``, ``table3.csv``, ``table1.csv``, the
plots (``quality_by_adapter.png``, ``compression_vs_quality.png``) and ``conclusions.json``; with
``--docs docs/study.md`` it also replaces that file's results section (between the
``<!-- study results -->`` markers) with the report, so the documentation holds only numbers a run
directory gave; ``--section NAME`` replaces another run's section instead (``<!-- study results NAME:
begin -->`` … ``end -->``, plots copied as ``study_NAME_<plot>.png``), so one page can hold the
equal-minutes study and the equal-steps one.

Table 3's columns are per test set: the synthetic sets keep the paper's names (``asr_wer_en``,
``st_bleu_de-en``), the recorded ones are ``real-…`` (``asr_wer_real-en``, ``st_bleu_real-nl-en``).

Usage: python recipes/study/report.py OUT [--docs docs/study.md [--section NAME]] [--wall-seconds S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cells import JOINT_CTC_WEIGHT, LLM_LABEL, TEST_SETS, Cell  # noqa: E402

from speechllm.io import atomic_write  # noqa: E402
from speechllm.metrics.conclusions import PAPER_ADAPTERS, check_conclusions, conclusions_markdown  # noqa: E402
from speechllm.metrics.plots import write_plots  # noqa: E402
from speechllm.metrics.run_report import load_run  # noqa: E402
from speechllm.metrics.table_output import (  # noqa: E402
    table1_markdown,
    table3_markdown,
    write_table1_csv,
    write_table3_csv,
)
from speechllm.metrics.tables import RunResult, compute_table1, compute_table3, metric_family  # noqa: E402
from speechllm.rundir import NO_ADAPTER  # noqa: E402

ANCHOR_LLM = "own decoder"


def docs_markers(section: str | None = None) -> tuple[str, str]:
    """The begin and end markers of a results section: the default run's, or section ``NAME``'s."""
    name = "study results" if section is None else f"study results {section}"
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def set_column(column: str, set_name: str) -> str:
    """A run directory's column named for its test set: recorded speech becomes ``real-…``."""
    family = metric_family(column)
    if family is None or not set_name.startswith("real"):
        return column
    return f"{family}_real-{column.removeprefix(family + '_')}"


def load_set(run_dir: Path, set_name: str, task: str, sfm: str, llm: str, adapter: str) -> RunResult:
    """One evaluated set as a Table 3 row's columns (WER per sentence; BLEU and chrF for ST)."""
    run = load_run(run_dir, bleu=task == "st")
    renamed = RunResult(run_dir, sfm, llm, adapter, compression=run.compression, decoding=run.decoding)
    for column, value in run.scores.items():
        renamed.scores[set_column(column, set_name)] = value
        renamed.sentence_scores[set_column(column, set_name)] = run.sentence_scores[column]
    renamed.test_sets = run.test_sets
    return renamed


@dataclass
class Study:
    """What the report read."""

    cells: dict[str, dict] = field(default_factory=dict)  # done.json by cell name
    failed: dict[str, str] = field(default_factory=dict)  # last line of failed.txt by cell name
    trained: list[RunResult] = field(default_factory=list)  # the trained cells' evaluated sets
    anchors: list[RunResult] = field(default_factory=list)  # Whisper's own decoders
    floors: list[RunResult] = field(default_factory=list)  # untrained models on a sample of each set
    alone: dict[str, dict[str, float]] = field(default_factory=dict)  # cell → column → adapter-alone WER
    joint: dict[str, dict[str, float]] = field(default_factory=dict)  # cell → column → joint CTC decoding WER


def read_study(out: Path) -> Study:
    study = Study()
    for cell_dir in sorted((out / "cells").glob("*")):
        failed = cell_dir / "failed.txt"
        done_file = cell_dir / "done.json"
        if not done_file.is_file():
            if failed.is_file():
                lines = failed.read_text(encoding="utf-8").strip().splitlines()
                study.failed[cell_dir.name] = lines[-1] if lines else "failed"
            continue
        done = json.loads(done_file.read_text(encoding="utf-8"))
        cell = Cell(**done["cell"])
        study.cells[cell.name] = done
        labels = (cell.sfm_label, LLM_LABEL, cell.adapter_label)
        for set_name in done["sets"]:
            run = load_set(cell_dir / "eval" / set_name, set_name, cell.task, *labels)
            (study.floors if cell.untrained else study.trained).append(run)
            for kind, scores in (("eval_alone", study.alone), ("eval_joint", study.joint)):
                if (cell_dir / kind / set_name / "run.json").is_file():
                    decoded = load_set(cell_dir / kind / set_name, set_name, "asr", *labels)
                    scores.setdefault(cell.name, {}).update(decoded.scores)
    for model_dir in sorted((out / "anchors").glob("*")):
        sfm = "Whisper " + model_dir.name.removeprefix("whisper-")
        for set_dir in sorted(model_dir.glob("*")):
            if (set_dir / "run.json").is_file():
                task = next(t for t, sets in TEST_SETS.items() if set_dir.name in sets)
                study.anchors.append(load_set(set_dir, set_dir.name, task, sfm, ANCHOR_LLM, NO_ADAPTER))
    return study


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def cells_table(study: Study) -> str:
    """Per cell: its budget, steps in each stage and the time it took."""
    lines = [
        "| cell | pre-alignment min (steps) | LLM stage min (steps) | train + load s | evaluation s |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, done in study.cells.items():
        if done["cell"]["untrained"]:
            continue
        steps = {stage: _last_step(done, stage) for stage in ("prealign", "llm")}
        lines.append(
            f"| {name} | {done['prealign_minutes']:.2f} ({steps['prealign']}) | {done['llm_minutes']:.2f} "
            f"({steps['llm']}) | {done['train_seconds']:.0f} | {done['eval_seconds']:.0f} |"
        )
    return "\n".join(lines)


def _last_step(done: dict, stage: str) -> str:
    """The last optimizer step the stage's ``curve.tsv`` recorded ("–" when the stage did not run)."""
    train = Path(done["train_dir"])
    curve = train / "prealign" / "curve.tsv" if stage == "prealign" else train / "curve.tsv"
    if not curve.is_file():
        return "–"
    rows = curve.read_text(encoding="utf-8").splitlines()[1:]
    steps = [line.split("\t")[1] for line in rows if line.startswith("loss")]
    return steps[-1] if steps else "0"


def alone_table(study: Study) -> str:
    """The full model (greedy LLM, and joint CTC decoding where the adapter has a CTC head) beside its
    pre-aligned adapter decoded alone (CTC greedy, no LLM), per ASR set."""
    columns = sorted({c for scores in study.alone.values() for c in scores if c.startswith("asr_wer_")})
    full: dict[tuple[str, str], dict[str, float]] = {}  # a cell's scores over all its sets
    for run in study.trained:
        full.setdefault((run.sfm, run.adapter), {}).update(run.scores)
    header = " | ".join(f"{c.removeprefix('asr_wer_')}: full / joint CTC / alone" for c in columns)
    lines = [f"| cell | {header} |", "|---|" + "--:|" * len(columns)]
    for name, scores in study.alone.items():
        cell = Cell(**study.cells[name]["cell"])
        row, joint = full.get((cell.sfm_label, cell.adapter_label), {}), study.joint.get(name, {})
        values = " | ".join(
            f"{_number(row.get(c))} / {_number(joint.get(c))} / {_number(scores.get(c))}" for c in columns
        )
        lines.append(f"| {name} | {values} |")
    return "\n".join(lines)


def floors_table(study: Study) -> str:
    """The untrained models, on a sample of each set (how many clips: the last column)."""
    lines = ["| floor | column | value | clips |", "|---|---|--:|--:|"]
    for run in study.floors:
        for column, value in sorted(run.scores.items()):
            clips = len(run.sentence_scores[column])
            lines.append(f"| {run.sfm}, {run.adapter} | {column} | {value:.1f} | {clips} |")
    return "\n".join(lines)


def machine_line(wall_seconds: float | None) -> str:
    """The CPU, the precision ``auto`` chose on it and why, and the study's wall time."""
    import torch

    from speechllm.precision import bf16_support, cpu_name

    support = bf16_support("cpu")
    branch = "bf16" if support.bf16 else "float32"
    line = f"Machine: {cpu_name()}, {torch.get_num_threads()} torch threads; precision auto: {branch}"
    line += f" ({support.reason})."
    if wall_seconds is not None:
        line += f" Wall time of this run of recipes/study/run.sh: {wall_seconds / 60:.1f} minutes."
    return line


def build(out: Path, wall_seconds: float | None = None, n_resamples: int = 1000) -> str:
    """Write the report files into ``out``; returns report.md's text."""
    study = read_study(out)
    if not study.trained:
        raise SystemExit(f"{out}: no finished cell (cells/<name>/done.json) to report")
    rows = study.trained + study.anchors
    # Rows shown and tested but never marked best: Whisper's decoders and cells other than the paper's five.
    references = {NO_ADAPTER} | {run.adapter for run in study.trained if run.adapter not in PAPER_ADAPTERS}
    table3 = compute_table3(rows, n_resamples=n_resamples, reference_adapters=references)
    table1 = compute_table1(run for run in study.trained if run.adapter not in references)
    checks = check_conclusions(
        [run for run in study.trained if run.adapter not in references], table1, n_resamples=n_resamples
    )
    write_table3_csv(table3, out / "table3.csv")
    write_table1_csv(table1, out / "table1.csv")
    plots = write_plots(table3, table1, out)
    verdicts = [{"claim": c.claim, "verdict": c.verdict, "evidence": c.evidence} for c in checks]
    (out / "conclusions.json").write_text(json.dumps(verdicts, indent=2) + "\n", encoding="utf-8")
    minutes = sorted({done["minutes"] for done in study.cells.values() if not done["cell"]["untrained"]})
    sections = [
        "# The study in miniature: report",
        machine_line(wall_seconds),
        f"Cells finished: {sum(not d['cell']['untrained'] for d in study.cells.values())} trained, "
        f"{sum(d['cell']['untrained'] for d in study.cells.values())} untrained floors; training minutes "
        f"per cell: {', '.join(f'{m:g}' for m in minutes)}."
        + (f" Failed: {', '.join(f'{k} ({v})' for k, v in study.failed.items())}." if study.failed else ""),
        "## Table 3: ST (BLEU, chrF) and ASR (WER %) per test set",
        table3_markdown(table3, with_paper=False, clips=True),
        "**bold**: best of its encoder; †: best overall (the five adapters only); \\*: difference from "
        f"Base on the same encoder not significant (paired bootstrap, {n_resamples} resamples, p ≥ 0.05). "
        f"`{ANCHOR_LLM}` rows: Whisper's own greedy decoder (transcribe; Whisper base's translate task "
        "for ST), an anchor on the same clips. `real-…` columns: recorded speech (Asterisk prompts, "
        "Fish Fillets lines), never trained on. The last row: the clips each column rests on.",
        "## Table 1: compression of the trained adapters",
        table1_markdown(table1, adapter_outputs=True),
        "Measured on the synthetic test set. ratio: mean encoder frames / mean vectors; Whisper runs at "
        "50 Hz whatever its size, so the paper's Whisper rows apply. LLM reads: what feeds the LLM after "
        "pre-alignment (the adapter's CTC transcript as token embeddings, docs/training.md).",
        "## The paper's conclusions, checked on these numbers",
        conclusions_markdown(checks),
        "## The full model and its adapter decoded alone (ASR, WER %)",
        alone_table(study),
        "full: the LLM, greedy (Table 3's decoding); joint CTC: the LLM's candidates ranked with the "
        f"adapter's CTC prefix scores (λ {JOINT_CTC_WEIGHT}, docs/evaluation.md; – where the adapter has no "
        "CTC head: CIF); alone: the adapter read by its CTC head, no LLM.",
        "## Untrained floors",
        floors_table(study),
        "## Training per cell",
        cells_table(study),
    ]
    if plots:
        sections += ["## Plots"] + [f"![{p.stem}]({p.name})" for p in plots]
    markdown = "\n\n".join(sections) + "\n"
    with atomic_write(out / "report.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return markdown


def write_docs(markdown: str, out: Path, docs: Path, section: str | None = None) -> None:
    """Replace a results section of ``docs`` (between its markers, :func:`docs_markers`) with the
    report, headings demoted; its plots are copied beside ``docs`` as ``study_<name>.png``
    (``study_<section>_<name>.png`` for a named section)."""
    begin, end = docs_markers(section)
    text = docs.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{docs}: no results section ({begin} … {end}) to replace")
    prefix = "study_" if section is None else f"study_{section}_"
    for plot in sorted(out.glob("*.png")):
        shutil.copyfile(plot, docs.parent / f"{prefix}{plot.name}")
        markdown = markdown.replace(f"]({plot.name})", f"]({prefix}{plot.name})")
    body = "\n".join(f"#{line}" if line.startswith("#") else line for line in markdown.splitlines())
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    docs.write_text(f"{head}{begin}\n{body}\n{end}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the study's output directory (STUDY_OUT)")
    parser.add_argument("--docs", type=Path, default=None, help="also replace this file's results section")
    parser.add_argument(
        "--section", default=None, help="with --docs: the named results section (e.g. steps) to replace"
    )
    parser.add_argument("--wall-seconds", type=float, default=None, help="the run's wall time, to report")
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    args = parser.parse_args()
    markdown = build(args.out, args.wall_seconds, args.resamples)
    if args.docs is not None:
        write_docs(markdown, args.out, args.docs, args.section)
    print(markdown)


if __name__ == "__main__":
    main()
