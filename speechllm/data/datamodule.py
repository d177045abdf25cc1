"""LightningDataModule: lazy lhotse manifests → duration-bucketed, rank-sharded batches."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from torch.utils.data import DataLoader

from speechllm.config import DataConfig, ManifestConfig
from speechllm.data.dataset import TASKS, SpeechDataset
from speechllm.llms.prompts import PromptBuilder


class SpeechDataModule(L.LightningDataModule):
    """Builds train/val/test loaders from ``data.train`` / ``data.val`` / ``data.test`` manifests.

    Several training manifests (e.g. ASR and ST) are mixed lazily with their ``weight``s. The
    bucketing sampler shards by the trainer's rank and world size, so Lightning must not add a
    distributed sampler (``use_distributed_sampler=False``, set by the train command).
    """

    def __init__(self, config: DataConfig | Any, prompts: PromptBuilder, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.prompts = prompts
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.config.train, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.config.val, train=False) if self.config.val else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader(self.config.test, train=False) if self.config.test else []

    def cuts(self, manifests: list[ManifestConfig]) -> CutSet:
        """The (lazily) mixed and duration-filtered cuts of ``manifests``."""
        if not manifests:
            raise ValueError("no manifests configured for this split (data.train / data.val / data.test)")
        parts = [load_cuts(m) for m in manifests]
        cuts = (
            parts[0]
            if len(parts) == 1
            else CutSet.mux(*parts, weights=[m.weight for m in manifests], seed=self.seed)
        )
        lo, hi = self.config.min_cut_duration, self.config.max_cut_duration
        return cuts.filter(partial(_duration_within, low=lo, high=hi))

    def _loader(self, manifests: list[ManifestConfig], train: bool) -> DataLoader:
        world_size, rank = 1, 0
        if self.trainer is not None:
            world_size, rank = self.trainer.world_size, self.trainer.global_rank
        common = {
            "max_duration": self.config.max_duration,
            "shuffle": train and self.config.shuffle,
            "drop_last": False,
            "world_size": world_size,
            "rank": rank,
            "seed": self.seed,
        }
        cuts = self.cuts(manifests)
        if self.config.num_buckets > 1:
            sampler = DynamicBucketingSampler(cuts, num_buckets=self.config.num_buckets, **common)
        else:  # no bucketing: batches in manifest (or shuffled) order
            sampler = SimpleCutSampler(cuts, **common)
        dataset = SpeechDataset(self.prompts, task=manifests[0].task, train=train, seed=self.seed + rank)
        workers = self.config.num_workers
        return DataLoader(
            dataset, sampler=sampler, batch_size=None, num_workers=workers, persistent_workers=workers > 0
        )


def load_cuts(manifest: ManifestConfig) -> CutSet:
    """Open a CutSet manifest lazily and tag each cut with the manifest's task."""
    if manifest.task not in TASKS:
        raise ValueError(
            f"data manifest {manifest.path}: unknown task {manifest.task!r}; valid: {', '.join(TASKS)}"
        )
    path = Path(manifest.path)
    if not path.exists():
        raise FileNotFoundError(f"data manifest not found: {path}")
    return load_manifest_lazy(path).map(partial(_with_task, task=manifest.task))


def _with_task(cut: Cut, task: str) -> Cut:
    cut.custom = {**(cut.custom or {}), "task": task}
    return cut


def _duration_within(cut: Cut, low: float, high: float) -> bool:
    return low <= cut.duration <= high
