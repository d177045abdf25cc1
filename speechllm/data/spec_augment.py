"""SpecAugment-style masking of cached encoder outputs (``data.spec_augment``).

With the encoder-output cache the audio of a clip is encoded once, so audio augmentation costs an
encoder pass per cached view (``speechllm cache --views N``). Masking the cached outputs
themselves costs nothing: a few spans of frames (time masks) and of channels (feature masks) are
set to zero, as SpecAugment does to filterbanks (Park et al., 2019), here on the encoder's
output. Training cuts only; the masks are a function of ``(seed, cut id, epoch)``, so they are
reproducible and differ from one epoch to the next.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np


class SpecAugment:
    """Time and feature masks on (T, C) encoder outputs.

    Args:
        options: the ``data.spec_augment`` section
            (:class:`~speechllm.config.schema.SpecAugmentConfig` or a mapping of its keys).
        seed: the run's seed, used when ``options["seed"]`` is unset.
    """

    def __init__(self, options: Mapping[str, Any], seed: int = 0) -> None:
        self.time_masks = int(options.get("time_masks", 2))
        self.max_time_width = float(options.get("max_time_width", 0.05))
        self.feature_masks = int(options.get("feature_masks", 2))
        self.max_feature_width = float(options.get("max_feature_width", 0.1))
        self.seed = int(seed if options.get("seed") is None else options["seed"])

    def spans(self, cut_id: str, epoch: int, frames: int, channels: int) -> tuple[list[range], list[range]]:
        """The masked (frame spans, channel spans) of ``cut_id`` at ``epoch``."""
        rng = random.Random(f"spec_augment:{self.seed}:{cut_id}:{epoch}")

        def draw(count: int, fraction: float, size: int) -> list[range]:
            spans = []
            for _ in range(count):
                width = rng.randint(0, int(fraction * size))
                start = rng.randint(0, max(size - width, 0))
                spans.append(range(start, start + width))
            return spans

        return draw(self.time_masks, self.max_time_width, frames), draw(
            self.feature_masks, self.max_feature_width, channels
        )

    def __call__(self, hidden: np.ndarray, cut_id: str, epoch: int = 0) -> np.ndarray:
        """A masked copy of ``hidden`` (T, C): the drawn frames and channels set to 0."""
        masked = np.array(hidden, copy=True)
        times, features = self.spans(cut_id, epoch, masked.shape[0], masked.shape[1])
        for span in times:
            masked[span.start : span.stop] = 0
        for span in features:
            masked[:, span.start : span.stop] = 0
        return masked
