"""lhotse Shar: sequential tar shards of cuts + audio (+ cached encoder outputs) for multi-node runs.

``speechllm prepare shar MANIFEST OUT_DIR`` writes ``cuts.NNNNNN.jsonl.gz`` with
``recording.NNNNNN.tar`` (and ``encoder_hidden.NNNNNN.tar`` with ``--with-encoder-cache``) per
shard. A data config names the directory like a manifest (``data.train: [{path: OUT_DIR}]``); the
data module recognizes it and streams it, each rank and each dataloader worker reading its own
shards (:class:`ShardSubset`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lhotse.cut import Cut
from lhotse.shar.readers.lazy import LazySharIterator

log = logging.getLogger(__name__)


def is_shar_dir(path: str | Path) -> bool:
    """A directory with lhotse Shar cut shards (``cuts.000000.jsonl.gz`` ...)."""
    path = Path(path)
    return path.is_dir() and any(path.glob("cuts.*jsonl*"))


def shar_fields(path: str | Path) -> set[str]:
    """The data fields stored next to the cuts, e.g. ``{"recording", "encoder_hidden"}``."""
    return {p.name.split(".")[0] for p in Path(path).iterdir() if p.name.split(".")[0] != "cuts"}


class ShardSubset:
    """The cuts of one rank's share of a Shar directory, split again among dataloader workers.

    Rank ``r`` of ``W`` owns shards ``r, r+W, r+2W, ...`` (sorted by number); worker ``w`` of ``N``
    reads every ``N``-th of those. No two readers share a shard, so every cut is read by exactly
    one (rank, worker) per pass. With ``shuffle`` each pass visits the worker's shards in a new
    order (seeded by ``seed`` and the pass number).

    Raises:
        ValueError: fewer shards than ranks, or than ranks × workers (some readers would get
            nothing and ranks would run out of data at different times).
    """

    def __init__(self, shar_dir: str | Path, rank: int, world_size: int, shuffle: bool, seed: int) -> None:
        self.shar_dir = Path(shar_dir)
        shards = LazySharIterator(in_dir=self.shar_dir).shards
        if len(shards) < world_size:
            raise ValueError(
                f"Shar directory {self.shar_dir} has {len(shards)} shards for {world_size} ranks: "
                "re-export it with a smaller --shard-size"
            )
        self.shards: list[dict[str, Any]] = shards[rank::world_size]
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed = shuffle, seed
        self.passes = 0

    def __iter__(self) -> Iterator[Cut]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if len(self.shards) < num_workers:
            raise ValueError(
                f"Shar directory {self.shar_dir}: rank {self.rank} has {len(self.shards)} shards for "
                f"{num_workers} dataloader workers: lower data.num_workers or re-export with a smaller "
                "--shard-size"
            )
        mine = self.shards[worker::num_workers]
        if self.shuffle:
            mine = list(mine)
            random.Random(self.seed * 1_000_003 + self.passes).shuffle(mine)
        self.passes += 1
        fields = {name: [shard[name] for shard in mine] for name in mine[0]}
        yield from LazySharIterator(fields=fields)
