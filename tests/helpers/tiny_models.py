"""Tiny random Hugging Face speech models (configs in :mod:`speechllm.presets.tiny`) for the encoder tests.

They are the same classes the real checkpoints are (``WhisperForConditionalGeneration`` for
openai/whisper-*, ``SeamlessM4Tv2Model`` for facebook/seamless-m4t-v2-large), so loading them
exercises the same key layout; only the sizes are tiny. Reuse them from any test::

    from helpers.tiny_models import tiny_whisper_dir
    encoder = WhisperSpeechEncoder(path=str(tiny_whisper_dir(tmp_path)))
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import SeamlessM4Tv2Model, WhisperForConditionalGeneration

from speechllm.presets.tiny import tiny_seamless_config, tiny_whisper_config


def tiny_whisper_model(num_mel_bins: int = 80, seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(tiny_whisper_config(num_mel_bins)).eval()


def tiny_seamless_model(seed: int = 0) -> SeamlessM4Tv2Model:
    torch.manual_seed(seed)
    return SeamlessM4Tv2Model(tiny_seamless_config()).eval()


def tiny_whisper_dir(tmp_path: Path, num_mel_bins: int = 80, seed: int = 0) -> Path:
    """Save a tiny random Whisper (full model, as on the hub) under ``tmp_path`` and return its directory."""
    directory = Path(tmp_path) / f"tiny-random-whisper-{num_mel_bins}-{seed}"
    if not (directory / "config.json").exists():
        tiny_whisper_model(num_mel_bins, seed).save_pretrained(directory)
    return directory


def tiny_seamless_dir(tmp_path: Path, seed: int = 0) -> Path:
    """Save a tiny random SeamlessM4T v2 (full model, as on the hub) under ``tmp_path``; return its dir."""
    directory = Path(tmp_path) / f"tiny-random-seamless-{seed}"
    if not (directory / "config.json").exists():
        tiny_seamless_model(seed).save_pretrained(directory)
    return directory
