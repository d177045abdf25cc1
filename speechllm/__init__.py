"""speechllm: connect speech foundation models to LLMs through trainable adapters.

The main entry points::

    from speechllm import SpeechLLM, load_config
    cfg = load_config("recipes/tiny/conf/asr.yaml")
    model = SpeechLLM.from_config(cfg.model)
"""

from speechllm.adapters.base import Adapter, AdapterOutput, AdapterTargets
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

__version__ = "0.1.0"

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
    "load_config",
    "register_adapter",
    "register_encoder",
    "register_llm",
    "__version__",
]
