"""speechllm: connect speech foundation models to LLMs through trainable adapters.

The main entry points::

    from speechllm import SpeechLLM, load_config
    cfg = load_config("recipes/tiny/conf/asr.yaml")
    model = SpeechLLM.from_config(cfg.model)

Names load on first use (PEP 562), so ``import speechllm.registry`` or ``speechllm --help`` does
not import torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Adapter": "speechllm.adapters.interface",
    "AdapterOutput": "speechllm.adapters.interface",
    "AdapterTargets": "speechllm.adapters.interface",
    "ConfigError": "speechllm.config",
    "load_config": "speechllm.config",
    "SpeechLLM": "speechllm.model",
    "ADAPTERS": "speechllm.registry",
    "ENCODERS": "speechllm.registry",
    "LLMS": "speechllm.registry",
    "Registry": "speechllm.registry",
    "register_adapter": "speechllm.registry",
    "register_encoder": "speechllm.registry",
    "register_llm": "speechllm.registry",
}

__all__ = [
    "ADAPTERS",
    "ENCODERS",
    "LLMS",
    "Adapter",
    "AdapterOutput",
    "AdapterTargets",
    "ConfigError",
    "Registry",
    "SpeechLLM",
    "__version__",
    "load_config",
    "register_adapter",
    "register_encoder",
    "register_llm",
]

if TYPE_CHECKING:
    from speechllm.adapters.interface import Adapter, AdapterOutput, AdapterTargets
    from speechllm.config import ConfigError, load_config
    from speechllm.model import SpeechLLM
    from speechllm.registry import (
        ADAPTERS,
        ENCODERS,
        LLMS,
        Registry,
        register_adapter,
        register_encoder,
        register_llm,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'speechllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
