"""Encoder-output cache: run the frozen speech encoder once, train many adapters on its outputs.

The paper freezes the speech encoder, so its outputs for a clip never change during training; a
sweep over the five adapters can compute them once. ``speechllm cache CONFIG --manifest M``
writes them, and training with ``data.encoder_cache=DIR`` reads them instead of audio (the batch
then carries ``encoder_hidden`` (B, T, C) and ``encoder_lens`` (B,), and the model skips the
encoder).

Layout of a cache directory ``DIR``::

    DIR/<sha1(encoder cache_key)[:16]>/        one subdirectory per encoder identity
        meta.json                              cache_key, dim, frame_rate_hz, dtype, format
        manifests.json                         each cached manifest: absolute path, size, mtime
        skipped.tsv                            entries whose audio was unusable at caching time
        views.json                             augmented views: their data.augment options (optional)
        arrays/<key[:3]>/<key>.npy             (T, C) float16 .npy, written atomically

Identity and invalidation (an error, never a silent recompute: recomputing needs the encoder on an
accelerator, which data workers do not have):

- The encoder's :meth:`~speechllm.encoders.base.SpeechEncoder.cache_key` (kind, weights, every
  output-changing option such as ``pad_to_30s`` and ``dtype``) names the subdirectory. A model
  whose key has no subdirectory gets an error listing the keys that are cached.
- Each entry's ``key`` is a hash of the cut id and the cut's *audio identity*: for each audio file
  its absolute path, size and modification time (ns); for in-memory audio a SHA-1 of the bytes;
  plus the cut's start, duration, channel and the recording's sampling rate and transforms. Audio
  that changes (or moves) after caching therefore misses the cache, which is an error naming the
  cut; re-run ``speechllm cache``. Copying a corpus without preserving mtimes invalidates it too.
- A manifest is usable with the cache only if ``manifests.json`` records it with its current size
  and mtime; that is checked when the data module starts, before any training step.

Augmented views (``speechllm cache --views N``, with ``data.augment`` set): view 0 of a cut is its
clean audio, stored under the entry key as always; views 1 … N-1 are seeded augmentations
(:mod:`speechllm.data.augment`), stored under a key that also hashes the augmentation's identity
(its options and seed) and the view number. ``views.json`` maps each identity to its options, and
a manifest's ``manifests.json`` record lists the views cached per identity. Training with the same
``data.augment`` reads one view per cut and epoch (seeded); a cache written before views existed
has no ``views.json`` and serves view 0, as before.

Storage is lossless float16 numpy (hidden states of bf16 or fp32 encoders both fit fp16's range;
a value that does not is an error). One ``.npy`` file per clip keeps writes resumable and reads
safe from any number of dataloader workers; ``speechllm prepare shar --with-encoder-cache`` packs
them into sequential tar shards for large runs. Reads use ``np.load`` directly rather than lhotse's
reader, whose 512-entry LRU cache would hold gigabytes of hidden states per worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from lhotse.cut import Cut

from speechllm.errors import SpeechLLMError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
META = "meta.json"
MANIFESTS = "manifests.json"
SKIPPED = "skipped.tsv"
VIEWS = "views.json"
ARRAYS = "arrays"
# A Shar export with --with-encoder-cache attaches the hidden states to each cut under this field.
ATTACHED_FIELD = "encoder_hidden"
ATTACHED_KEY = "encoder_cache_key"
FP16_MAX = float(np.finfo(np.float16).max)


class EncoderCacheError(SpeechLLMError, RuntimeError):
    """The cache cannot serve this encoder, manifest or cut; the message says what to re-run."""


class UnreadableEntryError(EncoderCacheError):
    """One cut's stored array cannot be read (truncated, corrupt); training skips that cut."""


def cache_dir_name(cache_key: str) -> str:
    """Subdirectory of one encoder identity: a short hash of its ``cache_key``."""
    return hashlib.sha1(cache_key.encode()).hexdigest()[:16]


def audio_identity(cut: Cut) -> str:
    """A string that changes when the cut's audio may have changed (see the module docstring)."""
    recording = cut.recording
    if recording is None:
        raise EncoderCacheError(f"cut {cut.id} has no recording: nothing to cache")
    parts: list[Any] = [recording.sampling_rate, recording.num_samples, recording.transforms]
    for source in recording.sources:
        if source.type == "file":
            path = os.path.abspath(str(source.source))
            try:
                stat = os.stat(path)
                parts.append(["file", path, stat.st_size, stat.st_mtime_ns, source.channels])
            except OSError:
                parts.append(["file", path, "missing", source.channels])
        elif source.type == "memory":
            parts.append(["memory", hashlib.sha1(source.source).hexdigest(), source.channels])
        else:  # url, command, shar: the address is the identity
            parts.append([source.type, str(source.source), source.channels])
    parts += [round(cut.start, 6), round(cut.duration, 6), cut.channel]
    return json.dumps(parts, default=str)


def entry_key(cut: Cut) -> str:
    """The storage key of one cut's hidden states: hash of its id and audio identity."""
    return hashlib.sha1(f"{cut.id}\0{audio_identity(cut)}".encode()).hexdigest()[:32]


def view_key(key: str, augment_identity: str | None, view: int) -> str:
    """The storage key of ``view`` of the entry ``key``: view 0 (clean audio) is the entry itself."""
    if view == 0:
        return key
    if augment_identity is None:
        raise ValueError(f"view {view} needs the augmentation's identity")
    return hashlib.sha1(f"{key}\0{augment_identity}\0{view}".encode()).hexdigest()[:32]


def manifest_identity(path: str | Path) -> dict[str, Any]:
    """Absolute path, size and mtime of a manifest file (what ``manifests.json`` records)."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_keys(root: str | Path) -> dict[str, str]:
    """``{subdirectory: encoder cache_key}`` of every encoder cached under ``root``."""
    found = {}
    for meta in sorted(Path(root).glob(f"*/{META}")):
        found[meta.parent.name] = json.loads(meta.read_text())["cache_key"]
    return found


class EncoderCache:
    """Reads cached hidden states of one encoder identity.

    Args:
        root: the cache directory ``DIR`` (``data.encoder_cache``), or ``None`` when every cut
            carries its hidden states (a Shar export made with ``--with-encoder-cache``).
        cache_key: the model's ``encoder.cache_key()``.
        dim: the encoder's output width, checked against the cache.

    Raises:
        EncoderCacheError: nothing cached under ``root`` for this ``cache_key`` (the message lists
            what is cached), or a different width.
    """

    def __init__(self, root: str | Path | None, cache_key: str, dim: int | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.cache_key = cache_key
        self.dir: Path | None = None
        self._skipped: dict[str, str] | None = None
        if self.root is None:
            return
        self.dir = self.root / cache_dir_name(cache_key)
        if not (self.dir / META).is_file():
            cached = cached_keys(self.root)
            listing = "\n  ".join(cached.values()) or "(nothing)"
            raise EncoderCacheError(
                f"encoder cache {self.root} has no outputs of encoder {cache_key!r}; cached encoders:\n"
                f"  {listing}\nrun `speechllm cache CONFIG --out {self.root}` with this model's encoder"
            )
        meta = json.loads((self.dir / META).read_text())
        if meta.get("format") != CACHE_FORMAT:
            raise EncoderCacheError(f"{self.dir}: cache format {meta.get('format')}, expected {CACHE_FORMAT}")
        if dim is not None and meta["dim"] != dim:
            raise EncoderCacheError(f"{self.dir}: cached width {meta['dim']} != encoder width {dim}")
        self.meta = meta

    @classmethod
    def open_single(cls, root: str | Path) -> EncoderCache:
        """Open a cache that holds exactly one encoder identity (``root`` or its only subdirectory)."""
        root = Path(root)
        if (root / META).is_file():
            return cls(root.parent, json.loads((root / META).read_text())["cache_key"])
        cached = cached_keys(root)
        if len(cached) != 1:
            raise EncoderCacheError(
                f"{root} holds {len(cached)} encoder caches ({', '.join(cached) or 'none'}); "
                "name one subdirectory"
            )
        return cls(root, next(iter(cached.values())))

    def check_manifest(self, path: str | Path, augment_identity: str | None = None) -> int:
        """Raise unless ``path`` was cached as it is now (same size and modification time).

        Returns the number of views of ``path``'s cuts cached for ``augment_identity`` (1, the
        clean audio alone, when it is ``None``).

        Raises:
            EncoderCacheError: not cached, changed since, or no augmented views of that identity.
        """
        if self.dir is None or Path(path).is_dir():  # Shar directories carry their own features
            return 1
        records = _read_json(self.dir / MANIFESTS, {})
        now = manifest_identity(path)
        before = records.get(now["path"])
        if before is None:
            raise EncoderCacheError(
                f"manifest {path} is not in encoder cache {self.dir}; run `speechllm cache CONFIG "
                f"--manifest {path} --out {self.root}`"
            )
        if (before["size"], before["mtime_ns"]) != (now["size"], now["mtime_ns"]):
            raise EncoderCacheError(
                f"manifest {path} changed since it was cached in {self.dir}; run `speechllm cache` again"
            )
        if augment_identity is None:
            return 1
        views = int(before.get("views", {}).get(augment_identity, 1))
        if views < 2:
            cached = ", ".join(f"{k} ({n} views)" for k, n in before.get("views", {}).items()) or "none"
            raise EncoderCacheError(
                f"manifest {path} has no augmented views of this data.augment (identity "
                f"{augment_identity}) in encoder cache {self.dir} (cached: {cached}); run `speechllm cache "
                f"CONFIG --views N --out {self.root}` with the same data.augment and seed"
            )
        return views

    def view_options(self) -> dict[str, Any]:
        """``{augment identity: its options and seed}`` of the views cached here (``views.json``)."""
        return _read_json(self.dir / VIEWS, {}) if self.dir is not None else {}

    def array_path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / ARRAYS / key[:3] / f"{key}.npy"

    def load(self, cut: Cut, view: int = 0, augment_identity: str | None = None) -> np.ndarray | None:
        """(T, C) float16 hidden states of ``cut`` (of its augmented ``view`` of ``augment_identity``
        when ``view`` > 0); ``None`` if its audio was unusable when cached.

        Raises:
            EncoderCacheError: the cut was not cached (or its audio changed since), or its
                attached hidden states come from another encoder.
            UnreadableEntryError: its stored array is truncated or corrupt.
        """
        if cut.has_custom(ATTACHED_FIELD):
            origin = (cut.custom or {}).get(ATTACHED_KEY)
            if origin != self.cache_key:
                raise EncoderCacheError(
                    f"cut {cut.id} carries encoder outputs of {origin!r}, but the model's encoder is "
                    f"{self.cache_key!r}; re-export the Shar with a cache of this encoder"
                )
            return cut.load_custom(ATTACHED_FIELD)
        if self.dir is None:
            raise EncoderCacheError(
                f"cut {cut.id} has no attached encoder outputs and no data.encoder_cache is configured"
            )
        clean = entry_key(cut)
        key = view_key(clean, augment_identity, view)
        path = self.array_path(key)
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                detail = " ".join(str(err).split())[:120]
                raise UnreadableEntryError(
                    f"cut {cut.id}: encoder-cache entry {path} is unreadable ({detail}); "
                    "`speechllm cache` with the same config and manifest recomputes it"
                ) from None
        if clean in self.skipped_entries() or key in self.skipped_entries():
            return None
        raise EncoderCacheError(
            f"cut {cut.id}: no cached encoder output{f' (view {view})' if view else ''} in {self.dir} "
            "for its audio "
            f"({_source_paths(cut)}); the audio changed since caching or the cut was never cached: "
            f"re-run `speechllm cache`"
        )

    def skipped_entries(self) -> dict[str, str]:
        """``{entry key: reason}`` of cuts whose audio was unusable at caching time."""
        if self._skipped is None:
            self._skipped = {}
            if self.dir is not None and (self.dir / SKIPPED).is_file():
                for line in (self.dir / SKIPPED).read_text().splitlines():
                    key, _, reason = line.split("\t", 2)
                    self._skipped[key] = reason
        return self._skipped

    def skip_reason(self, cut: Cut, view: int = 0, augment_identity: str | None = None) -> str:
        skipped, clean = self.skipped_entries(), entry_key(cut)
        key = view_key(clean, augment_identity, view)
        return skipped.get(clean) or skipped.get(key) or "unusable audio when cached"


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def _source_paths(cut: Cut) -> str:
    recording = cut.recording
    return ", ".join(str(s.source)[:200] for s in recording.sources) if recording is not None else "none"
