"""Audio as the library reads it: mono float32 at 16 kHz, or the reason a clip is unusable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

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
