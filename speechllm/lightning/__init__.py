"""Lightning integration: the training module and callbacks."""

from speechllm.lightning.callbacks import CompressionRatioMonitor, ExportTrainable, ThroughputMonitor
from speechllm.lightning.metric_callbacks import ASRMetrics, STMetrics
from speechllm.lightning.module import SpeechLLMModule

__all__ = [
    "ASRMetrics",
    "CompressionRatioMonitor",
    "ExportTrainable",
    "STMetrics",
    "SpeechLLMModule",
    "ThroughputMonitor",
]
