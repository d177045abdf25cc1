"""Write the encoder-output cache (its format and reader: :mod:`speechllm.data.encoder_cache`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, load_manifest_lazy
from lhotse.dataset import SimpleCutSampler
from lhotse.features.io import NumpyFilesWriter

from speechllm.audio import load_mono_16k
from speechllm.data.encoder_cache import (
    ARRAYS,
    CACHE_FORMAT,
    FP16_MAX,
    MANIFESTS,
    META,
    SKIPPED,
    EncoderCache,
    EncoderCacheError,
    cache_dir_name,
    entry_key,
    manifest_identity,
)
from speechllm.io import atomic_write
from speechllm.masking import pad_audio

log = logging.getLogger(__name__)


def build_encoder_cache(
    encoder: torch.nn.Module,
    manifest: str | Path,
    root: str | Path,
    max_batch_duration: float = 120.0,
    device: str | torch.device = "cpu",
) -> dict[str, int]:
    """Run ``encoder`` over every cut of ``manifest`` and store its outputs under ``root``.

    Resumable: entries already stored (and loadable) are not recomputed. Cuts whose audio is
    unusable (see :func:`~speechllm.audio.load_mono_16k`) are listed in ``skipped.tsv`` and
    skipped later in training, as they would be without the cache.

    Args:
        encoder: a :class:`~speechllm.encoders.base.SpeechEncoder` (frozen).
        manifest: a CutSet manifest (``.jsonl.gz``).
        root: the cache directory.
        max_batch_duration: seconds of audio per encoder batch.
        device: where the encoder runs.

    Returns:
        counts ``{"cuts", "computed", "reused", "skipped"}``.
    """
    cache_key = encoder.cache_key()
    directory = Path(root) / cache_dir_name(cache_key)
    (directory / ARRAYS).mkdir(parents=True, exist_ok=True)
    meta = {
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
    cache = EncoderCache(root, cache_key, dim=int(encoder.dim))
    writer = NumpyFilesWriter(directory / ARRAYS)
    encoder = encoder.to(device)
    counts = {"cuts": 0, "computed": 0, "reused": 0, "skipped": 0}
    skipped = cache.skipped_entries()
    cuts = load_manifest_lazy(manifest)
    if not isinstance(cuts, CutSet):
        raise EncoderCacheError(f"{manifest} is not a CutSet manifest")
    sampler = SimpleCutSampler(cuts, max_duration=max_batch_duration, shuffle=False, world_size=1, rank=0)
    for batch_cuts in sampler:
        todo: list[tuple[str, torch.Tensor]] = []
        for cut in batch_cuts:
            counts["cuts"] += 1
            key = entry_key(cut)
            if key in skipped or _loadable(cache.array_path(key), meta["dim"]):
                counts["reused"] += 1
                continue
            audio, problem = load_mono_16k(cut)
            if audio is None:
                log.warning("not caching cut %s: %s", cut.id, problem)
                skipped[key] = problem
                with open(directory / SKIPPED, "a", encoding="utf-8") as handle:
                    handle.write(f"{key}\t{cut.id}\t{' '.join(problem.split())}\n")
                counts["skipped"] += 1
                continue
            todo.append((key, audio))
        if not todo:
            continue
        audio, audio_lens = pad_audio([a for _, a in todo])
        hidden, lens = encoder(audio.to(device), audio_lens.to(device))
        for (key, _), frames, length in zip(todo, hidden, lens.tolist()):
            values = frames[:length].float().cpu()
            if not torch.isfinite(values).all() or float(values.abs().max()) > FP16_MAX:
                raise EncoderCacheError(f"encoder output of entry {key} does not fit float16")
            stored = writer.write(key, values.to(torch.float16).numpy())
            # We read files back with np.load, so the layout must be the one array_path names.
            if Path(directory / ARRAYS / stored) != cache.array_path(key):
                raise EncoderCacheError(f"unexpected lhotse storage layout: {stored}")
            counts["computed"] += 1
    records = json.loads((directory / MANIFESTS).read_text()) if (directory / MANIFESTS).is_file() else {}
    record = manifest_identity(manifest)
    records[record["path"]] = {**record, "cuts": counts["cuts"]}
    with atomic_write(directory / MANIFESTS) as tmp:
        tmp.write_text(json.dumps(records, indent=2))
    return counts


def _loadable(path: Path, dim: int) -> bool:
    """An entry exists and is a complete (T, dim) array (an interrupted write is recomputed)."""
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return False
    return array.ndim == 2 and array.shape[1] == dim
