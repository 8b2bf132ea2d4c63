"""The median's distribution-free 95% interval: binomial ranks, exact coverage, and no interval below 6 samples."""

from __future__ import annotations

import math
import random

import pytest

from slimbench.measure.median_interval import (
    binomial_cdf_half,
    coverage,
    median_interval,
    median_ranks,
    min_pairs,
)

# the sign-test ranks as textbooks tabulate them for a 95% interval of a median: n -> (k, n + 1 - k)
KNOWN_RANKS = {
    6: (1, 6),
    8: (1, 8),
    9: (2, 8),
    10: (2, 9),
    12: (3, 10),
    13: (3, 11),
    17: (5, 13),
    20: (6, 15),
    21: (6, 16),
}


def test_binomial_cdf_is_exact():
    assert binomial_cdf_half(6, 0) == 1 / 64 and binomial_cdf_half(9, 1) == 10 / 512
    assert binomial_cdf_half(5, -1) == 0.0 and binomial_cdf_half(5, 5) == 1.0 and binomial_cdf_half(5, 9) == 1.0
    for n in (1, 7, 20):  # against the sum of the whole pmf
        assert sum(math.comb(n, i) for i in range(n + 1)) / 2**n == pytest.approx(binomial_cdf_half(n, n - 1) + 0.5**n)


@pytest.mark.parametrize(("n", "ranks"), sorted(KNOWN_RANKS.items()))
def test_ranks_match_the_published_tables(n, ranks):
    assert median_ranks(n) == ranks


def test_ranks_are_the_narrowest_with_coverage_at_least_95_percent():
    for n in range(6, 121):
        k, j = median_ranks(n)
        assert j == n + 1 - k and coverage(n, k) >= 0.95, n
        if k + 1 <= n // 2:  # one rank further in would cover less than asked
            assert coverage(n, k + 1) < 0.95, n
    assert median_ranks(61) == (23, 39) and coverage(61, 23) == pytest.approx(0.9604, abs=1e-4)


def test_too_few_samples_have_no_interval_and_say_so():
    assert min_pairs() == 6 and min_pairs(0.99) == 8
    for n in range(6):
        assert median_ranks(n) is None
    iv = median_interval([0.3, 0.31, 0.29, 0.5, 0.2])
    assert not iv.defined and (iv.low, iv.high, iv.ranks, iv.coverage) == (None, None, None, None)
    assert iv.median == 0.3 and iv.n == 5
    assert iv.text() == "no 95% interval from 5 pairs (6 needed)"
    empty = median_interval([])
    assert math.isnan(empty.median) and not empty.defined
    with pytest.raises(ValueError):
        median_ranks(10, confidence=1.0)
    with pytest.raises(ValueError):
        coverage(9, 6)


def test_interval_on_fixed_samples_takes_the_order_statistics():
    samples = [0.35, 0.30, 0.29, 0.31, 0.90, 0.32, 0.28, 0.33, 0.30]  # one disturbed pair (0.90)
    iv = median_interval(samples)
    assert iv.ranks == (2, 8) and iv.n == 9 and iv.coverage == pytest.approx(1 - 20 / 512)
    assert (iv.low, iv.median, iv.high) == (0.29, 0.31, 0.35), "2nd and 8th of the sorted pairs: 0.90 left out"
    assert iv.text() == "[0.29, 0.35]" and iv.text("{:.3f}") == "[0.290, 0.350]"
    six = median_interval([3, 1, 2, 6, 5, 4])
    assert (six.low, six.median, six.high) == (1, 3.5, 6), "at n = 6: the smallest and largest"


def test_coverage_holds_on_a_skewed_distribution():
    """Seeded draws from a lognormal (skewed, like disturbed pairs): the interval covers the true median in at least
    the stated share of repetitions, whatever the shape (within sampling error of 4000 repetitions)."""
    rng = random.Random(0)
    true_median = 0.3
    for n in (9, 21, 61):
        hits = 0
        for _ in range(4000):
            iv = median_interval([true_median * math.exp(rng.gauss(0, 0.4)) for _ in range(n)])
            hits += iv.low <= true_median <= iv.high
        assert hits / 4000 >= 0.94, (n, hits)
        assert hits / 4000 == pytest.approx(iv.coverage, abs=0.015), (n, hits)
