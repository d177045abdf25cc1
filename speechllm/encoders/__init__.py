"""Frozen speech encoders; importing this package registers ``whisper`` and ``seamless``."""

from speechllm.encoders.base import SpeechEncoder
from speechllm.encoders.seamless import SeamlessSpeechEncoder
from speechllm.encoders.whisper import WhisperSpeechEncoder

__all__ = ["SeamlessSpeechEncoder", "SpeechEncoder", "WhisperSpeechEncoder"]
