"""Decoding speed: RTFx (audio seconds per decode second) and throughput, with the device named.

RTFx is the Open ASR leaderboard's speed measure: seconds of audio decoded per second of wall
clock (higher is faster; 100 means a minute of audio in 0.6 s). :class:`DecodeClock` times the
decoding loop of ``speechllm evaluate`` (data loading, encoder, adapter and LLM generation: what
a user waits for; the model load and the scoring are left out) and counts the audio, clips and
generated tokens; :meth:`DecodeClock.record` is what ``run.json`` keeps under ``speed_<task>``
and ``speechllm report`` prints. A CUDA device is synchronized before the clock is read, so the
time is the GPU's, not the launch queue's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from speechllm.precision import cpu_name


def device_name(device: torch.device) -> str:
    """The device in words: ``NVIDIA H100 80GB HBM3 (cuda:0)``, ``Intel(R) Xeon(R) Processor (cpu, 2
    threads)``: a CPU's speed depends on its model (bf16 is native on some, ~90× slower on others)."""
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    if device.type == "cpu":
        return f"{cpu_name()} (cpu, {torch.get_num_threads()} threads)"
    return str(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


@dataclass
class DecodeClock:
    """Wall time of a decoding loop and what it decoded.

    Use as ``with clock: ...decode...`` (it may be entered several times: the times add up), and
    :meth:`add` per decoded batch.
    """

    device: torch.device
    seconds: float = 0.0
    audio_seconds: float = 0.0
    clips: int = 0
    tokens: int = 0
    _start: float | None = None

    def __enter__(self) -> DecodeClock:
        _sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        assert self._start is not None
        self.seconds += time.perf_counter() - self._start
        self._start = None

    def add(self, audio_seconds: float, clips: int, tokens: int) -> None:
        """Count one decoded batch: its audio (seconds), clips and generated tokens."""
        self.audio_seconds += float(audio_seconds)
        self.clips += int(clips)
        self.tokens += int(tokens)

    def record(self, precision: str) -> dict[str, Any]:
        """``run.json``'s ``speed_<task>``: RTFx, clips and tokens per second, device and precision."""
        seconds = max(self.seconds, 1e-9)
        return {
            "rtfx": self.audio_seconds / seconds,
            "audio_seconds": self.audio_seconds,
            "decode_seconds": self.seconds,
            "clips_per_second": self.clips / seconds,
            "tokens_per_second": self.tokens / seconds,
            "clips": self.clips,
            "tokens": self.tokens,
            "device": device_name(self.device),
            "precision": precision,
            "cpu_count": os.cpu_count(),
        }
