"""Paired bootstrap and approximate randomization on per-sentence scores."""

from __future__ import annotations

import numpy as np
import pytest

from speechllm.metrics.significance import (
    is_significant,
    paired_approximate_randomization,
    paired_bootstrap,
)

TESTS = [paired_bootstrap, paired_approximate_randomization]


@pytest.fixture
def scores() -> np.ndarray:
    return np.random.default_rng(123).uniform(0.5, 0.9, size=300)


@pytest.mark.parametrize("test", TESTS)
def test_identical_systems_are_not_different(test, scores: np.ndarray) -> None:
    result = test(scores, scores.copy())
    assert result.p_value >= 0.9
    assert result.difference == 0.0
    assert not is_significant(result)


@pytest.mark.parametrize("test", TESTS)
def test_better_on_every_sentence_is_significant(test, scores: np.ndarray) -> None:
    margins = np.random.default_rng(7).uniform(0.001, 0.02, size=scores.size)
    higher = test(scores, scores + margins)  # COMET-like: B higher everywhere
    assert higher.p_value < 0.05 and higher.difference > 0
    lower = test(scores * 100, scores * 100 - margins * 100)  # WER-like: B lower everywhere
    assert lower.p_value < 0.05 and lower.difference < 0
    assert is_significant(higher) and is_significant(lower)


@pytest.mark.parametrize("test", TESTS)
def test_seeded_results_are_deterministic(test, scores: np.ndarray) -> None:
    noisy = scores + np.random.default_rng(1).normal(0, 0.05, size=scores.size) + 0.005
    first = test(scores, noisy, n_resamples=500, seed=3)
    second = test(scores, noisy, n_resamples=500, seed=3)
    assert (first.p_value, first.difference) == (second.p_value, second.difference)
    assert np.array_equal([first.ci_low, first.ci_high], [second.ci_low, second.ci_high], equal_nan=True)
    assert 0 < first.p_value <= 1


def test_randomization_p_value_on_a_countable_case() -> None:
    """Three sentences, B better by 1 on each: only the 2 of 8 sign patterns with all signs
    equal reach |mean| ≥ 1, so p → 1/4."""
    result = paired_approximate_randomization([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], n_resamples=4000)
    assert result.p_value == pytest.approx(0.25, abs=0.03)


def test_bootstrap_interval_and_means() -> None:
    a = np.linspace(0.0, 1.0, 200)
    b = a + 0.1 + np.random.default_rng(0).normal(0, 0.05, size=200)
    result = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert result.mean_a == pytest.approx(a.mean())
    assert result.mean_b == pytest.approx(b.mean())
    assert result.ci_low < result.difference < result.ci_high
    assert result.ci_low > 0  # the +0.1 shift is far outside the noise
    assert result.n_resamples == 1000


def test_default_is_1000_resamples(scores: np.ndarray) -> None:
    assert paired_bootstrap(scores, scores).n_resamples == 1000


@pytest.mark.parametrize("test", TESTS)
def test_bad_inputs_raise(test) -> None:
    with pytest.raises(ValueError, match="same sentences"):
        test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        test([], [])
    with pytest.raises(ValueError, match="NaN"):
        test([1.0, float("nan")], [1.0, 2.0])
