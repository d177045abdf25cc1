"""`speechllm train` on the tiny recipe: the Lightning loop runs on CPU and the loss falls."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers.paths import TINY_RECIPE

from speechllm.cli import main
from speechllm.model import SpeechLLM


def read_train_losses(output_dir: Path) -> list[float]:
    (metrics,) = output_dir.glob("logs/version_*/metrics.csv")
    with metrics.open() as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def test_tiny_recipe_trains_and_the_loss_falls(tiny_dirs, tones_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            str(TINY_RECIPE),
            f"output_dir={out}",
            f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
            f"model.llm.path={tiny_dirs['tiny-random-llama']}",
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            f"data.val=[{{path: {tones_dir / 'tones_cuts_dev.jsonl.gz'}}}]",
            "trainer.max_steps=20",
            "trainer.val_check_interval=10",
            "trainer.enable_progress_bar=false",
        ]
    )
    assert code == 0
    losses = read_train_losses(out)
    assert len(losses) == 20
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, f"loss did not fall: first {first:.3f}, last {last:.3f}"
    model = SpeechLLM.from_pretrained(out / "model")
    trained = set(model.trainable_state_dict())
    assert {"adapter." + n for n, _ in model.adapter.named_parameters()} <= trained
    assert all(n.startswith("adapter.") or "lora_" in n for n in trained)


def test_print_config_resolves_without_loading_weights(capsys):
    # The recipe names presets that are never built here: --print-config must not load anything.
    assert main(["train", str(TINY_RECIPE), "--print-config", "model.adapter.name=conv"]) == 0
    printed = capsys.readouterr().out
    assert "name: conv" in printed and "warmup_ratio: 0.03" in printed
