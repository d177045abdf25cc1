"""Training callbacks on short tiny runs: compression.json, throughput logs, exported model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.paths import TINY_RECIPE

from speechllm.config import load_config
from speechllm.metrics.run_report import load_run
from speechllm.model import SpeechLLM
from speechllm.rundir import Compression, write_hypotheses
from speechllm.training import train


class ValidationAudio(L.Callback):
    """Records the audio lengths (samples) of the validation batches counted after sanity checks."""

    def __init__(self) -> None:
        self.audio_lens: list[torch.Tensor] = []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self.audio_lens.append(batch.audio_lens.clone())


def run(tiny_dirs, tones_dir, out: Path, adapter: str) -> ValidationAudio:
    recorder = ValidationAudio()
    overrides = [
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        f"model.adapter.name={adapter}",
        "model.llm.lora=null",
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        f"data.val=[{{path: {tones_dir / 'tones_cuts_dev.jsonl.gz'}}}]",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=2",
        "trainer.enable_progress_bar=false",
    ]
    train(load_config(TINY_RECIPE, overrides), callbacks=[recorder])
    return recorder


def expected_encoder_frames(audio_lens: torch.Tensor) -> torch.Tensor:
    """Whisper's frames for true-length input: 10 ms mel hop, then a stride-2 conv (50 Hz)."""
    mel_frames = audio_lens // 160
    return (mel_frames - 1) // 2 + 1


@pytest.mark.parametrize(("adapter", "ratio_range"), [("base", (1.0, 1.0)), ("conv", (3.6, 4.0))])
def test_compression_monitor_writes_the_adapters_ratio_and_rate(
    adapter, ratio_range, tiny_dirs, tones_dir, tmp_path
):
    recorder = run(tiny_dirs, tones_dir, tmp_path, adapter)
    summary = json.loads((tmp_path / "compression.json").read_text())
    audio_lens = torch.cat(recorder.audio_lens)
    assert summary["split"] == "val" and summary["num_utterances"] == len(audio_lens)
    assert summary["encoder_frame_rate_hz"] == 50.0
    assert summary["adapter"] == adapter
    in_frames = expected_encoder_frames(audio_lens).double()
    assert summary["mean_in_len"] == pytest.approx(float(in_frames.mean()))
    if adapter == "base":
        out_frames = in_frames
    else:  # two convolutions, kernel 3, stride 2, padding 1: ceil(T / 2) twice
        out_frames = torch.ceil(torch.ceil(in_frames / 2) / 2)
    assert summary["mean_out_len"] == pytest.approx(float(out_frames.mean()))
    low, high = ratio_range
    assert low <= summary["compression_ratio"] <= high
    assert summary["output_rate_hz"] == pytest.approx(50.0 / summary["compression_ratio"])
    assert set(summary) == set(Compression(1.0, 1.0, 1.0).to_json())  # evaluation's schema too
    # The report reads the file as a run directory's compression summary.
    (tmp_path / "run.json").write_text(json.dumps({"sfm": "whisper", "llm": "llama", "adapter": adapter}))
    write_hypotheses(tmp_path / "hyps_asr_en.tsv", ["a"], ["one two"], ["one"], [50.0])
    loaded = load_run(tmp_path)
    assert loaded.compression.compression_ratio == pytest.approx(summary["compression_ratio"])

    # Throughput and compression are logged per step; the trained parameters are exported.
    (metrics,) = tmp_path.glob("logs/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    audio_rates = [float(r["throughput/audio_s_per_s"]) for r in rows if r.get("throughput/audio_s_per_s")]
    token_rates = [
        float(r["throughput/target_tokens_per_s"]) for r in rows if r.get("throughput/target_tokens_per_s")
    ]
    assert len(audio_rates) == 2 and all(rate > 0 for rate in audio_rates + token_rates)
    train_ratios = [float(r["compression/ratio"]) for r in rows if r.get("compression/ratio")]
    assert len(train_ratios) == 2 and all(low <= ratio <= high for ratio in train_ratios)
    model = SpeechLLM.from_pretrained(tmp_path / "model")
    assert set(model.trainable_state_dict()) == {"adapter." + n for n, _ in model.adapter.named_parameters()}
