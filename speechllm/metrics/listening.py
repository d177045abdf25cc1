"""Is the model listening? Scores of the listening check, and its verdict in plain words.

A speech LLM can learn to ignore its audio: the LLM then writes plausible text from the prompt
alone, and a WER of 100 % or more hides why. The listening check (``speechllm evaluate
--listening-check``, :mod:`speechllm.evaluation.listening`) decodes the same clips again with
each clip's audio replaced by another clip's (a seeded derangement: no clip keeps its own) and by
silence, and compares. This module turns those three decodings into numbers and a verdict:

- ``wer_true`` / ``wer_swapped`` / ``wer_silence``: corpus WER (paper normalizer) of each decoding
  against the **true** references;
- ``unchanged_swapped`` / ``unchanged_silence``: the share of clips whose output is the same
  (after normalization) as with their own audio.

Verdict: a model whose output stays the same for at least :data:`MAX_UNCHANGED` of the clips
does not listen; one whose output changes but whose WER with the right audio is not below its
WER with another clip's audio by at least :data:`MIN_WER_GAP` points and
:data:`MIN_WER_GAP_SHARE` of the latter does not yet use what is said (an untrained model). Both
are flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from speechllm.metrics.wer import corpus_wer, normalize_text, sentence_wers

DEFAULT_LISTENING_CLIPS = 200  # the check decodes these twice more: a bound on its time and memory
MAX_UNCHANGED = 0.5  # this share of outputs or more unchanged with another clip's audio: deaf
MIN_WER_GAP = 10.0  # WER points the right audio must beat another clip's audio by, at least...
# ...and this share of the swapped WER: an untrained model writing 250 % WER of unrelated text
# drifts by more than 10 points between two decodings without using what is said.
MIN_WER_GAP_SHARE = 0.25


def _wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    try:
        return corpus_wer(references, hypotheses)
    except ValueError:  # every reference empty: the per-sentence convention
        wers = sentence_wers(references, hypotheses)
        return sum(wers) / len(wers)


def unchanged_share(before: Sequence[str], after: Sequence[str]) -> float:
    """Share (0 to 1) of outputs that are the same, after the paper's normalization."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need two equal, non-empty lists of outputs, got {len(before)} and {len(after)}")
    same = sum(normalize_text(a) == normalize_text(b) for a, b in zip(before, after))
    return same / len(before)


def listening_scores(
    references: Sequence[str],
    true_audio: Sequence[str],
    swapped_audio: Sequence[str],
    silence: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The check's numbers (``run.json``'s ``listening_check_<task>``, without its settings).

    Args:
        references: the clips' true references.
        true_audio / swapped_audio / silence: the outputs with the clip's own audio, another clip's
            audio, and silence of the same length (None: not decoded, e.g. from an encoder cache).
    """
    record: dict[str, Any] = {
        "clips": len(references),
        "wer_true": _wer(references, true_audio),
        "wer_swapped": _wer(references, swapped_audio),
        "unchanged_swapped": unchanged_share(true_audio, swapped_audio),
        "wer_silence": None,
        "unchanged_silence": None,
    }
    if silence is not None:
        record["wer_silence"] = _wer(references, silence)
        record["unchanged_silence"] = unchanged_share(true_audio, silence)
    return record


def listening_verdict(record: dict[str, Any]) -> tuple[bool, str]:
    """(flagged, a sentence a newcomer understands) for a :func:`listening_scores` record."""
    unchanged = float(record["unchanged_swapped"])
    true, swapped = float(record["wer_true"]), float(record["wer_swapped"])
    clips = int(record["clips"])
    if unchanged >= MAX_UNCHANGED:
        return True, (
            f"NOT LISTENING: for {unchanged:.0%} of {clips} clips the output stayed exactly the same "
            "when the clip's audio was replaced by another clip's. The model writes from the prompt "
            "alone and ignores the audio (train longer, check the adapter's learning rate, or "
            "pre-align the adapter: docs/evaluation-checks.md)."
        )
    if swapped - true < max(MIN_WER_GAP, MIN_WER_GAP_SHARE * swapped):
        return True, (
            f"NOT FOLLOWING THE AUDIO: the output changes with the audio ({1 - unchanged:.0%} of "
            f"{clips} clips), but it is about as wrong with the right audio (WER {true:.1f} %) as "
            f"with another clip's (WER {swapped:.1f} %): the model does not yet use what is said."
        )
    return False, (
        f"listening: with another clip's audio WER rises from {true:.1f} % to {swapped:.1f} % and "
        f"{1 - unchanged:.0%} of {clips} outputs change."
    )
