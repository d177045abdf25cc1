"""Overrides that make the tiny recipe an exact, small training run (shared by the resume, DDP,
FSDP2, kill -9 and non-finite-step tests), and reading back the losses such a run logged."""

from __future__ import annotations

import csv
import socket
from pathlib import Path


def exact_run_overrides(
    tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, steps: int, *extra: str
) -> list[str]:
    """fp32, no LoRA, unbucketed 4 s batches, no validation, a checkpoint and a log line every step.

    Paraphrases stay on: each is a function of the seed and the cut id, so every rank and a
    resumed run pick the same. Later ``extra`` overrides win.
    """
    return [
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        "model.llm.lora=null",
        f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
        "data.val=[]",
        "data.max_duration=4",
        "data.num_buckets=1",
        "trainer.precision=32",
        f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0",
        "trainer.val_check_interval=null",
        "trainer.checkpoint_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        *extra,
    ]


def step_losses(output_dir: Path) -> dict[int, float]:
    """``{step: train/loss}`` over all CSV log versions of a run directory."""
    losses: dict[int, float] = {}
    for metrics in sorted(output_dir.glob("logs/version_*/metrics.csv")):
        with metrics.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("train/loss"):
                    losses[int(row["step"])] = float(row["train/loss"])
    return losses


def free_port() -> int:
    """A free TCP port on localhost (for ``MASTER_PORT`` of a multi-process run)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
