"""Export a manifest to lhotse Shar shards (reading them: :mod:`speechllm.data.shar_reader`)."""

from __future__ import annotations

import logging
from pathlib import Path

from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut

from speechllm.data.encoder_cache import ATTACHED_FIELD, ATTACHED_KEY, EncoderCache
from speechllm.data.manifest_check import check_manifest_path

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("flac", "wav")


def export_shar(
    manifest: str | Path,
    output_dir: str | Path,
    shard_size: int = 1000,
    audio_format: str = "flac",
    encoder_cache: str | Path | None = None,
    num_jobs: int = 1,
    trust_manifest_sources: bool = False,
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
        trust_manifest_sources: read audio from recording sources that run a command or fetch a
            URL (refused otherwise: the manifest is checked before any audio is read).

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
    check_manifest_path(path, trust_manifest_sources)
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
