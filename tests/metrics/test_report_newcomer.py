"""`speechllm report` as a newcomer meets it: two runs of one adapter are a one-line error, Table 1
reads the stage that feeds the LLM, and the plots are readable (checked on the figure objects)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from speechllm.cli import build_parser, main
from speechllm.lightning.callbacks import CompressionRatioMonitor
from speechllm.metrics.run_report import build_report, load_run
from speechllm.metrics.tables import compute_table1, compute_table3
from speechllm.rundir import (
    NO_ADAPTER,
    Compression,
    RunInfo,
    read_compression,
    write_compression,
    write_hypotheses,
    write_run_info,
)

N = 12  # sentences per test set: the same ids in every run, so significance can pair them


def write_run(
    run_dir: Path, sfm: str, llm: str, adapter: str, wer: float, compression: Compression | None = None
) -> Path:
    """An evaluated ASR run directory in the documented format, WER ``wer`` ± 1 per sentence."""
    run_dir.mkdir(parents=True)
    write_run_info(run_dir, RunInfo(sfm, llm, adapter, tasks=["asr"]))
    ids = [f"utt{i}" for i in range(N)]
    scores = [wer + (-1) ** i for i in range(N)]
    write_hypotheses(run_dir / "hyps_asr_en.tsv", ids, ["one two"] * N, ["one"] * N, scores)
    if compression is not None:
        write_compression(run_dir, compression)
    return run_dir


# Conv after a `tokens` pre-alignment readout: 100 encoder frames, 25 adapter outputs, ~0.49 read.
READOUT = Compression(encoder_frame_rate_hz=50.0, mean_in_len=100.0, mean_out_len=25.0, mean_read_len=0.4873)
PLAIN = Compression(encoder_frame_rate_hz=50.0, mean_in_len=100.0, mean_out_len=25.15)


# -- two runs of the same adapter -------------------------------------------------------------------
def test_two_runs_of_one_adapter_are_one_line_naming_both_and_the_label_option(tmp_path, capsys) -> None:
    first = write_run(tmp_path / "lr1e-3" / "eval", "whisper", "llama", "conv", 20.0)
    second = write_run(tmp_path / "lr3e-4" / "eval", "whisper", "llama", "conv", 18.0)
    assert main(["report", str(first), str(second), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechllm: error: "), err
    assert str(first) in err[0] and str(second) in err[0]
    assert "separate reports" in err[0]
    # The option it names is one `speechllm evaluate` takes, and it sets the label report reads.
    (option,) = set(re.findall(r"(--adapter[\w-]*) LABEL", err[0]))
    args = build_parser().parse_args(
        ["evaluate", "--model", "m", "--manifest", "t.jsonl.gz", option, "conv-2"]
    )
    assert "conv-2" in vars(args).values()


def test_runs_labelled_apart_are_two_rows(tmp_path) -> None:
    first = write_run(tmp_path / "a", "whisper", "llama", "conv", 20.0)
    second = write_run(tmp_path / "b", "whisper", "llama", "conv-lr3e-4", 18.0)
    report = build_report([first, second], tmp_path / "report", n_resamples=50, plots=False)
    assert [key[2] for key in report.table3.rows] == ["Conv-based", "conv-lr3e-4"]


# -- Table 1: the stage that feeds the LLM ----------------------------------------------------------
def test_table1_reads_the_pre_alignment_readout_when_the_run_has_one(tmp_path) -> None:
    readout = write_run(tmp_path / "readout", "whisper", "llama", "conv", 20.0, READOUT)
    plain = write_run(tmp_path / "plain", "whisper", "llama", "base", 22.0, PLAIN)
    report = build_report([readout, plain], tmp_path / "report", n_resamples=50, plots=False)
    rows = {row.adapter: row for row in report.table1}
    conv, base = rows["Conv-based"], rows["Base"]
    assert conv.compression_ratio == pytest.approx(100.0 / 0.4873)  # 205.2:1, not the adapter's 4:1
    assert conv.output_hz == pytest.approx(50.0 * 0.4873 / 100.0)  # 0.24 Hz
    assert conv.llm_reads == "pre-alignment readout"
    assert (base.compression_ratio, base.llm_reads) == (pytest.approx(100.0 / 25.15), "adapter outputs")
    assert "| Whisper | Conv-based | Llama 3.1 | 205.2:1 | 0.24 | 4:1 | 12.50 | pre-alignment readout |" in (
        report.markdown
    )
    table1_csv = (tmp_path / "report" / "table1.csv").read_text()
    assert "llm_reads" in table1_csv.splitlines()[0] and "pre-alignment readout" in table1_csv


def test_the_training_monitor_reports_and_writes_the_same_stage(tmp_path) -> None:
    monitor = CompressionRatioMonitor(tmp_path, adapter_name="conv")
    logged: dict[str, float] = {}
    pl_module = SimpleNamespace(
        model=SimpleNamespace(encoder=SimpleNamespace(frame_rate_hz=50.0)),
        log_dict=lambda metrics, **_: logged.update(metrics),
    )
    trainer = SimpleNamespace(world_size=1, is_global_zero=True, sanity_checking=False)
    # What a step returns after a readout: out_lens is what the LLM reads, adapter_lens the adapter's.
    stats = {
        "in_lens": torch.tensor([100.0, 100.0]),
        "adapter_lens": torch.tensor([25.0, 25.0]),
        "out_lens": torch.tensor([1.0, 0.0]),
    }
    monitor.on_train_batch_end(trainer, pl_module, {"stats": stats}, None, 0)
    assert logged["compression/ratio"] == pytest.approx(200.0)
    monitor.on_validation_batch_end(trainer, pl_module, {"stats": stats}, None, 0)
    monitor.on_fit_end(trainer, pl_module)
    written = read_compression(tmp_path)
    assert (written.mean_out_len, written.mean_read_len) == (25.0, 0.5)
    assert written.llm_input_ratio == pytest.approx(logged["compression/ratio"])
    # The report's Table 1 shows what the run's log said.
    write_hypotheses(tmp_path / "hyps_asr_en.tsv", ["u"], ["a"], ["a"], [0.0])
    write_run_info(tmp_path, RunInfo("whisper", "llama", "conv", tasks=["asr"]))
    (row,) = compute_table1([load_run(tmp_path)])
    assert row.compression_ratio == pytest.approx(200.0)


# -- plots ----------------------------------------------------------------------------------------
@pytest.fixture
def newcomer_runs(tmp_path) -> list:
    """Two pairs (the second with one adapter only), a Whisper baseline, compression of both kinds."""
    runs = [
        write_run(tmp_path / "wl_base", "whisper", "llama", "base", 22.0, PLAIN),
        write_run(tmp_path / "wl_conv", "whisper", "llama", "conv", 20.0, READOUT),
        write_run(tmp_path / "wm_conv", "whisper", "mistral", "conv", 19.0, READOUT),
        write_run(tmp_path / "baseline", "whisper", "whisper-decoder", NO_ADAPTER, 15.0),
    ]
    return [load_run(run) for run in runs]


def _line_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_quality_plot_groups_bars_without_empty_slots_and_shows_the_baseline(newcomer_runs) -> None:
    pytest.importorskip("matplotlib")
    from speechllm.metrics.plots import quality_by_adapter_figure

    fig = quality_by_adapter_figure(compute_table3(newcomer_runs, n_resamples=50))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Base", "Conv-based"]  # no "none" group
    bars = {round(bar.get_x() + bar.get_width() / 2, 3): bar.get_height() for bar in ax.patches}
    width = ax.patches[0].get_width()
    # Base has one bar, centred on its tick; Conv two, side by side around theirs.
    assert sorted(bars) == [0.0, round(1 - width / 2, 3), round(1 + width / 2, 3)]
    assert bars[0.0] == 22.0 and {bars[round(1 - width / 2, 3)], bars[round(1 + width / 2, 3)]} == {
        19.0,
        20.0,
    }
    assert "Whisper + whisper-decoder (no adapter)" in _line_labels(ax)
    assert ax.get_ylim()[0] <= 15.0 <= ax.get_ylim()[1]  # the baseline's line is in view
    assert "%" in ax.get_ylabel() and ax.get_xlabel() == "adapter"
    legend = {text.get_text() for text in ax.get_legend().get_texts()}  # each pair once
    assert legend == {"Whisper + Llama 3.1", "Whisper + Mistral", "Whisper + whisper-decoder (no adapter)"}


def test_compression_plot_has_rounded_ratio_ticks_named_axes_and_the_baseline(newcomer_runs) -> None:
    pytest.importorskip("matplotlib")
    from speechllm.metrics.plots import compression_vs_quality_figure

    table1 = compute_table1(newcomer_runs)
    fig = compression_vs_quality_figure(compute_table3(newcomer_runs, n_resamples=50), table1)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4:1", "205:1"]  # 3.976 and 205.2, rounded
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel() and "LLM reads" in ax.get_xlabel()
    low, high = ax.get_xlim()
    assert low < 100.0 / 25.15 and high > 100.0 / 0.4873  # no point on the frame
    assert "Whisper + whisper-decoder (no adapter)" in _line_labels(ax)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 3  # the three adapter runs, no baseline point


def test_a_single_ratio_gets_one_readable_tick(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from speechllm.metrics.plots import compression_vs_quality_figure

    runs = [load_run(write_run(tmp_path / "conv", "whisper", "llama", "conv", 20.0, PLAIN))]
    fig = compression_vs_quality_figure(compute_table3(runs, n_resamples=50), compute_table1(runs))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["4:1"]  # not "3.97614:1"


def test_the_report_writes_both_plots_with_a_baseline_run(newcomer_runs, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    report = build_report([run.run_dir for run in newcomer_runs], tmp_path / "out", n_resamples=50)
    names = {path.name for path in report.files}
    assert {"quality_by_adapter.png", "compression_vs_quality.png"} <= names
