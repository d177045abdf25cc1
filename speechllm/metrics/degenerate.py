"""Degenerate outputs: empty ones, loops, copies of the prompt, and ones cut by the token limit.

A speech LLM that fails often fails in one of four recognisable ways; a WER alone hides which.
:func:`count_degenerate` counts them per test group (``metrics.json``: ``num_empty_<group>``,
``num_repeating_<group>``, ``num_prompt_copy_<group>``; ``num_capped_<group>`` is counted by the
decoder itself, :mod:`speechllm.search`) and ``speechllm report`` prints them. The tests are on
words after the paper's normalization (:func:`speechllm.metrics.wer.normalize_text`):

- **empty**: no word at all;
- **repeating**: some run of 1 to :data:`MAX_NGRAM` words occurs at least :data:`MIN_REPEATS`
  times back to back ("the cat the cat the cat the cat"): the decoding loop of a model that does
  not stop. Real speech almost never says the same phrase four times in a row;
- **prompt copy**: the output contains the instruction the model was given, or is a run of at
  least :data:`MIN_COPY_WORDS` of its words ("transcribe the audio"): a model that echoes its
  prompt instead of listening;
- **capped**: decoding stopped at its token limit, not at a stop token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from speechllm.metrics.wer import normalize_text

MAX_NGRAM = 10  # the longest phrase a loop is looked for in (words)
MIN_REPEATS = 4  # back-to-back copies of a phrase that make a loop
MIN_COPY_WORDS = 3  # an output this long or longer that is part of the prompt is a copy of it
KINDS = ("empty", "repeating", "prompt_copy", "capped")


def repeats_ngram(words: Sequence[str], max_ngram: int = MAX_NGRAM, min_repeats: int = MIN_REPEATS) -> bool:
    """Whether some phrase of 1 to ``max_ngram`` words occurs ``min_repeats`` times back to back."""
    for n in range(1, max_ngram + 1):
        for start in range(len(words) - n * min_repeats + 1):
            phrase = words[start : start + n]
            if all(words[start + k * n : start + (k + 1) * n] == phrase for k in range(1, min_repeats)):
                return True
    return False


def _contains(words: Sequence[str], part: Sequence[str]) -> bool:
    """Whether ``part`` occurs in ``words`` as consecutive words."""
    n = len(part)
    return n > 0 and any(list(words[i : i + n]) == list(part) for i in range(len(words) - n + 1))


def copies_prompt(words: Sequence[str], prompt_words: Sequence[str], min_words: int = MIN_COPY_WORDS) -> bool:
    """Whether the output holds the whole prompt, or is ``min_words`` or more of its words in a row."""
    if not words or not prompt_words:
        return False
    return _contains(words, prompt_words) or (len(words) >= min_words and _contains(prompt_words, words))


@dataclass(frozen=True)
class DegenerateCounts:
    """How many outputs of a group are degenerate, by kind (an output may count in several)."""

    empty: int
    repeating: int
    prompt_copy: int
    capped: int

    def as_metrics(self, group: str) -> dict[str, float]:
        """``metrics.json`` entries: ``num_empty_<group>`` etc. (group: ``asr_en``, ``st_en-de``)."""
        return {f"num_{kind}_{group}": float(getattr(self, kind)) for kind in KINDS}


def count_degenerate(
    hypotheses: Sequence[str],
    prompts: Sequence[str] | None = None,
    capped: Sequence[bool] | None = None,
) -> DegenerateCounts:
    """Count degenerate outputs.

    Args:
        hypotheses: the decoded texts.
        prompts: the instruction each output was decoded with (None: no prompt-copy test).
        capped: per output, whether it stopped at its token limit (None: none did).
    """
    if prompts is not None and len(prompts) != len(hypotheses):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(prompts)} prompts")
    words = [normalize_text(h).split() for h in hypotheses]
    prompt_words = [normalize_text(p).split() for p in prompts] if prompts is not None else None
    return DegenerateCounts(
        empty=sum(not w for w in words),
        repeating=sum(repeats_ngram(w) for w in words),
        prompt_copy=0
        if prompt_words is None
        else sum(copies_prompt(w, p) for w, p in zip(words, prompt_words)),
        capped=sum(bool(c) for c in capped) if capped is not None else 0,
    )
