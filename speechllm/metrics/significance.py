"""Paired significance tests between two systems' per-sentence scores on the same test set.

Both tests are **two-sided on the difference of means** ``mean(b) - mean(a)``, so they work the
same for lower-is-better (WER) and higher-is-better (COMET, BLEU) scores; the sign of
``difference`` says which system is ahead. A p-value below 0.05 is what the paper calls
significant; :func:`is_significant` applies that threshold.

- :func:`paired_bootstrap` (Koehn, 2004; the null is simulated by centring, after
  Berg-Kirkpatrick et al., 2012): resample sentences with replacement; p is the fraction of
  resampled differences at least as far from the observed difference as the observed one is
  from zero. It also gives a percentile confidence interval of the difference.
- :func:`paired_approximate_randomization` (Riezler and Maxwell, 2005): swap the two systems'
  scores of each sentence with probability 1/2; p is the fraction of shuffled differences at
  least as large (in absolute value) as the observed one.

Both count the observed statistic as one of the samples, ``p = (1 + hits) / (1 + n)``, so p is
never exactly 0 and identical systems give exactly 1. Randomness comes from one seeded
``numpy.random.Generator``: the same inputs and seed give the same p-value. Work is done in
chunks of resamples so memory stays ``O(chunk × N)`` for large test sets.

Corpus-level metrics that are not sentence means (corpus BLEU, corpus WER) are approximated by
the mean of their sentence-level counterparts here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_ALPHA = 0.05
_CHUNK = 256


@dataclass(frozen=True)
class SignificanceResult:
    """Outcome of a paired test of system B against system A.

    Attributes:
        p_value: two-sided p-value of ``mean_b - mean_a`` being 0.
        mean_a, mean_b: the systems' mean per-sentence scores.
        difference: ``mean_b - mean_a``.
        ci_low, ci_high: 95% percentile interval of the difference (bootstrap only; NaN otherwise).
        n_resamples: resamples or shuffles drawn.
    """

    p_value: float
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    n_resamples: int


def _paired_arrays(scores_a: Sequence[float], scores_b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"per-sentence scores must be 1-D, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"paired tests need the same sentences: got {a.size} and {b.size} scores")
    if a.size == 0:
        raise ValueError("paired tests need at least one sentence")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-sentence scores contain NaN or infinity")
    return a, b


def _chunks(n_total: int):
    for start in range(0, n_total, _CHUNK):
        yield min(_CHUNK, n_total - start)


def paired_bootstrap(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SignificanceResult:
    """Paired bootstrap resampling test of ``mean(b) - mean(a)``.

    Args:
        scores_a, scores_b: per-sentence scores of the two systems, shape (N,), same sentence order.
        n_resamples: bootstrap resamples (the paper's usual 1000).
        seed: seed of the random generator.
    """
    a, b = _paired_arrays(scores_a, scores_b)
    diff = b - a  # (N,)
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    resampled = np.empty(n_resamples, dtype=np.float64)
    done = 0
    for size in _chunks(n_resamples):
        idx = rng.integers(0, diff.size, size=(size, diff.size))  # (chunk, N)
        resampled[done : done + size] = diff[idx].mean(axis=1)
        done += size
    # Centre the bootstrap distribution on 0 to simulate the null; tolerance absorbs float noise.
    tolerance = 1e-12 * max(1.0, abs(observed))
    hits = int(np.count_nonzero(np.abs(resampled - observed) >= abs(observed) - tolerance))
    ci_low, ci_high = np.percentile(resampled, [2.5, 97.5])
    return SignificanceResult(
        p_value=(1 + hits) / (1 + n_resamples),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=observed,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        n_resamples=n_resamples,
    )


def paired_approximate_randomization(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> SignificanceResult:
    """Paired approximate randomization test of ``mean(b) - mean(a)`` (sign flips per sentence)."""
    a, b = _paired_arrays(scores_a, scores_b)
    diff = b - a  # (N,)
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    tolerance = 1e-12 * max(1.0, abs(observed))
    hits = 0
    for size in _chunks(n_resamples):
        # Swapping a sentence's two scores flips the sign of its difference.
        signs = rng.integers(0, 2, size=(size, diff.size)) * 2 - 1  # (chunk, N) in {-1, +1}
        shuffled = (signs * diff).mean(axis=1)
        hits += int(np.count_nonzero(np.abs(shuffled) >= abs(observed) - tolerance))
    return SignificanceResult(
        p_value=(1 + hits) / (1 + n_resamples),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=observed,
        ci_low=float("nan"),
        ci_high=float("nan"),
        n_resamples=n_resamples,
    )


def is_significant(result: SignificanceResult, alpha: float = DEFAULT_ALPHA) -> bool:
    """Whether the difference is significant at level ``alpha`` (the paper: p < 0.05)."""
    return result.p_value < alpha
