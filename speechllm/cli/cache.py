"""``speechllm cache``: run the frozen encoder once over manifests and store its outputs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from speechllm.cli._args import (
    add_config_arguments,
    add_deprecated_alias,
    add_device_argument,
    add_trust_manifest_argument,
    positive_float,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from speechllm.data.augment import AudioAugmenter


# -- command line ---------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    cache = subparsers.add_parser(
        "cache",
        help="run the frozen encoder once over manifests and store its outputs (encoder-output cache)",
        description="Run the frozen speech encoder once over manifests and store its outputs; training "
        "with data.encoder_cache=DIR then reads them instead of audio.",
    )
    add_config_arguments(cache, "YAML config (its model.encoder is the encoder cached)")
    cache.add_argument(
        "--manifest",
        action="append",  # one per flag: a KEY=VALUE after it stays an override
        default=None,
        help="CutSet manifest to cache (repeatable; default: every manifest in data.train/val/test)",
    )
    cache.add_argument("--out", default=None, help="cache directory (default: data.encoder_cache)")
    add_device_argument(cache, "the encoder")
    cache.add_argument(
        "--max-duration",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="seconds of audio per batch (default 120), as evaluate --max-duration and data.max_duration",
    )
    add_deprecated_alias(
        cache, "--batch-duration", "--max-duration", dest="max_duration", type=positive_float
    )
    cache.add_argument(
        "--views",
        type=int,
        default=1,
        metavar="N",
        help="views per training cut: the clean audio and N-1 seeded augmentations by the config's "
        "data.augment (default 1: clean only); the manifests of data.train get them, others are "
        "cached clean (evaluation data is never augmented)",
    )
    add_trust_manifest_argument(cache)
    cache.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from speechllm.builders import build_encoder
    from speechllm.config import ConfigError, load_config
    from speechllm.data.encoder_cache import cache_dir_name
    from speechllm.data.manifest_check import check_manifest_path
    from speechllm.precision import resolve_device
    from speechllm.prepare.encoder_cache_writer import build_encoder_cache
    from speechllm.progress import progress
    from speechllm.trainer_options import prepare_model_config, resolve_precision

    # As training builds it: precision bf16-true (or auto on native bf16) stores the frozen encoder
    # in bf16, and the cache key (which training checks) holds that dtype.
    cfg = load_config(args.config, args.overrides)
    precision, reason = resolve_precision(cfg)
    print(f"trainer.precision={cfg.trainer.precision} -> {precision} ({reason})")
    cfg = prepare_model_config(cfg)
    out = args.out or cfg.data.encoder_cache
    if not out:
        raise ConfigError("speechllm cache: give --out DIR or set data.encoder_cache")
    manifests = args.manifest or [m.path for split in ("train", "val", "test") for m in cfg.data[split]]
    manifests = [m for m in dict.fromkeys(manifests) if not Path(m).is_dir()]  # Shar dirs: see shar.py
    if not manifests:
        raise ConfigError("speechllm cache: no manifest given (--manifest) or configured in data.*")
    trust = args.trust_manifest_sources or bool(cfg.data.trust_manifest_sources)
    sizes = {path: check_manifest_path(path, trust) for path in manifests}  # before the encoder loads
    augmenter, training = _views_setup(cfg, args.views)
    device = resolve_device(args.device)
    encoder = build_encoder(OmegaConf.to_container(cfg.model.encoder, resolve=True))
    for path in manifests:
        views = args.views if Path(path).resolve() in training else 1
        unit = "cuts" if views == 1 else "entries"  # an entry: one view of one cut
        with progress(f"cache {Path(path).name}", sizes[path] * views, unit=unit) as advance:
            counts = build_encoder_cache(
                encoder,
                path,
                out,
                args.max_duration,
                device,
                on_progress=partial(_advance_entries, advance, views),
                trust_sources=trust,
                augmenter=augmenter,
                views=views,
            )
        detail = f" x {views} views (augmentation {augmenter.identity()})" if views > 1 and augmenter else ""
        print(
            f"{path}: {counts['cuts']} cuts{detail}, {counts['computed']} computed, {counts['reused']} "
            f"reused, {counts['skipped']} skipped -> {Path(out) / cache_dir_name(encoder.cache_key())}"
        )
    return 0


def _advance_entries(advance: Callable[[int], None], views: int, cuts: int) -> None:
    """Advance the progress bar by the entries of ``cuts`` cuts (``views`` each)."""
    advance(cuts * views)


def _views_setup(cfg: DictConfig, views: int) -> tuple[AudioAugmenter | None, set[Path]]:
    """The augmenter of ``--views`` and the training manifests (resolved paths) that get them.

    Raises:
        ConfigError: ``--views`` below 1, or above 1 without ``data.augment``.
    """
    from speechllm.config import ConfigError
    from speechllm.data.augment import AudioAugmenter

    if views < 1:
        raise ConfigError(f"speechllm cache: --views {views}: must be >= 1")
    if views == 1:
        return None, set()
    if cfg.data.augment is None:
        raise ConfigError("speechllm cache: --views N > 1 augments the audio: set data.augment in the config")
    training = {Path(m.path).resolve() for m in cfg.data.train}
    return AudioAugmenter(cfg.data.augment, seed=int(cfg.seed)), training
