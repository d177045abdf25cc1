"""Builder functions: a component config (``{name, ...options}``) → the component, by registry name.

Here, and not in the encoders and LLMs, a ``path`` that names a preset (``whisper-tiny.en``,
``tiny-random-whisper``, see :mod:`speechllm.presets`) becomes its local directory, so the components
load from a hub name or a directory and never import the presets room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from speechllm.adapters.build_context import build_arguments
from speechllm.presets import resolve_model_path
from speechllm.registry import ADAPTERS, ENCODERS, LLMS


def _with_local_path(cfg: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(cfg)
    if options.get("path") is not None:
        options["path"] = str(resolve_model_path(options["path"]))
    return options


def build_encoder(cfg: Mapping[str, Any]) -> nn.Module:
    """A :class:`~speechllm.encoders.base.SpeechEncoder` from ``{name, path, ...}``."""
    encoder = ENCODERS.build(_with_local_path(cfg))
    if cfg.get("path") is not None and hasattr(encoder, "path"):
        # The cache key names the preset, not this machine's copy of it.
        encoder.path = str(cfg["path"])
    return encoder


def build_llm(cfg: Mapping[str, Any]) -> nn.Module:
    """An LLM (see :class:`~speechllm.llms.base.LLM`) from ``{name, path, ...}``."""
    return LLMS.build(_with_local_path(cfg))


def build_adapter(cfg: Mapping[str, Any], encoder: nn.Module, llm: nn.Module) -> nn.Module:
    """An :class:`~speechllm.adapters.interface.Adapter` between ``encoder`` and ``llm``, given what
    :mod:`speechllm.adapters.build_context` says the model supplies (``in_dim``, ``out_dim``, and
    ``vocab_size`` / ``blank_id`` / ``encoder_frame_rate_hz`` when it takes them)."""
    extra = build_arguments(ADAPTERS.get(cfg["name"]), cfg, encoder, llm)
    return ADAPTERS.build(cfg, **extra)
