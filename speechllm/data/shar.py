"""lhotse Shar: sequential tar shards of cuts + audio (+ cached encoder outputs) for multi-node runs.

``speechllm prepare shar MANIFEST OUT_DIR`` writes ``cuts.NNNNNN.jsonl.gz`` with
``recording.NNNNNN.tar`` (and ``encoder_hidden.NNNNNN.tar`` with ``--with-encoder-cache``) per
shard. A data config names the directory like a manifest (``data.train: [{path: OUT_DIR}]``); the
data module recognizes it and streams it, each rank and each dataloader worker reading its own
shards (:class:`ShardSubset`).
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut
from lhotse.shar.readers.lazy import LazySharIterator

from speechllm.data.encoder_cache import ATTACHED_FIELD, ATTACHED_KEY, EncoderCache

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("flac", "wav")


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


def export_shar(
    manifest: str | Path,
    output_dir: str | Path,
    shard_size: int = 1000,
    audio_format: str = "flac",
    encoder_cache: str | Path | None = None,
    num_jobs: int = 1,
) -> dict[str, list[str]]:
    """Write ``manifest``'s cuts and audio (and cached encoder outputs) as lhotse Shar shards.

    Args:
        manifest: a CutSet manifest.
        output_dir: the Shar directory to create.
        shard_size: cuts per shard (use at least ranks × dataloader workers shards).
        audio_format: ``flac`` (lossless, small) or ``wav``.
        encoder_cache: an encoder-output cache holding one encoder (a ``speechllm cache`` directory
            or one of its subdirectories): each cut then carries its hidden states, and cuts the
            cache lists as unusable audio are left out.

    Returns:
        ``{field: [shard paths]}`` as lhotse's ``CutSet.to_shar`` reports them.
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format {audio_format!r}; valid: {', '.join(AUDIO_FORMATS)}")
    if shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {shard_size}")
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    cuts = load_manifest_lazy(path)
    if not isinstance(cuts, CutSet):
        raise ValueError(f"{path} is not a CutSet manifest")
    fields = {"recording": audio_format}
    if encoder_cache is not None:
        cache = EncoderCache.open_single(encoder_cache)
        cache.check_manifest(path)
        cuts = cuts.map(_AttachHidden(cache)).filter(_is_cut)
        fields[ATTACHED_FIELD] = "numpy"
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    # fault_tolerant: a cut whose audio cannot be read is left out (lhotse logs it) instead of
    # aborting an export of many hours.
    return cuts.to_shar(
        output_dir, fields=fields, shard_size=shard_size, num_jobs=num_jobs, fault_tolerant=True
    )


def _is_cut(cut: Cut | None) -> bool:
    return cut is not None


class _AttachHidden:
    """Attach a cut's cached hidden states (a whole array: no temporal slicing) and their encoder key."""

    def __init__(self, cache: EncoderCache) -> None:
        self.cache = cache

    def __call__(self, cut: Cut) -> Cut | None:
        hidden = self.cache.load(cut)
        if hidden is None:
            log.warning("leaving out cut %s: %s", cut.id, self.cache.skip_reason(cut))
            return None
        cut = cut.attach_tensor(ATTACHED_FIELD, hidden)
        cut.custom[ATTACHED_KEY] = self.cache.cache_key
        return cut


# -- command line ---------------------------------------------------------------------------------
def add_shar_command(commands: argparse._SubParsersAction) -> None:
    """Add ``shar`` to the ``speechllm prepare`` subcommands."""
    shar = commands.add_parser("shar", help="export a manifest to lhotse Shar shards (multi-node streaming)")
    shar.add_argument("manifest", help="a CutSet manifest (.jsonl.gz)")
    shar.add_argument("output_dir")
    shar.add_argument("--shard-size", type=int, default=1000, help="cuts per shard (default: 1000)")
    shar.add_argument("--audio-format", default="flac", choices=AUDIO_FORMATS)
    shar.add_argument(
        "--with-encoder-cache", default=None, metavar="DIR", help="also store cached encoder outputs"
    )
    shar.add_argument("--num-jobs", type=int, default=1)
    shar.set_defaults(func=_run_shar)


def _run_shar(args: argparse.Namespace) -> int:
    written = export_shar(
        args.manifest,
        args.output_dir,
        shard_size=args.shard_size,
        audio_format=args.audio_format,
        encoder_cache=args.with_encoder_cache,
        num_jobs=args.num_jobs,
    )
    print(f"{len(written.get('cuts', []))} shards in {args.output_dir} ({', '.join(sorted(written))})")
    return 0
