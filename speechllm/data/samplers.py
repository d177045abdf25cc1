"""Sampler pieces the data module composes: mid-epoch resumption and the duration filter."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset.sampling.base import CutSampler

from speechllm.data.dataset import EPOCH_FIELD, SkipReport


class ResumableSampler(torch.utils.data.Sampler):
    """A lhotse sampler that counts consumed batches and can restart mid-epoch.

    The count comes from the data module's ``on_before_batch_transfer`` hook (the training loop's
    pace), not from the sampler's own progress: a DataLoader with workers samples batches ahead
    of training, so the sampler's own state would skip the prefetched batches on resume.

    Each cut of a batch is tagged with the epoch (``custom["sampler_epoch"]``): training
    augmentation draws a new variant of a cut each epoch.

    Args:
        sampler: a lhotse :class:`~lhotse.dataset.sampling.base.CutSampler`.
    """

    def __init__(self, sampler: CutSampler) -> None:
        self.sampler = sampler
        self.epoch = 0
        self.consumed = 0
        self._skip = 0
        self._resume_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start; a new epoch drops a pending resume."""
        if self._resume_epoch is not None and epoch != self._resume_epoch:
            self._skip, self._resume_epoch = 0, None
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def resume(self, epoch: int, batches: int) -> None:
        """Make the next pass start at batch ``batches`` of epoch ``epoch``."""
        self.set_epoch(epoch)
        self._skip, self._resume_epoch = batches, epoch

    def __iter__(self) -> Iterator[CutSet]:
        # A generator, so nothing happens until the first batch is asked for: torch's DataLoader
        # calls iter() on its sampler twice when it starts workers and drops the first iterator.
        return self._batches()

    def _batches(self) -> Iterator[CutSet]:
        skip, self._skip, self._resume_epoch = self._skip, 0, None
        self.consumed = skip
        # Fast-forward by sampling (cheap: manifests only, no audio) the batches already trained on.
        for batch in islice(iter(self.sampler), skip, None):
            yield _tagged(batch, self.epoch)


def _tagged(cuts: CutSet, epoch: int) -> CutSet:
    """``cuts`` with ``custom[EPOCH_FIELD] = epoch`` (augmentation draws per cut and epoch)."""
    for cut in cuts:
        cut.custom = {**(cut.custom or {}), EPOCH_FIELD: epoch}
    return cuts


class DurationFilter:
    """Keeps cuts with ``low <= duration <= high``; reports the others once per process."""

    def __init__(self, low: float, high: float, report: SkipReport) -> None:
        self.low, self.high, self.report = low, high, report
        self._seen: set[str] = set()

    def __call__(self, cut: Cut) -> bool:
        if self.low <= cut.duration <= self.high:
            return True
        if cut.id not in self._seen:
            self._seen.add(cut.id)
            side = (
                f"longer than data.max_cut_duration={self.high}"
                if cut.duration > self.high
                else (f"shorter than data.min_cut_duration={self.low}")
            )
            self.report.add(cut.id, f"duration {cut.duration:.2f} s {side}")
        return False
