"""`speechllm evaluate`'s checks on tiny models: decoding speed, the chosen normalizer, degenerate
counts, and the listening check (a model deaf by construction is flagged, a listening one is not)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.deaf_adapter import DeafAdapter
from lhotse import load_manifest

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.errors import ConfigError
from speechllm.evaluation import evaluate
from speechllm.metrics.run_report import build_report
from speechllm.model import SpeechLLM
from speechllm.registry import register_adapter
from speechllm.rundir import read_hypotheses

MAX_NEW_TOKENS = 5
COMMON = {"max_new_tokens": MAX_NEW_TOKENS, "device": "cpu", "precision": "32", "batch_size": 3}


@pytest.fixture(scope="module")
def test_manifest(tones_dir: Path) -> Path:
    return tones_dir / "tones_cuts_test.jsonl.gz"


@pytest.fixture(scope="module")
def model(tiny_model_overrides: list[str]) -> SpeechLLM:
    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, model: SpeechLLM, test_manifest: Path) -> Path:
    out = tmp_path_factory.mktemp("checks") / "run"
    evaluate(model, test_manifest, out_dir=out, normalizer="whisper_basic", listening=True, **COMMON)
    return out


def test_run_json_records_rtfx_throughput_device_and_precision(run_dir: Path, test_manifest: Path) -> None:
    speed = json.loads((run_dir / "run.json").read_text())["speed_asr"]
    audio = sum(cut.duration for cut in load_manifest(test_manifest))
    assert speed["audio_seconds"] == pytest.approx(audio)
    assert speed["rtfx"] == pytest.approx(audio / speed["decode_seconds"])
    assert speed["clips_per_second"] == pytest.approx(6 / speed["decode_seconds"])
    assert 0 < speed["tokens"] <= 6 * MAX_NEW_TOKENS
    assert "(cpu, " in speed["device"] and speed["precision"] == "32"


def test_the_chosen_normalizer_is_recorded_and_scored_beside_the_papers(run_dir: Path) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert info["normalizer"] == "whisper_basic"
    assert {"asr_wer_en", "asr_wer_whisper_basic_en"} <= set(metrics)


def test_degenerate_counts_match_the_hypotheses(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = read_hypotheses(run_dir / "hyps_asr_en.tsv")
    assert metrics["num_empty_asr_en"] == sum(not str(r["hypothesis"]).strip() for r in rows.values())
    for kind in ("repeating", "prompt_copy", "capped"):
        assert 0 <= metrics[f"num_{kind}_asr_en"] <= len(rows)


def test_the_report_shows_both_normalizers_speed_degenerate_counts_and_the_check(run_dir, tmp_path) -> None:
    markdown = build_report([run_dir], tmp_path / "report", plots=False).markdown
    for heading in (
        "## WER by normalizer",
        "## Decoding speed",
        "## Degenerate outputs",
        "## Listening check",
    ):
        assert heading in markdown
    assert "| paper | whisper_basic |" in markdown


def test_a_model_that_cannot_hear_is_flagged_in_plain_words(
    tiny_model_overrides: list[str], test_manifest: Path, tmp_path: Path
) -> None:
    register_adapter("deaf")(DeafAdapter)
    torch.manual_seed(0)
    deaf = SpeechLLM.from_config(load_config(None, [*tiny_model_overrides, "model.adapter.name=deaf"]).model)
    evaluate(deaf, test_manifest, out_dir=tmp_path / "run", listening=True, **COMMON)
    check = json.loads((tmp_path / "run" / "run.json").read_text())["listening_check_asr"]
    assert check["unchanged_swapped"] == 1.0 and check["unchanged_silence"] == 1.0
    markdown = build_report([tmp_path / "run"], tmp_path / "report", plots=False).markdown
    assert "**flagged**: NOT LISTENING" in markdown


def test_a_model_whose_output_follows_its_audio_is_not_flagged(
    model: SpeechLLM, run_dir: Path, test_manifest: Path, tmp_path: Path
) -> None:
    """References that are what the model says with each clip's own audio: a model that is right
    on every clip. Its outputs change with the audio, so it is not flagged."""
    said = {i: str(r["hypothesis"]) for i, r in read_hypotheses(run_dir / "hyps_asr_en.tsv").items()}
    assert len(set(said.values())) > 1, "the tiny model says the same for every clip: no test"
    cuts = load_manifest(test_manifest).to_eager()
    for cut in cuts:
        cut.supervisions[0].text = said[cut.id]
    manifest = tmp_path / "right.jsonl.gz"
    cuts.to_file(manifest)
    evaluate(model, manifest, out_dir=tmp_path / "run", listening=True, **COMMON)
    check = json.loads((tmp_path / "run" / "run.json").read_text())["listening_check_asr"]
    assert check["wer_true"] == 0.0 and check["unchanged_swapped"] < 0.5
    markdown = build_report([tmp_path / "run"], tmp_path / "report", plots=False).markdown
    assert "flagged" not in markdown.split("## Listening check")[1]


def test_the_cli_takes_the_normalizer_and_the_listening_check(model, test_manifest, tmp_path, capsys) -> None:
    model_dir = model.save_pretrained(tmp_path / "model")
    args = [
        "evaluate",
        "--model",
        str(model_dir),
        "--manifest",
        str(test_manifest),
        "--out",
        str(tmp_path / "run"),
    ]
    args += ["--normalizer", "whisper_basic", "--listening-check", "--listening-clips", "3", "--seed", "1"]
    args += ["--device", "cpu", "--max-new-tokens", str(MAX_NEW_TOKENS)]
    assert main(args) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["normalizer"] == "whisper_basic"
    assert info["listening_check_asr"]["clips"] == 3 and info["listening_check_asr"]["seed"] == 1
    assert "asr_wer_whisper_basic_en" in capsys.readouterr().out


def test_an_unknown_normalizer_in_the_config_names_the_key(tiny_model_overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match="eval.normalizer=nemo: must be one of paper, whisper_english"):
        load_config(None, [*tiny_model_overrides, "eval.normalizer=nemo"])


def test_a_cpu_is_named_by_its_model_and_threads() -> None:
    from speechllm.evaluation.speed import device_name
    from speechllm.precision import cpu_name

    name = device_name(torch.device("cpu"))
    assert name.startswith(cpu_name()) and f"{torch.get_num_threads()} threads" in name
