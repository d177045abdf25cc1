"""The library's own errors: bad input or state, named by file, line or key.

Every such error derives from :class:`SpeechLLMError` as well as from the builtin type callers
already catch (``ValueError``, ``KeyError``, ...). The ``speechllm`` command prints one line,
``speechllm: error: <message>``, and exits with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations


class SpeechLLMError(Exception):
    """Base of the errors whose message alone tells the user what to fix."""


class AudioError(SpeechLLMError, ValueError):
    """An audio file that cannot be read or holds no usable samples; the message names the file."""


class CheckpointError(SpeechLLMError, RuntimeError):
    """A checkpoint or saved model that cannot be read (truncated, corrupt, wrong kind)."""


class RunDirError(SpeechLLMError, ValueError):
    """A run directory file (``run.json``, hypotheses, metrics, compression) that is malformed."""


class UsageError(SpeechLLMError, ValueError):
    """Arguments that cannot work together (an unknown task, nothing to evaluate, ...)."""


class DiskFullError(SpeechLLMError, OSError):
    """No space left on the device being written; the message names the directory."""


class ConfigError(SpeechLLMError, ValueError):
    """A config problem, with the offending key and what is valid."""
