"""Adapters between a speech encoder and an LLM; importing this package registers them all."""

from speechllm.adapters import base_adapter, cif, conv, ctc, wlq_former
from speechllm.adapters.base import Adapter, AdapterOutput, AdapterTargets, Compressed
from speechllm.adapters.modality import ModalityAdapter

__all__ = [
    "Adapter",
    "AdapterOutput",
    "AdapterTargets",
    "Compressed",
    "ModalityAdapter",
    "base_adapter",
    "cif",
    "conv",
    "ctc",
    "wlq_former",
]
