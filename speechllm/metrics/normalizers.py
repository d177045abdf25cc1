"""The text normalizers WER is scored under: the paper's, and Whisper's English and basic ones.

- ``paper``: the paper's rule (lowercase, punctuation and symbols removed, digits kept as written;
  :func:`speechllm.metrics.wer.normalize_text`). Table 3's WER column always uses it.
- ``whisper_english``: Whisper's English normalizer, the one the Open ASR leaderboard and most
  speech-LLM toolkits report: numbers spelled out or written become digits ("four" and "4" agree),
  British spellings become American, contractions and fillers ("uh", "um") are normalized.
- ``whisper_basic``: Whisper's basic multilingual normalizer (lowercase, bracketed text and
  punctuation removed, symbols folded), for languages other than English.

The Whisper rules are not written again here: the code is ``transformers``'
``transformers.models.whisper.english_normalizer`` (a maintained copy of OpenAI's), and the
English normalizer's British→American spelling table is read from the ``openai-whisper`` package
(``whisper/normalizers/english.json``; install with ``pip install --no-deps openai-whisper``:
only its files are read, ``whisper`` itself is never imported, so its numba/triton dependencies
are not needed). On the hub the same table ships as ``normalizer.json`` in every
``openai/whisper-*`` repository; ``SPEECHLLM_WHISPER_SPELLING`` may name such a file instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

from speechllm.errors import UsageError

PAPER = "paper"
NORMALIZERS = (PAPER, "whisper_english", "whisper_basic")
SPELLING_ENV = "SPEECHLLM_WHISPER_SPELLING"


def check_normalizer(name: str, where: str = "normalizer") -> str:
    """``name`` if it is a known normalizer; a :class:`UsageError` naming the valid ones otherwise."""
    if name not in NORMALIZERS:
        raise UsageError(f"{where}: unknown normalizer {name!r}; valid normalizers: {', '.join(NORMALIZERS)}")
    return name


def whisper_spelling_file() -> Path:
    """The British→American spelling table of Whisper's English normalizer (a JSON object).

    Looked up in ``$SPEECHLLM_WHISPER_SPELLING``, then in the installed ``openai-whisper`` package
    (found without importing it).
    """
    explicit = os.environ.get(SPELLING_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"{SPELLING_ENV}={explicit}: no such file")
        return path
    spec = importlib.util.find_spec("whisper")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "normalizers" / "english.json"
        if path.is_file():
            return path
    raise UsageError(
        "the whisper_english normalizer needs Whisper's spelling table: install it with "
        "`pip install --no-deps openai-whisper` (or `pip install speechllm[whisper-normalizer]`), "
        f"or set {SPELLING_ENV} to an openai/whisper-* repository's normalizer.json"
    )


@cache
def get_normalizer(name: str) -> Callable[[str], str]:
    """The normalizer called ``name`` (see :data:`NORMALIZERS`): a function text → text."""
    check_normalizer(name)
    if name == PAPER:
        from speechllm.metrics.wer import normalize_text

        return normalize_text
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    if name == "whisper_basic":
        return BasicTextNormalizer()
    path = whisper_spelling_file()
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a readable JSON spelling table ({err})") from None
    if not isinstance(mapping, dict):
        raise UsageError(f"{path}: expected a JSON object (British spelling → American spelling)")
    return EnglishTextNormalizer(mapping)
