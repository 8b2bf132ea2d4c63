"""A distribution-free confidence interval for a median, from order statistics (binomial ranks).

For n independent draws of a continuous quantity with median m, the number B of draws below m is binomial(n, 1/2),
so the k-th smallest and the k-th largest draws bracket m with probability

    coverage(n, k) = P(k <= B <= n - k) = 1 - 2 * P(B <= k - 1).

:func:`median_ranks` takes the largest k whose coverage is still >= the confidence asked (95%), i.e. the narrowest
such interval; its coverage is exact, not asymptotic, and assumes nothing about the shape of the distribution (the
per-pair speed ratios of a busy machine are skewed, with a long tail of disturbed pairs: no normal approximation
holds there). Ties only widen it. The interval exists from n = 6 on at 95% (k = 1: the smallest and largest of six
draws cover with 1 - 2/64 = 0.969); below that it is undefined and said so, never a made-up range. It is the sign
test's interval (e.g. Conover, *Practical Nonparametric Statistics*, confidence intervals for a quantile).

The binomial CDF is summed with ``math.comb`` in exact integers: scipy is not a dependency and n stays small
(the suite caps the speed-ratio pairs at a few dozen).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
"""The confidence every paired speed ratio's interval is stated at."""


def binomial_cdf_half(n: int, k: int) -> float:
    """P(B <= k) for B ~ binomial(n, 1/2), exact (integer sums, one division)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def coverage(n: int, k: int) -> float:
    """Probability that the k-th smallest and k-th largest of n draws bracket the median (1-based k, 2k <= n)."""
    if not 1 <= k <= n // 2 + n % 2:
        raise ValueError(f"rank k must be between 1 and {n // 2 + n % 2} for n = {n}, got {k}")
    return 1.0 - 2.0 * binomial_cdf_half(n, k - 1)


def median_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks (k, n + 1 - k) of the narrowest order-statistic interval with coverage >= ``confidence``;
    None when even the smallest and largest draw cover less (n < 6 at 95%)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    best = None
    for k in range(1, n // 2 + 1):
        if coverage(n, k) < confidence:
            break
        best = k
    return None if best is None else (best, n + 1 - best)


def min_pairs(confidence: float = CONFIDENCE) -> int:
    """The smallest n for which an interval exists at ``confidence`` (6 at 95%)."""
    n = 1
    while median_ranks(n, confidence) is None:
        n += 1
    return n


@dataclass(frozen=True)
class MedianInterval:
    """The median of n samples and its order-statistic interval (``low``/``high`` None: too few samples)."""

    median: float
    low: float | None
    high: float | None
    n: int
    ranks: tuple[int, int] | None
    coverage: float | None  # the exact coverage of those ranks (>= the confidence asked)
    confidence: float = CONFIDENCE

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, fmt: str = "{:.2f}") -> str:
        """``"[0.29, 0.33]"``, or why there is none (``"no 95% interval from 4 pairs (6 needed)"``)."""
        if self.low is None or self.high is None:
            return f"no {self.confidence:.0%} interval from {self.n} pairs ({min_pairs(self.confidence)} needed)"
        return f"[{fmt.format(self.low)}, {fmt.format(self.high)}]"


def median_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> MedianInterval:
    """The median of ``samples`` and its distribution-free ``confidence`` interval (see the module doc)."""
    values = sorted(float(v) for v in samples)
    n = len(values)
    median = statistics.median(values) if values else float("nan")
    ranks = median_ranks(n, confidence) if n else None
    if ranks is None:
        return MedianInterval(median, None, None, n, None, None, confidence)
    k, j = ranks
    return MedianInterval(median, values[k - 1], values[j - 1], n, ranks, coverage(n, k), confidence)
