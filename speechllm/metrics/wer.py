"""Word error rate with the paper's normalization (lowercase, punctuation removed), in percent.

The paper scores ASR "after lowercasing and removing punctuation". :func:`normalize_text` does
that for any script: it works on Unicode categories, so German, Spanish, French and Italian
letters with accents (``ä``, ``ñ``, ``é``, ``ì``) stay letters, while ``¿``, ``«``, ``»``, ``–``
and the like go.

Two WER variants are computed, both in **percent** (the unit of the paper's Table 3):

- :func:`corpus_wer`: total edits over total reference words (the usual, jiwer-style WER);
- :func:`mean_sentence_wer`: the mean of per-sentence WERs (:func:`sentence_wers`); the
  per-sentence values are also what the significance tests resample.

Empty references (after normalization): a sentence whose reference has no words scores 0 if the
hypothesis is empty too and 100 otherwise (its hypothesis words are all insertions, capped at
one full error so that one stray sentence cannot dominate the mean). In :func:`corpus_wer` its
hypothesis words count as insertions and it adds nothing to the denominator; a test set whose
references are all empty has no defined WER and raises ``ValueError``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer

# Every apostrophe-like character maps to the ASCII one so "l’homme" and "l'homme" agree.
_APOSTROPHES = frozenset("'’‘ʼ`´")


def normalize_text(text: str) -> str:
    """Lowercase, drop punctuation and symbols, collapse whitespace.

    Rules, in order:

    1. NFKC normalization, so composed and decomposed accents compare equal (``e`` + U+0301 is
       ``é``) and compatibility forms fold (full-width letters, ligatures like ``ﬁ``).
    2. ``str.lower`` (not ``casefold``: ``ß`` stays ``ß`` rather than becoming ``ss``, which would
       turn a German spelling difference into a match).
    3. Characters of Unicode category P* (punctuation) and S* (symbols: ``$ € % + ♪``) become
       spaces, so ``state-of-the-art`` gives four words and ``end.Start`` two. Exception: an
       apostrophe between two letters is kept (as ``'``) because it is part of the word in
       ``don't``, ``l'homme``, ``dell'acqua``, ``geht's``; elsewhere (quotes, ``'80s``) it goes.
    4. Runs of whitespace become one space; leading and trailing spaces are removed.

    Digits are kept as written (no number normalization), as in the paper.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    chars: list[str] = []
    for i, char in enumerate(text):
        if char in _APOSTROPHES:
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            chars.append("'" if inside_word else " ")
        elif unicodedata.category(char)[0] in "PS":
            chars.append(" ")
        else:
            chars.append(char)
    return " ".join("".join(chars).split())


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of one sentence (or summed over a corpus) against its reference."""

    substitutions: int
    deletions: int
    insertions: int
    ref_words: int

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("refs and hyps must be sequences of sentences, not a single string")
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses")


# True: the paper's normalize_text; False: none; a function: that normalizer (speechllm.metrics.normalizers).
Normalize = bool | Callable[[str], str]


def sentence_errors(
    refs: Sequence[str], hyps: Sequence[str], normalize: Normalize = True
) -> list[WordErrors]:
    """Per-sentence edit counts after (optional) normalization, in input order."""
    _check_pairs(refs, hyps)
    if normalize:
        rule = normalize_text if normalize is True else normalize
        refs = [rule(r) for r in refs]
        hyps = [rule(h) for h in hyps]
    errors: list[WordErrors | None] = [None] * len(refs)
    scored = [i for i, ref in enumerate(refs) if ref.split()]
    for i, ref in enumerate(refs):
        if not ref.split():
            errors[i] = WordErrors(0, 0, len(hyps[i].split()), 0)
    if scored:
        # One jiwer call over all non-empty pairs; its alignments give per-sentence counts.
        output = jiwer.process_words([refs[i] for i in scored], [hyps[i] for i in scored])
        for i, chunks in zip(scored, output.alignments):
            counts = {"substitute": 0, "delete": 0, "insert": 0}
            for chunk in chunks:
                if chunk.type == "insert":
                    counts["insert"] += chunk.hyp_end_idx - chunk.hyp_start_idx
                elif chunk.type in counts:
                    counts[chunk.type] += chunk.ref_end_idx - chunk.ref_start_idx
            errors[i] = WordErrors(
                counts["substitute"], counts["delete"], counts["insert"], len(refs[i].split())
            )
    return [e for e in errors if e is not None]


def corpus_wer(refs: Sequence[str], hyps: Sequence[str], normalize: Normalize = True) -> float:
    """Corpus WER in percent: 100 × (S + D + I) / reference words, summed over all sentences."""
    errors = sentence_errors(refs, hyps, normalize)
    ref_words = sum(e.ref_words for e in errors)
    if ref_words == 0:
        raise ValueError("WER is undefined: every reference is empty after normalization")
    return 100.0 * sum(e.edits for e in errors) / ref_words


def sentence_wers(refs: Sequence[str], hyps: Sequence[str], normalize: Normalize = True) -> list[float]:
    """Per-sentence WER in percent (empty reference: 0 if the hypothesis is empty, else 100)."""
    wers = []
    for e in sentence_errors(refs, hyps, normalize):
        if e.ref_words == 0:
            wers.append(100.0 if e.insertions else 0.0)
        else:
            wers.append(100.0 * e.edits / e.ref_words)
    return wers


def mean_sentence_wer(refs: Sequence[str], hyps: Sequence[str], normalize: Normalize = True) -> float:
    """The paper's mean per-sentence WER in percent."""
    wers = sentence_wers(refs, hyps, normalize)
    if not wers:
        raise ValueError("WER is undefined for an empty test set")
    return sum(wers) / len(wers)
