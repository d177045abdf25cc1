"""Audio as the library reads it: mono float32 at 16 kHz, or the reason a clip is unusable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from lhotse.cut import Cut

SAMPLE_RATE = 16_000  # Hz: what every encoder takes and every corpus recipe resamples to


def load_mono_16k(cut: Cut) -> tuple[torch.Tensor | None, str]:
    """Load a cut as mono 16 kHz float32; returns (audio (S,), "") or (None, reason)."""
    try:
        if cut.sampling_rate != SAMPLE_RATE:
            cut = cut.resample(SAMPLE_RATE)
        samples = cut.load_audio()
    except Exception as err:  # corrupt or missing file: skip, never crash mid-epoch
        return None, f"unreadable audio ({type(err).__name__}: {err})"
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:  # (channels, S): down-mix
        samples = samples.mean(axis=0)
    if samples.size == 0:
        return None, "empty audio"
    if not np.isfinite(samples).all():
        return None, "non-finite samples"
    return torch.from_numpy(np.ascontiguousarray(samples)), ""


def split_into_chunks(
    audio: Tensor, audio_lens: Tensor, chunk_seconds: float
) -> tuple[list[Tensor], list[int]]:
    """Each clip's samples cut into consecutive pieces of at most ``chunk_seconds`` (16 kHz).

    Returns (pieces (S_i,), the clip each piece belongs to), clips in order, pieces in time order.
    A last piece shorter than a tenth of a chunk joins the piece before it (a sliver of audio
    transcribes to noise).
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    size = int(chunk_seconds * SAMPLE_RATE)
    pieces: list[Tensor] = []
    owners: list[int] = []
    for clip, length in enumerate(audio_lens.tolist()):
        bounds = list(range(0, int(length), size)) + [int(length)]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < size // 10:
            bounds.pop(-2)
        for start, end in zip(bounds, bounds[1:]):
            pieces.append(audio[clip, start:end])
            owners.append(clip)
    return pieces, owners


def per_chunk(value: str | list[str] | None, owners: list[int]) -> str | list[str] | None:
    """A per-clip setting (one value, or one per clip) as one per chunk (``owners``: the clip of
    each chunk, as :func:`split_into_chunks` gives them)."""
    return value if value is None or isinstance(value, str) else [value[i] for i in owners]
