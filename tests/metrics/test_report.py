"""The report on fake run directories: Table 3 layout, best marks, stars, Table 1, CSV, plots, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from speechllm.cli import build_parser
from speechllm.metrics.run_report import build_report, load_run
from speechllm.rundir import column_for_hyps_file, read_hypotheses, write_hypotheses

N = 40
ALT = [(-1) ** i for i in range(N)]  # ±1 alternating: zero mean, so offsets below are exact means
ST_BASE = {
    "en-de": [80 + 5 * math.sin(i) for i in range(N)],
    "de-en": [81 + 5 * math.sin(i) for i in range(N)],
}
ASR_BASE = {"en": [10 + 3 * math.cos(i) for i in range(N)], "de": [12 + 3 * math.cos(i) for i in range(N)]}

# (sfm, llm) → adapter → (ST offset, ST noise, ASR offset, ASR noise). Noise alternates in sign,
# so a run's mean is the base mean + offset; offset 0 with noise is "not significantly different".
DESIGN = {
    ("seamless", "llama"): {
        "base": (0.0, 0.0, 0.0, 0.0),
        "conv": (2.0, 0.5, 4.0, 0.5),  # ST better everywhere, ASR worse everywhere
        "wlq_former": (0.0, 0.3, -2.0, 0.5),  # ST same as Base (star), ASR best overall
    },
    ("whisper", "mistral"): {
        "base": (-8.0, 0.0, 2.0, 0.0),
        "conv": (-7.0, 0.5, 1.0, 0.2),  # best of its group, but not overall
        "wlq_former": (-11.0, 0.5, 2.0, 0.2),  # ASR same as Base (star)
    },
}
# Corpus WER for English comes from metrics.json (it differs from the sentence mean on purpose).
CORPUS_WER_EN = {
    ("seamless", "llama", "base"): 9.5,
    ("seamless", "llama", "conv"): 13.7,
    ("seamless", "llama", "wlq_former"): 7.4,
    ("whisper", "mistral", "base"): 11.6,
    ("whisper", "mistral", "conv"): 10.9,
    ("whisper", "mistral", "wlq_former"): 11.7,
}
# Adapter outputs per 100 encoder frames (the paper's ratios: Whisper's WLQ-former is 16:1).
OUT_LEN = {
    ("seamless", "base"): 100.0,
    ("seamless", "conv"): 25.0,
    ("seamless", "wlq_former"): 50.0,
    ("whisper", "base"): 100.0,
    ("whisper", "conv"): 25.0,
    ("whisper", "wlq_former"): 6.25,
}


def _write_tsv(path: Path, column_scores: list[float], prefix: str) -> None:
    lines = ["id\treference\thypothesis\tscore"]
    lines += [f"{prefix}{i}\tref {i}\thyp {i}\t{score!r}" for i, score in enumerate(column_scores)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_fake_runs(root: Path) -> list[Path]:
    """Six evaluated run directories in the documented format."""
    run_dirs = []
    for (sfm, llm), adapters in DESIGN.items():
        for adapter, (st_offset, st_noise, asr_offset, asr_noise) in adapters.items():
            run_dir = root / f"{sfm}_{llm}_{adapter}"
            run_dir.mkdir(parents=True)
            run_info = {"sfm": sfm, "llm": llm, "adapter": adapter, "checkpoint": "ckpt/"}
            (run_dir / "run.json").write_text(json.dumps(run_info))
            for direction, base in ST_BASE.items():
                scores = [b + st_offset + st_noise * a for b, a in zip(base, ALT)]
                _write_tsv(run_dir / f"hyps_st_{direction}.tsv", scores, "st")
            for lang, base in ASR_BASE.items():
                scores = [b + asr_offset + asr_noise * a for b, a in zip(base, ALT)]
                _write_tsv(run_dir / f"hyps_asr_{lang}.tsv", scores, "asr")
            metrics = {"asr_wer_en": CORPUS_WER_EN[(sfm, llm, adapter)], "st_bleu_en-de": 30.0}
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
            frame_rate = 6.25 if sfm == "seamless" else 50.0
            compression = {
                "encoder_frame_rate_hz": frame_rate,
                "mean_in_len": 100.0,
                "mean_out_len": OUT_LEN[(sfm, adapter)],
            }
            (run_dir / "compression.json").write_text(json.dumps(compression))
            run_dirs.append(run_dir)
    return run_dirs


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("report")
    runs = make_fake_runs(root / "runs")
    return build_report(runs, root / "out", n_resamples=1000, seed=0)


SL = ("SeamlessM4T", "Llama 3.1")
WM = ("Whisper", "Mistral")


def test_layout_follows_the_papers_table3(report) -> None:
    table = report.table3
    assert table.columns == [
        "st_comet_en-de",
        "st_comet_de-en",
        "st_comet_avg",
        "asr_wer_en",
        "asr_wer_de",
        "asr_wer_avg",
    ]
    assert table.rows == [
        (*SL, "Base"),
        (*SL, "Conv-based"),
        (*SL, "WLQ-former"),
        (*WM, "Base"),
        (*WM, "Conv-based"),
        (*WM, "WLQ-former"),
    ]
    header = report.markdown.split("## Table 3")[1].splitlines()[2]
    assert header.split(" | ")[:6] == [
        "| SFM",
        "LLM",
        "Adapter",
        "ST COMET ↑ en-de",
        "ST COMET ↑ de-en",
        "ST COMET ↑ avg",
    ]


def test_values_come_from_metrics_json_or_sentence_means(report) -> None:
    values = report.table3.values
    conv = (*SL, "Conv-based")
    assert values[conv]["asr_wer_en"] == 13.7  # metrics.json
    assert values[conv]["asr_wer_de"] == pytest.approx(_mean(ASR_BASE["de"]) + 4.0)  # TSV mean
    expected_avg = (_mean(ST_BASE["en-de"]) + _mean(ST_BASE["de-en"])) / 2 + 2.0
    assert values[conv]["st_comet_avg"] == pytest.approx(expected_avg)


def test_best_marks_per_group_and_overall(report) -> None:
    table = report.table3
    assert ((*SL, "Conv-based"), "st_comet_avg") in table.best_overall
    assert ((*WM, "Conv-based"), "st_comet_avg") in table.best_in_group
    assert ((*WM, "Conv-based"), "st_comet_avg") not in table.best_overall
    assert ((*SL, "WLQ-former"), "asr_wer_avg") in table.best_overall  # lower WER is better
    assert ((*WM, "Conv-based"), "asr_wer_en") in table.best_in_group
    best_per_column = [c for k, c in table.best_overall if c == "st_comet_en-de"]
    assert len(best_per_column) == 1
    row = next(
        line for line in report.markdown.splitlines() if line.startswith("| SeamlessM4T | Llama 3.1 | Conv")
    )
    assert row.split(" | ")[5].startswith("**") and "†" in row.split(" | ")[5]


def test_stars_mark_differences_from_base_that_are_not_significant(report) -> None:
    table = report.table3
    assert table.not_significant == {
        ((*SL, "WLQ-former"), "st_comet_en-de"),
        ((*SL, "WLQ-former"), "st_comet_de-en"),
        ((*WM, "WLQ-former"), "asr_wer_en"),
        ((*WM, "WLQ-former"), "asr_wer_de"),
    }
    assert table.p_values[(*SL, "Conv-based")]["st_comet_en-de"] < 0.05
    assert "st_comet_en-de" not in table.p_values[(*SL, "Base")]
    row = next(
        line for line in report.markdown.splitlines() if line.startswith("| SeamlessM4T | Llama 3.1 | WLQ")
    )
    assert row.split(" | ")[3].split(" (")[0].endswith("\\*")


def test_paper_numbers_beside_ours(report) -> None:
    row = next(
        line for line in report.markdown.splitlines() if line.startswith("| SeamlessM4T | Llama 3.1 | Conv")
    )
    assert "(85.42)" in row  # the paper's en-de COMET for this configuration
    assert "(7.16\\*)" in row  # the paper's starred English WER
    with open(report.files[1], encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 6
    base = records[0]
    assert (base["sfm"], base["llm"], base["adapter"]) == (*SL, "Base")
    assert float(base["asr_wer_en"]) == 9.5
    assert float(base["paper_asr_wer_en"]) == 7.15
    assert float(records[1]["st_comet_en-de_p_vs_base"]) < 0.05


def test_table1_measures_compression(report) -> None:
    rows = {(r.sfm, r.adapter): r for r in report.table1}
    assert len(rows) == 6
    wlq = rows[("SeamlessM4T", "WLQ-former")]
    assert (wlq.compression_ratio, wlq.output_hz) == (2.0, 3.125)
    assert (wlq.paper_compression_ratio, wlq.paper_output_hz) == (2.0, 3.12)
    assert rows[("Whisper", "WLQ-former")].compression_ratio == 16.0
    conv = rows[("Whisper", "Conv-based")]
    assert (conv.compression_ratio, conv.output_hz) == (4.0, 12.5)
    assert "| Whisper | Conv-based | Mistral | 4.0:1 | 12.50 | 4:1 | 12.50 |" in report.markdown
    with open(report.files[2], encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_plots_are_written(report) -> None:
    pytest.importorskip("matplotlib")
    names = {p.name for p in report.files}
    assert {"quality_by_adapter.png", "compression_vs_quality.png"} <= names
    for path in report.files:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"]({path.name})" in report.markdown


def test_cli_report_command(tmp_path: Path) -> None:
    runs = make_fake_runs(tmp_path / "runs")
    parser = build_parser()
    args = parser.parse_args(["report", *map(str, runs), "--out", str(tmp_path / "out"), "--no-plots"])
    assert args.n_resamples == 1000
    assert args.func(args) == 0
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| Whisper | Mistral | WLQ-former |" in markdown
    assert not list((tmp_path / "out").glob("*.png"))
    assert parser.parse_args(["report", str(runs[0])]).out is None  # default: beside the runs


def test_hypotheses_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "hyps_st_en-de.tsv"
    write_hypotheses(
        path, ["a", "b"], ["ref\twith tab", 'quote " here'], ["hyp\nline", ""], [0.5, 81.25], ["s1", "s2"]
    )
    rows = read_hypotheses(path)
    assert list(rows) == ["a", "b"]
    assert rows["a"]["reference"] == "ref with tab" and rows["a"]["hypothesis"] == "hyp line"
    assert rows["b"]["reference"] == 'quote " here' and rows["b"]["hypothesis"] == ""
    assert [rows[i]["score"] for i in rows] == [0.5, 81.25]
    assert rows["b"]["source"] == "s2"


def test_file_names_map_to_columns() -> None:
    assert column_for_hyps_file("hyps_st_en-de.tsv") == "st_comet_en-de"
    assert column_for_hyps_file("hyps_asr_fr.tsv") == "asr_wer_fr"
    assert column_for_hyps_file("hyps_asr_fr-fr.tsv") == "asr_wer_fr"
    assert column_for_hyps_file("hyps_asr_fr-en.tsv") is None
    assert column_for_hyps_file("hyps_st_en.tsv") is None


def test_bad_run_directories_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run.json"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"sfm": "whisper", "llm": "llama"}))
    with pytest.raises(ValueError, match="'adapter'"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"sfm": "whisper", "llm": "llama", "adapter": "base"}))
    (tmp_path / "hyps_asr_en.tsv").write_text("id\thypothesis\tscore\n1\tx\t3\n")
    with pytest.raises(ValueError, match="hyps_asr_en.tsv: missing column"):
        load_run(tmp_path)


def test_different_test_sets_cannot_be_compared(tmp_path: Path) -> None:
    runs = make_fake_runs(tmp_path / "runs")
    _write_tsv(runs[1] / "hyps_st_en-de.tsv", ST_BASE["en-de"], "other")  # ids differ from Base
    with pytest.raises(ValueError, match="scored different sentences"):
        build_report(runs, tmp_path / "out", plots=False)
