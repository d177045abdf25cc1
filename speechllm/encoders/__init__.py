"""Frozen speech encoders: the ``SpeechEncoder`` contract (``base``), Whisper and SeamlessM4T.

The encoder classes load on first use (they import transformers); the registry imports their
modules itself when a config names ``whisper`` or ``seamless``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from speechllm.encoders.base import SpeechEncoder

if TYPE_CHECKING:
    from speechllm.encoders.seamless import SeamlessSpeechEncoder
    from speechllm.encoders.whisper import WhisperSpeechEncoder

_LAZY = {
    "SeamlessSpeechEncoder": "speechllm.encoders.seamless",
    "WhisperSpeechEncoder": "speechllm.encoders.whisper",
}

__all__ = ["SeamlessSpeechEncoder", "SpeechEncoder", "WhisperSpeechEncoder"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'speechllm.encoders' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
