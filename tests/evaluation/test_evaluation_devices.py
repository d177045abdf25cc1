"""Evaluation on several devices: two CPU processes (gloo) write the run directory one process writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lhotse import load_manifest

from speechllm.config import load_config
from speechllm.errors import UsageError
from speechllm.evaluation import evaluate
from speechllm.evaluation.decoding import DecodedSentence
from speechllm.evaluation.distributed import drop_padding_copies
from speechllm.model import SpeechLLM
from speechllm.rundir import read_hypotheses

COMMON = {"max_new_tokens": 4, "device": "cpu", "precision": "32"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    torch.manual_seed(0)
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


@pytest.mark.slow
def test_two_cpu_processes_score_like_one(model_dir: Path, tones_dir: Path, tmp_path: Path) -> None:
    batch_size = 4  # 6 cuts: the sampler pads rank 1's batch with a copy (`<id>_dup<k>`), not scored twice
    manifest = tones_dir / "tones_cuts_test.jsonl.gz"
    one = evaluate(model_dir, manifest, out_dir=tmp_path / "one", batch_size=batch_size, **COMMON)
    two = evaluate(
        model_dir,
        manifest,
        out_dir=tmp_path / "two",
        batch_size=batch_size,
        devices=2,
        strategy="ddp_spawn",
        **COMMON,
    )
    assert two == one
    rows = {name: read_hypotheses(tmp_path / name / "hyps_asr_en.tsv") for name in ("one", "two")}
    assert rows["two"] == rows["one"]
    assert sorted(rows["two"]) == sorted(cut.id for cut in load_manifest(manifest))
    speed = {
        name: json.loads((tmp_path / name / "run.json").read_text())["speed_asr"] for name in ("one", "two")
    }
    assert speed["two"]["clips"] >= 6 and speed["two"]["audio_seconds"] >= speed["one"]["audio_seconds"]
    compression = [json.loads((tmp_path / name / "compression.json").read_text()) for name in ("one", "two")]
    assert compression[0]["num_utterances"] <= compression[1]["num_utterances"]


def test_the_samplers_padding_copies_are_dropped_and_each_cut_scored_once() -> None:
    def sentence(cut_id: str) -> DecodedSentence:
        return DecodedSentence("asr", "en", None, cut_id, "ref", "hyp", "ref")

    decoded = [sentence("a"), sentence("b"), sentence("c"), sentence("c_dup0"), sentence("a")]
    assert [s.cut_id for s in drop_padding_copies(decoded, {"a", "b", "c"})] == ["a", "b", "c"]


def test_several_devices_need_a_model_directory(model_dir: Path, tones_dir: Path) -> None:
    model = SpeechLLM.from_pretrained(model_dir)
    with pytest.raises(UsageError, match="needs the model as a directory"):
        evaluate(model, tones_dir / "tones_cuts_test.jsonl.gz", devices=2, **COMMON)
