"""`speechllm train` logs one line per event, no third-party tips or warnings that say nothing to a
user, one line of its own about precision, and a progress label with the bound that ends the run.

Run as a user runs it: the command in a subprocess (its logging set up by the command, not pytest).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.paths import REPO

from speechllm.lightning.progress_bar import train_description
from speechllm.logs import quiet_third_party

ROOT = REPO
TINY_RECIPE = ROOT / "recipes" / "tiny" / "conf" / "asr.yaml"
FILTERED = (
    "💡 Tip",
    "litlogger",
    "in eval mode at the start of training",
    "is not supported by the model summary",
    "LeafSpec",
    "Automatic Mixed Precision",
    "exists and is not empty",
)


def speechllm_train(tiny_dirs, tones_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "train",
        str(TINY_RECIPE),
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        f"data.val=[{{path: {tones_dir / 'tones_cuts_dev.jsonl.gz'}}}]",
        "trainer.precision=bf16-true",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "speechllm.cli", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"(DEBUG|INFO|WARNING|ERROR) ", line)]


@pytest.mark.slow
def test_train_logs_each_event_once_without_third_party_noise(tiny_dirs, tones_dir, tmp_path) -> None:
    out = tmp_path / "run"
    first = speechllm_train(tiny_dirs, tones_dir, out, "trainer.max_steps=2")
    resumed = speechllm_train(tiny_dirs, tones_dir, out, "trainer.max_steps=4", "--resume", "last")
    for run in (first, resumed):
        lines = log_lines(run.stderr)
        assert any("GPU available" in line for line in lines)  # Lightning's lines still show
        repeated = [line for line, n in Counter(lines).items() if n > 1]
        assert not repeated, repeated
        # Each event once, whatever the format: Lightning's own handler wrote "INFO: <message>".
        assert sum("GPU available" in line for line in run.stderr.splitlines()) == 1
        for noise in FILTERED:
            assert noise not in run.stderr + run.stdout, noise
        (precision,) = [line for line in lines if "precision" in line.lower()]
        assert precision.startswith("INFO speechllm.trainer_options: precision bf16-true (trainer.precision)")
        assert "frozen encoder and LLM stored in bfloat16" in precision and "float32" in precision
    assert "Epoch 0/-2" not in first.stdout and "Epoch 0 · step 2/2" in first.stdout
    assert "step 4/4" in resumed.stdout


def test_the_progress_label_names_the_bound_that_ends_the_run() -> None:
    def label(max_epochs, max_steps, epoch=0, step=0):
        trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps, global_step=step)
        return train_description(trainer, epoch)

    assert label(-1, 100, step=5) == "Epoch 0 · step 5/100"  # max_steps: Lightning said "Epoch 0/-2"
    assert label(3, -1, epoch=1) == "Epoch 1/2"
    assert label(-1, -1, epoch=3) == "Epoch 3"  # only trainer.max_time stops it
    assert label(None, 10, step=10) == "Epoch 0 · step 10/10"


def test_the_filters_hold_inside_the_block_only() -> None:
    import lightning  # noqa: F401  (its console handler is what the block sets aside)

    noise = "Found 3 module(s) in eval mode at the start of training."
    lightning_logger = logging.getLogger("lightning")
    handlers = list(lightning_logger.handlers)
    root_handler = logging.StreamHandler()
    logging.getLogger().addHandler(root_handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_third_party():
                warnings.warn(noise, UserWarning, stacklevel=1)
                warnings.warn("a warning of our own", UserWarning, stacklevel=1)
                assert not [h for h in lightning_logger.handlers if isinstance(h, logging.StreamHandler)]
            warnings.warn(noise, UserWarning, stacklevel=1)
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert [str(w.message) for w in caught] == ["a warning of our own", noise]
    assert lightning_logger.handlers == handlers
