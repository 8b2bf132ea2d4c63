"""The speed gate's decision on the interval, with simulated pairs (an injected sampler: nothing is timed here).

Pass when the whole interval is under the limit, fail when it is all above, more pairs while it straddles, close at
the cap (the median decides) or when the interval reaches within 5% of the limit. And the issue's target, on
deterministic (seeded) distributions: a true ratio 30% above its limit fails three runs of three; one within 5% of
the limit reads close.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Iterator

import pytest

from slimbench.measure.median_interval import median_interval
from slimbench.measure.paired_gate import PairSchedule, decision, describe, gated_ratio, look
from slimbench.measure.timing import SpeedRatio

SCHEDULE = PairSchedule(9, 61)  # the suite's defaults: settings.speed_pairs, settings.speed_pairs_max


class Sampler:
    """Hands out ratios from an endless stream, recording how many pairs each call asked for."""

    def __init__(self, stream: Iterator[float]) -> None:
        self.stream = stream
        self.asked: list[int] = []

    def __call__(self, n: int) -> SpeedRatio:
        self.asked.append(n)
        return SpeedRatio.from_ratios([next(self.stream) for _ in range(n)])


def cycle(values: list[float]) -> Iterator[float]:
    while True:
        yield from values


def lognormal(true_ratio: float, sigma: float, seed: int) -> Iterator[float]:
    """Per-pair ratios scattered around ``true_ratio`` (their median) as on a loaded CPU; seeded, so deterministic."""
    rng = random.Random(seed)
    while True:
        yield true_ratio * math.exp(rng.gauss(0.0, sigma))


def test_a_clear_pass_is_decided_at_the_first_look():
    sample = Sampler(cycle([0.29, 0.30, 0.31, 0.28, 0.32, 0.30, 0.29, 0.31, 0.30]))
    r = gated_ratio(sample, 0.5, SCHEDULE)
    assert sample.asked == [9] and r.pairs == 9 and r.looks == (9,)
    assert (r.decision, r.limit, r.median) == ("pass", 0.5, 0.30)
    assert (r.interval.low, r.interval.high) == (0.29, 0.31)
    assert describe(r) == "95% interval [0.290, 0.310] from 9 interleaved pairs, all under the limit"
    assert r.as_dict()["decision"] == "pass" and r.as_dict()["ci_high"] == 0.31 and r.as_dict()["pairs"] == 9


def test_a_clear_fail_is_decided_at_the_first_look():
    sample = Sampler(cycle([1.0, 0.98, 1.02, 0.99, 1.01]))
    r = gated_ratio(sample, 0.5, SCHEDULE)
    assert sample.asked == [9] and r.decision == "fail" and r.median > 0.5
    assert describe(r).endswith("all above the limit")


def test_a_straddling_interval_asks_for_more_pairs_until_it_clears():
    # the first 9 pairs straddle 0.5 (one pair each side of it at ranks 2 and 8), then the machine settles
    first = [0.40, 0.55, 0.42, 0.41, 0.52, 0.43, 0.40, 0.44, 0.42]
    stream = iter(first + [0.41, 0.42, 0.40, 0.43] * 20)
    sample = Sampler(stream)
    assert look(median_interval(first), 0.5) == "straddles"
    r = gated_ratio(sample, 0.5, SCHEDULE)
    assert sample.asked == [9, 8] and r.looks == (9, 17) and r.pairs == 17
    assert r.decision == "pass" and r.interval.high < 0.475


def test_still_straddling_at_the_cap_is_close_and_the_median_decides():
    sample = Sampler(cycle([0.46, 0.54, 0.48, 0.52, 0.49, 0.51, 0.495, 0.505]))  # centred on the limit itself
    r = gated_ratio(sample, 0.5, SCHEDULE)
    assert sample.asked == [9, 8, 8, 8, 8, 8, 8, 4], "8 more per look, the last batch cut to the cap"
    assert r.looks == (9, 17, 25, 33, 41, 49, 57, 61) and r.pairs == 61
    assert r.decision == "close" and look(r.interval, 0.5) == "straddles"
    assert describe(r).startswith(f"close: median {r.median:.3f}, interval [") and "straddles the limit" in describe(r)
    above = gated_ratio(Sampler(cycle([0.47, 0.53, 0.50, 0.51, 0.52])), 0.5, SCHEDULE)
    assert above.decision == "close" and above.median > 0.5, "a close fail: the median is over the limit"


def test_an_interval_within_5_percent_of_the_limit_is_close_though_decided():
    r = gated_ratio(Sampler(cycle([0.47, 0.48, 0.485, 0.476, 0.482])), 0.5, SCHEDULE)
    assert r.pairs == 9 and look(r.interval, 0.5) == "pass", "decided at the first look: all under 0.5"
    assert r.decision == "close" and "within 5% of the limit" in describe(r)
    assert decision(median_interval([0.53, 0.54, 0.52, 0.53, 0.54, 0.53]), 0.5) == "close", "a fail within 5%"
    assert decision(median_interval([0.56, 0.57, 0.56, 0.58, 0.57, 0.56]), 0.5) == "fail"


def test_too_few_pairs_for_an_interval_count_as_straddling():
    r = gated_ratio(Sampler(cycle([0.3])), 0.5, PairSchedule(3, 61))
    assert r.looks == (3, 11) and r.decision == "pass", "3 pairs have no interval: 8 more before deciding"
    assert look(median_interval([0.3] * 5), 0.5) == "straddles"


def test_no_limit_is_one_look_and_no_decision():
    sample = Sampler(cycle([0.3]))
    r = gated_ratio(sample, None, SCHEDULE)
    assert sample.asked == [9] and r.decision is None and "decision" not in r.as_dict()
    assert describe(r) == "95% interval [0.300, 0.300] from 9 interleaved pairs"


def test_schedule_cap_never_below_the_first_look():
    assert PairSchedule(100, 61).most == 100 and PairSchedule(100, 61).more(100) == 0
    assert PairSchedule(21, 61).more(21) == 8 and PairSchedule(21, 61).more(57) == 4
    with pytest.raises(ValueError):
        PairSchedule(0, 61)
    old = Sampler(cycle([0.3]))  # a config that still says speed_pairs = 21: 21 pairs first, decided there
    assert gated_ratio(old, 0.5, PairSchedule(21, 61)).pairs == 21 and old.asked == [21]


def runs(true_ratio: float, limit: float, sigma: float, seeds: range) -> list[SpeedRatio]:
    return [gated_ratio(Sampler(lognormal(true_ratio, sigma, seed)), limit, SCHEDULE) for seed in seeds]


def test_target_30_percent_above_the_limit_fails_three_runs_of_three():
    """The issue's target on simulated pairs: spread sigma 0.15 in log (single b1 pairs of 0.49-0.74 around 0.58
    measured here read about 0.10), three runs, three fails, each decided on its interval."""
    for r in runs(0.5 * 1.3, 0.5, 0.15, range(3)):
        assert r.median > 0.5 and r.decision in ("fail", "close"), r.as_dict()
    assert [r.decision for r in runs(0.5 * 1.3, 0.5, 0.10, range(3))] == ["fail"] * 3


@pytest.mark.parametrize("offset", [-0.04, -0.02, 0.0, 0.02, 0.04])
def test_target_within_5_percent_of_the_limit_reads_close(offset):
    results = runs(0.5 * (1 + offset), 0.5, 0.10, range(3))
    assert [r.decision for r in results] == ["close"] * 3, [r.text() for r in results]


def test_clear_cases_stop_early_and_do_not_flap():
    """True ratios at 0.6-0.8 of the limit (the bundled pruned variant reads 0.27-0.47 against 0.50): 100 seeded
    runs each pass every time, on a median of 9 pairs (21 were always timed before)."""
    for rel in (0.6, 0.7, 0.8):
        results = runs(0.5 * rel, 0.5, 0.10, range(100))
        assert all(r.median <= 0.5 and r.decision in ("pass", "close") for r in results), rel
        assert statistics.median(r.pairs for r in results) == 9, rel
        if rel <= 0.7:
            assert all(r.decision == "pass" for r in results), rel


def test_sampler_can_be_any_function_returning_ratios():
    calls: list[int] = []

    def sample(n: int) -> SpeedRatio:
        calls.append(n)
        return SpeedRatio.from_ratios([0.9] * n, [1.0] * n, [0.9] * n)

    fn: Callable[[int], SpeedRatio] = sample
    r = gated_ratio(fn, 0.5, PairSchedule(6, 61))
    assert calls == [6] and r.decision == "fail" and r.as_dict()["reference_median_s"] == 1.0
