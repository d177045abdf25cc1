"""ListeningCheck in a Lightning validation: a deaf model is flagged in the logs and the run directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from helpers.deaf_adapter import DeafAdapter
from helpers.paths import TINY_RECIPE

from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.lightning.listening_callback import ListeningCheck
from speechllm.lightning.module import SpeechLLMModule
from speechllm.lightning.trainer import default_callbacks
from speechllm.model import SpeechLLM
from speechllm.registry import register_adapter


def _config(tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, extra: list[str]):
    return load_config(
        TINY_RECIPE,
        [
            f"output_dir={out}",
            f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
            f"model.llm.path={tiny_dirs['tiny-random-llama']}",
            f"data.val=[{{path: {tones_dir / 'tones_cuts_dev.jsonl.gz'}, task: asr}}]",
            *extra,
        ],
    )


def test_the_config_key_adds_the_callback(tiny_dirs, tones_dir, tmp_path) -> None:
    cfg = _config(tiny_dirs, tones_dir, tmp_path, ["eval.listening_check=true", "eval.listening_clips=4"])
    (check,) = [c for c in default_callbacks(cfg) if isinstance(c, ListeningCheck)]
    assert check.max_clips == 4
    assert not any(
        isinstance(c, ListeningCheck) for c in default_callbacks(_config(tiny_dirs, tones_dir, tmp_path, []))
    )


def test_a_deaf_model_is_flagged_at_validation(tiny_dirs, tones_dir, tmp_path, caplog) -> None:
    register_adapter("deaf")(DeafAdapter)
    cfg = _config(tiny_dirs, tones_dir, tmp_path, ["model.adapter.name=deaf"])
    torch.manual_seed(0)
    model = SpeechLLM.from_config(cfg.model)
    callback = ListeningCheck(output_dir=tmp_path / "eval", max_clips=4, max_new_tokens=4)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        use_distributed_sampler=False,
    )
    with caplog.at_level(logging.WARNING, logger="speechllm.lightning.listening_callback"):
        metrics = trainer.validate(
            SpeechLLMModule(model), datamodule=SpeechDataModule(cfg.data, model.llm.prompts)
        )
    assert metrics[0]["val/listen_flagged"] == 1.0 and metrics[0]["val/listen_unchanged"] == 1.0
    assert "NOT LISTENING" in caplog.text
    (run_dir,) = (tmp_path / "eval").iterdir()
    check = json.loads((run_dir / "run.json").read_text())["listening_check_asr"]
    assert check["clips"] == 4 and check["unchanged_swapped"] == 1.0
