"""Builder functions: a component config (``{name, ...options}``) → the component, by registry name.

Here, and not in the encoders and LLMs, a ``path`` that names a preset (``whisper-tiny.en``,
``tiny-whisper``, see :mod:`speechllm.presets`) becomes its local directory, so the components
load from a hub name or a directory and never import the presets room.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

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
    """An :class:`~speechllm.adapters.base.Adapter` between ``encoder`` and ``llm``.

    Besides ``in_dim``/``out_dim``, an adapter whose constructor takes ``vocab_size``,
    ``blank_id`` or ``encoder_frame_rate_hz`` gets them from the LLM and encoder when the config
    is silent (read only then: a tokenizer without pad/eos has no default blank, which only
    matters to the CTC adapter).
    """
    context = {  # the names of registry.ADAPTER_BUILD_CONTEXT
        "vocab_size": lambda: llm.vocab_size,
        "blank_id": lambda: llm.pad_id,
        "encoder_frame_rate_hz": lambda: float(encoder.frame_rate_hz),
    }
    accepted = inspect.signature(ADAPTERS.get(cfg["name"]).__init__).parameters
    extra = {key: get() for key, get in context.items() if key in accepted and key not in cfg}
    return ADAPTERS.build(cfg, in_dim=encoder.dim, out_dim=llm.dim, **extra)
