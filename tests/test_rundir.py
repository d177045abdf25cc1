"""The run directory format (speechllm.rundir): round trips, one compression schema, old files, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from speechllm.evaluation.decoding import LengthTally
from speechllm.lightning.callbacks import CompressionRatioMonitor
from speechllm.rundir import (
    COMPRESSION_FILE,
    METRICS_FILE,
    RUN_INFO_FILE,
    Compression,
    RunInfo,
    SentenceTable,
    check_run_dir,
    hyps_file_name,
    hyps_files,
    read_compression,
    read_hypotheses,
    read_metrics,
    read_run_info,
    update_run_dir,
    write_compression,
    write_hypotheses,
    write_metrics,
    write_run_info,
)

INFO = RunInfo("whisper", "llama", "conv", ["asr"], {"max_new_tokens": 200, "model_config": {"a": [1, 2]}})


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if ".speechllm-tmp" in p.name]


# -- round trips ----------------------------------------------------------------------------------
def test_run_info_round_trip_keeps_a_flat_file(tmp_path: Path) -> None:
    write_run_info(tmp_path, INFO)
    assert read_run_info(tmp_path) == INFO
    raw = json.loads((tmp_path / RUN_INFO_FILE).read_text())
    assert raw == {"sfm": "whisper", "llm": "llama", "adapter": "conv", "tasks": ["asr"], **INFO.extra}
    with pytest.raises(ValueError, match="'tasks'"):
        RunInfo("a", "b", "c", extra={"tasks": []})


def test_metrics_round_trip_and_optional(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == {}
    write_metrics(tmp_path, {"asr_wer_en": 12.5, "num_sentences_asr_en": 3})
    assert read_metrics(tmp_path) == {"asr_wer_en": 12.5, "num_sentences_asr_en": 3.0}
    (tmp_path / METRICS_FILE).write_text(json.dumps({"asr_wer_en": "high"}))
    with pytest.raises(ValueError, match=r"metrics\.json: 'asr_wer_en' must be a number"):
        read_metrics(tmp_path)


def test_hypotheses_round_trip_with_and_without_sources(tmp_path: Path) -> None:
    path = tmp_path / hyps_file_name("asr", "en")
    write_hypotheses(path, ["b", "a"], ["one\ttwo", "three"], ["one", "three\nfour"], [50.0, 0.0])
    rows = read_hypotheses(path)
    assert list(rows) == ["b", "a"]  # file order is decode order
    assert rows["b"] == {"id": "b", "reference": "one two", "hypothesis": "one", "score": 50.0}
    assert rows["a"]["hypothesis"] == "three four"
    st = tmp_path / hyps_file_name("st", "en-de")
    write_hypotheses(st, ["x"], ["eins"], ["one"], [81.25], sources=["one"])
    assert read_hypotheses(st)["x"]["source"] == "one"
    with pytest.raises(ValueError, match="differ in length"):
        write_hypotheses(path, ["a"], [], ["x"], [1.0])


def test_compression_round_trip_writes_every_key_and_the_derived_rates(tmp_path: Path) -> None:
    written = Compression(
        50.0, 100.0, 25.0, num_utterances=4, mean_read_len=10.0, adapter="conv", split="eval"
    )
    path = write_compression(tmp_path, written)
    assert path == tmp_path / COMPRESSION_FILE
    assert read_compression(tmp_path) == written
    raw = json.loads(path.read_text())
    assert raw["compression_ratio"] == 4.0 and raw["output_rate_hz"] == 12.5
    assert written.read_rate_hz == 5.0
    assert read_compression(tmp_path / "missing") is None
    # Every key is there even when unknown, so a reader never guesses which schema it holds.
    assert json.loads(write_compression(tmp_path, Compression(50.0, 2.0, 1.0)).read_text())["split"] is None


def test_update_run_dir_adds_a_second_evaluation_and_refuses_another_model(tmp_path: Path) -> None:
    assert check_run_dir(tmp_path, INFO.names) is None
    asr = SentenceTable(hyps_file_name("asr", "en"), ["a"], ["x y"], ["x"], [50.0])
    assert update_run_dir(tmp_path, INFO, [asr], {"asr_wer_en": 50.0}) == {"asr_wer_en": 50.0}
    st_info = RunInfo("whisper", "llama", "conv", ["st"], {"max_new_tokens": 100})
    st = SentenceTable(hyps_file_name("st", "en-de"), ["a"], ["eins"], ["one"], [80.0], ["one"])
    compression = Compression(50.0, 100.0, 25.0, num_utterances=1, adapter="conv", split="eval")
    metrics = update_run_dir(tmp_path, st_info, [st], {"st_comet_en-de": 80.0}, compression)
    assert metrics == {"asr_wer_en": 50.0, "st_comet_en-de": 80.0} == read_metrics(tmp_path)
    info = read_run_info(tmp_path)
    assert info.tasks == ["asr", "st"] and info.extra["max_new_tokens"] == 100  # newer keys win
    assert info.extra["model_config"] == {"a": [1, 2]}  # older keys stay
    assert set(hyps_files(tmp_path)) == {"asr_wer_en", "st_comet_en-de"}
    assert read_compression(tmp_path) == compression
    other = RunInfo("whisper", "mistral", "conv", ["asr"])
    with pytest.raises(ValueError, match=r"run\.json: this directory holds a run with llm='llama'"):
        update_run_dir(tmp_path, other, [asr], {})


def test_hyps_files_name_the_bad_file(tmp_path: Path) -> None:
    (tmp_path / "hyps_st_en.tsv").write_text("id\treference\thypothesis\tscore\n")
    with pytest.raises(ValueError, match=r"hyps_st_en\.tsv: name must be"):
        hyps_files(tmp_path)


# -- one compression.json schema ------------------------------------------------------------------
def test_evaluation_and_the_training_monitor_write_one_schema(tmp_path: Path) -> None:
    tally = LengthTally(utterances=2, in_frames=200.0, out_frames=50.0)
    eval_dir = tmp_path / "eval"
    write_compression(eval_dir, tally.compression(50.0, adapter="conv"))

    monitor = CompressionRatioMonitor(tmp_path / "train", adapter_name="conv")
    trainer = SimpleNamespace(world_size=1, is_global_zero=True, sanity_checking=False)
    stats = {"in_lens": torch.tensor([100.0, 100.0]), "out_lens": torch.tensor([25.0, 25.0])}
    monitor.on_validation_batch_end(trainer, None, {"stats": stats}, None, 0)
    pl_module = SimpleNamespace(model=SimpleNamespace(encoder=SimpleNamespace(frame_rate_hz=50.0)))
    monitor.on_fit_end(trainer, pl_module)

    from_eval = json.loads((eval_dir / COMPRESSION_FILE).read_text())
    from_training = json.loads((tmp_path / "train" / COMPRESSION_FILE).read_text())
    assert set(from_eval) == set(from_training) == set(Compression(1.0, 1.0, 1.0).to_json())
    assert (from_eval["split"], from_training["split"]) == ("eval", "val")
    differing = {k for k in from_eval if from_eval[k] != from_training[k]}
    assert differing == {"split"}
    assert read_compression(tmp_path / "train") == monitor.summary


# -- older run directories ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "count", "read_len"),
    [
        # speechllm evaluate before rundir.py: a float "utterances", "mean_read_len" only when measured
        ({"mean_read_len": 10.0, "utterances": 90.0}, 90, 10.0),
        # the training monitor before rundir.py
        (
            {"compression_ratio": 4.0, "output_rate_hz": 12.5, "adapter": "conv", "num_utterances": 64},
            64,
            None,
        ),
        # the hand-written form of the docs
        ({}, None, None),
    ],
)
def test_old_compression_files_are_read(tmp_path: Path, old: dict, count: int | None, read_len: float | None):
    data = {"encoder_frame_rate_hz": 50.0, "mean_in_len": 100.0, "mean_out_len": 25.0, **old}
    (tmp_path / COMPRESSION_FILE).write_text(json.dumps(data))
    compression = read_compression(tmp_path)
    assert (compression.compression_ratio, compression.output_rate_hz) == (4.0, 12.5)
    assert (compression.num_utterances, compression.mean_read_len) == (count, read_len)


def test_unreadable_files_raise_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / COMPRESSION_FILE).write_text(json.dumps({"encoder_frame_rate_hz": 50.0, "mean_in_len": 10}))
    with pytest.raises(ValueError, match=r"compression\.json: 'mean_out_len' must be a positive number"):
        read_compression(tmp_path)
    (tmp_path / COMPRESSION_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"compression\.json: not valid JSON"):
        read_compression(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run\.json not found"):
        read_run_info(tmp_path)
    (tmp_path / RUN_INFO_FILE).write_text(json.dumps({"sfm": "whisper", "llm": "llama"}))
    with pytest.raises(ValueError, match=r"run\.json: missing string key 'adapter'"):
        read_run_info(tmp_path)


# -- atomic writes --------------------------------------------------------------------------------
class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot serialize")


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    path = tmp_path / hyps_file_name("asr", "en")
    write_hypotheses(path, ["a"], ["x"], ["x"], [0.0])
    before = path.read_text()
    with pytest.raises(ValueError):  # the second row's score fails after the first row is written
        write_hypotheses(path, ["a", "b"], ["x", "y"], ["x", "y"], [1.0, "not a number"])  # type: ignore[list-item]
    assert path.read_text() == before and _no_temp_files(tmp_path)
    write_metrics(tmp_path, {"asr_wer_en": 1.0})
    with pytest.raises(RuntimeError):
        write_metrics(tmp_path, {"asr_wer_en": _Unprintable()})  # type: ignore[dict-item]
    assert read_metrics(tmp_path) == {"asr_wer_en": 1.0} and _no_temp_files(tmp_path)
    with pytest.raises(ValueError):
        write_hypotheses(tmp_path / "new.tsv", ["a", "b"], ["x", "y"], ["x", "y"], [1.0, "bad"])  # type: ignore[list-item]
    assert not (tmp_path / "new.tsv").exists() and _no_temp_files(tmp_path)


def test_the_format_module_imports_no_torch() -> None:
    """Readers of run directories (the report, recipes) need not load torch."""
    code = "import sys, speechllm.rundir; print([m for m in ('torch', 'lightning') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
