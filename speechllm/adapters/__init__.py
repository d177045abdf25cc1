"""Adapters between a speech encoder and an LLM: the contract (``interface``), what the model gives
an adapter at build time (``build_context``), and the paper's five, one module each.

Loaded on first use: ``import speechllm.adapters`` imports no torch; the registry imports a
built-in's module when a config names it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speechllm.adapters.interface import Adapter, AdapterOutput, AdapterTargets, Compressed
    from speechllm.adapters.modality import ModalityAdapter

_LAZY = {
    "Adapter": "speechllm.adapters.interface",
    "AdapterOutput": "speechllm.adapters.interface",
    "AdapterTargets": "speechllm.adapters.interface",
    "Compressed": "speechllm.adapters.interface",
    "ModalityAdapter": "speechllm.adapters.modality",
}
__all__ = ["Adapter", "AdapterOutput", "AdapterTargets", "Compressed", "ModalityAdapter"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'speechllm.adapters' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
