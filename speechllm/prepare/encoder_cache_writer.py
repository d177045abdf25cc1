"""Write the encoder-output cache (its format and reader: :mod:`speechllm.data.encoder_cache`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from lhotse import CutSet, load_manifest_lazy

from speechllm.audio import load_mono_16k
from speechllm.data.encoder_cache import (
    ARRAYS,
    CACHE_FORMAT,
    FP16_MAX,
    MANIFESTS,
    META,
    SKIPPED,
    VIEWS,
    EncoderCache,
    EncoderCacheError,
    cache_dir_name,
    entry_key,
    manifest_identity,
    view_key,
)
from speechllm.data.manifest_check import check_manifest_path
from speechllm.io import atomic_write, remove_stale_temporaries
from speechllm.masking import pad_audio

if TYPE_CHECKING:
    from speechllm.data.augment import AudioAugmenter

log = logging.getLogger(__name__)


def _check_or_write_meta(directory: Path, encoder: torch.nn.Module, cache_key: str) -> None:
    """Write the cache's ``meta.json``, or check that an existing one describes this encoder.

    Args:
        directory: the cache directory of ``cache_key``.
        encoder: the encoder whose dimension and frame rate are recorded.
        cache_key: ``encoder.cache_key()``.

    Raises:
        EncoderCacheError: the existing ``meta.json`` describes another encoder.
    """
    meta: dict[str, object] = {
        "format": CACHE_FORMAT,
        "cache_key": cache_key,
        "dim": int(encoder.dim),
        "frame_rate_hz": float(encoder.frame_rate_hz),
        "dtype": "float16",
    }
    if (directory / META).is_file():
        if json.loads((directory / META).read_text()) != meta:
            raise EncoderCacheError(f"{directory / META} describes another encoder than {cache_key!r}")
    else:
        with atomic_write(directory / META) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))


def _record_manifest(
    directory: Path, manifest: str | Path, cuts: int, augmenter: AudioAugmenter | None = None, views: int = 1
) -> None:
    """Add ``manifest``'s identity and cut count to the cache's ``manifests.json`` (atomically),
    and with ``views`` > 1 the augmented views cached (per augmentation identity, ``views.json``).

    Args:
        directory: the cache directory.
        manifest: the CutSet manifest just cached.
        cuts: how many cuts it has.
        augmenter: the augmentation of views 1 … ``views`` - 1.
        views: views per cut, the clean one included.
    """
    records = json.loads((directory / MANIFESTS).read_text()) if (directory / MANIFESTS).is_file() else {}
    record = manifest_identity(manifest)
    before = records.get(record["path"], {})
    unchanged = (before.get("size"), before.get("mtime_ns")) == (record["size"], record["mtime_ns"])
    cached_views = dict(before.get("views", {})) if unchanged else {}  # views of an older file are stale
    if augmenter is not None and views > 1:
        cached_views[augmenter.identity()] = views
        options = json.loads((directory / VIEWS).read_text()) if (directory / VIEWS).is_file() else {}
        options[augmenter.identity()] = {**augmenter.options(), "seed": augmenter.seed}
        with atomic_write(directory / VIEWS) as tmp:
            tmp.write_text(json.dumps(options, indent=2))
    records[record["path"]] = {**record, "cuts": cuts, **({"views": cached_views} if cached_views else {})}
    with atomic_write(directory / MANIFESTS) as tmp:
        tmp.write_text(json.dumps(records, indent=2))


def build_encoder_cache(
    encoder: torch.nn.Module,
    manifest: str | Path,
    root: str | Path,
    max_batch_duration: float = 120.0,
    device: str | torch.device = "cpu",
    on_progress: Callable[[int], None] | None = None,
    trust_sources: bool = False,
    augmenter: AudioAugmenter | None = None,
    views: int = 1,
) -> dict[str, int]:
    """Run ``encoder`` over every cut of ``manifest`` and store its outputs under ``root``.

    With ``views`` > 1, each cut is also encoded as augmented by ``augmenter`` (views 1 …
    ``views`` - 1, each a seeded draw, see :mod:`speechllm.data.encoder_cache`); view 0 is the
    clean audio. Give views for training manifests only: evaluation data is never augmented.

    The manifest is checked first (:func:`~speechllm.data.manifest_check.check_manifest_path`): a recording
    source that runs a command or fetches a URL is refused unless ``trust_sources``.

    Resumable: entries already stored (and loadable) are not recomputed. Cuts whose audio is
    unusable (see :func:`~speechllm.audio.load_mono_16k`) are listed in ``skipped.tsv`` and
    skipped later in training, as they would be without the cache.

    Args:
        encoder: a :class:`~speechllm.encoders.base.SpeechEncoder` (frozen).
        manifest: a CutSet manifest (``.jsonl.gz``).
        root: the cache directory.
        max_batch_duration: seconds of audio per encoder batch.
        device: where the encoder runs.
        on_progress: called with the number of cuts done after each batch (a progress bar).
        augmenter: the augmentation of the views (needed when ``views`` > 1).
        views: views per cut, the clean one included (1: the clean audio only).

    Returns:
        counts ``{"cuts", "computed", "reused", "skipped"}``: cuts, then entries (cut × view).
    """
    if views < 1 or (views > 1 and augmenter is None):
        raise ValueError(f"views={views}: must be >= 1, and views > 1 needs an augmenter (data.augment)")
    check_manifest_path(manifest, trust_sources)  # read once per process: the CLI checked it already
    cache_key = encoder.cache_key()
    directory = Path(root) / cache_dir_name(cache_key)
    (directory / ARRAYS).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)  # arrays a killed run was writing
    _check_or_write_meta(directory, encoder, cache_key)
    dim = int(encoder.dim)
    cache = EncoderCache(root, cache_key, dim=dim)
    encoder = encoder.to(device)
    counts = {"cuts": 0, "computed": 0, "reused": 0, "skipped": 0}
    skipped = cache.skipped_entries()
    cuts = load_manifest_lazy(manifest)
    if not isinstance(cuts, CutSet):
        raise EncoderCacheError(f"{manifest} is not a CutSet manifest")
    identity = augmenter.identity() if augmenter is not None and views > 1 else None
    # Each cut is encoded once per view: batches of fewer cuts keep the encoder's batch as long.
    for batch_cuts in duration_sorted_batches(cuts, max_batch_duration / views):
        todo: list[tuple[str, torch.Tensor]] = []
        for cut in batch_cuts:
            counts["cuts"] += 1
            clean = entry_key(cut)
            for view in range(views):
                key = view_key(clean, identity, view)
                if clean in skipped or key in skipped or _loadable(cache.array_path(key), dim):
                    counts["reused"] += 1
                    continue
                audio, problem = load_mono_16k(augmenter(cut, view) if view else cut)  # type: ignore[misc]
                if audio is None:
                    log.warning("not caching cut %s (view %d): %s", cut.id, view, problem)
                    skipped[key] = problem
                    with open(directory / SKIPPED, "a", encoding="utf-8") as handle:
                        handle.write(f"{key}\t{cut.id}\t{' '.join(problem.split())}\n")
                    counts["skipped"] += 1
                    continue
                todo.append((key, audio))
        if todo:
            _encode_and_store(encoder, todo, cache, device)
            counts["computed"] += len(todo)
        if on_progress is not None:
            on_progress(len(batch_cuts))
    _record_manifest(directory, manifest, counts["cuts"], augmenter, views)
    return counts


# Cuts sorted by duration at a time: batches of similar lengths, so the encoder runs on little
# padding (half the encoding time of manifest order on the demo's clips, docs/benchmarks.md),
# while a large manifest is still read lazily.
SORT_WINDOW = 20_000


def duration_sorted_batches(cuts: Iterable, max_duration: float, window: int = SORT_WINDOW) -> Iterator[list]:
    """Batches of at most ``max_duration`` seconds (at least one cut each) from windows of
    ``window`` cuts, each window sorted by duration. Every cut appears exactly once."""
    pending: list = []

    def flush() -> Iterator[list]:
        batch: list = []
        total = 0.0
        for cut in sorted(pending, key=lambda c: c.duration):
            if batch and total + cut.duration > max_duration:
                yield batch
                batch, total = [], 0.0
            batch.append(cut)
            total += cut.duration
        if batch:
            yield batch
        pending.clear()

    for cut in cuts:
        pending.append(cut)
        if len(pending) >= window:
            yield from flush()
    yield from flush()


def _encode_and_store(
    encoder: torch.nn.Module,
    todo: list[tuple[str, torch.Tensor]],
    cache: EncoderCache,
    device: str | torch.device,
) -> None:
    """Encode one batch of ``(key, audio (S,))`` and store each clip's (T, C) frames as float16."""
    audio, audio_lens = pad_audio([a for _, a in todo])
    hidden, lens = encoder(audio.to(device), audio_lens.to(device))
    for (key, _), frames, length in zip(todo, hidden, lens.tolist()):
        values = frames[:length].float().cpu()
        if not torch.isfinite(values).all() or float(values.abs().max()) > FP16_MAX:
            raise EncoderCacheError(f"encoder output of entry {key} does not fit float16")
        # The layout lhotse's NumpyFilesWriter uses (arrays/<key[:3]>/<key>.npy), written atomically.
        with atomic_write(cache.array_path(key), keep_suffixes=True) as tmp:
            np.save(tmp, values.to(torch.float16).numpy())


def _loadable(path: Path, dim: int) -> bool:
    """An entry exists and is a complete (T, dim) array (an interrupted write is recomputed)."""
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return False
    return array.ndim == 2 and array.shape[1] == dim
