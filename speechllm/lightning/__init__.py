"""Lightning integration: the training module, data module glue and callbacks."""

from speechllm.lightning.module import SpeechLLMModule

__all__ = ["SpeechLLMModule"]
