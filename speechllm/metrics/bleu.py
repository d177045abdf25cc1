"""BLEU and chrF through sacrebleu, on detokenized text as sacrebleu expects (scores 0–100).

Corpus BLEU/chrF are the reported numbers; sentence BLEU (with sacrebleu's default effective
order, so short sentences do not score 0) is only for the significance tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("refs and hyps must be sequences of sentences, not a single string")
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("BLEU/chrF are undefined for an empty test set")


def corpus_bleu(refs: Sequence[str], hyps: Sequence[str], tokenize: str | None = None) -> float:
    """Corpus BLEU (0–100) of one reference per hypothesis.

    Args:
        tokenize: sacrebleu tokenizer name (``"13a"`` by default, ``"zh"``/``"ja-mecab"`` for CJK).
    """
    _check_pairs(refs, hyps)
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize=tokenize).score)


def corpus_chrf(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus chrF (0–100), sacrebleu's defaults (character 6-grams, β = 2, no word n-grams)."""
    _check_pairs(refs, hyps)
    return float(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score)


def sentence_bleus(refs: Sequence[str], hyps: Sequence[str], tokenize: str | None = None) -> list[float]:
    """Per-sentence BLEU (0–100), in input order."""
    _check_pairs(refs, hyps)
    kwargs = {} if tokenize is None else {"tokenize": tokenize}
    return [float(sacrebleu.sentence_bleu(h, [r], **kwargs).score) for r, h in zip(refs, hyps)]


def sentence_chrfs(refs: Sequence[str], hyps: Sequence[str]) -> list[float]:
    """Per-sentence chrF (0–100), in input order: the paired tests' counterpart of corpus chrF."""
    _check_pairs(refs, hyps)
    return [float(sacrebleu.sentence_chrf(h, [r]).score) for r, h in zip(refs, hyps)]
