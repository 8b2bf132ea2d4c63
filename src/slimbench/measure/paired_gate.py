"""The speed gate decides on the interval, not the bare median, and takes more pairs only while it cannot.

A paired speed ratio's median comes with its distribution-free 95% interval (:mod:`.median_interval`). Against a
variant's limit (``max_speed_ratio``, ``max_ort_speed_ratio``):

- the whole interval at or under the limit: **pass**; the whole interval above it: **fail**;
- the interval straddles the limit (or does not exist yet: under 6 pairs): time ``step`` (8) more pairs and look
  again, up to the cap (``settings.speed_pairs_max``, 61);
- still straddling at the cap: the median decides, and the verdict is **close** ("close: median 0.49, interval
  [0.47, 0.52] straddles the limit"): a close pass passes and a close fail fails, but neither reads as a plain one;
- a decided verdict whose interval reaches within ``CLOSE_MARGIN`` (5%) of the limit is labelled close as well: a
  plain pass has its whole interval at least 5% under the limit, a plain fail at least 5% over it.

A clear case so stops at the first look (``settings.speed_pairs``, 9, where 21 pairs were always timed before); only
a candidate near its limit pays for more pairs. Simulated (lognormal pairs, spread sigma 0.05-0.15 in log, 2000 seeded
runs each; tests/test_paired_gate.py checks the same targets on a few runs): a true ratio 30% over the limit always
fails, one within 5% of it reads close in 96-100% of runs, and one at 0.6-0.7 of the limit passes plainly at 9 pairs
(99-100%). Looking up to eight times makes each look's 2.5% per side add up for a candidate right at the limit,
which is why that region is labelled close whichever way the median goes. The sampler is a plain function (pairs
wanted -> :class:`SpeedRatio`), so the decision runs without timing anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from slimbench.measure.median_interval import MedianInterval, min_pairs
from slimbench.measure.timing import SpeedRatio

CLOSE_MARGIN = 0.05
"""A decided verdict whose median is within this fraction of the limit is labelled close as well."""
STEP_PAIRS = 8
"""Pairs added per look while the interval straddles the limit."""

Look = Literal["pass", "fail", "straddles"]


@dataclass(frozen=True)
class PairSchedule:
    """How many pairs the gate takes: ``initial`` first, then ``step`` more per look up to ``cap`` in all (never
    below ``initial``). The suite's come from ``settings.speed_pairs`` (9: the smallest n whose 95% interval leaves
    out the extreme pair on each side, ranks 2 and 8) and ``settings.speed_pairs_max`` (61: ranks 23 and 39)."""

    initial: int
    cap: int
    step: int = STEP_PAIRS

    def __post_init__(self) -> None:
        if self.initial < 1 or self.step < 1 or self.cap < 1:
            raise ValueError(f"pair counts must be >= 1, got {self}")

    @property
    def most(self) -> int:
        return max(self.initial, self.cap)

    def more(self, taken: int) -> int:
        """Pairs to add after ``taken`` (0: the cap is reached)."""
        return max(0, min(self.step, self.most - taken))


def look(interval: MedianInterval, limit: float) -> Look:
    """One look at the interval against a maximum: pass, fail, or straddles (also: no interval yet)."""
    if interval.low is None or interval.high is None:
        return "straddles"
    if interval.high <= limit:
        return "pass"
    if interval.low > limit:
        return "fail"
    return "straddles"


def decision(interval: MedianInterval, limit: float) -> str:
    """The verdict on the last look: pass, fail, or close (straddling the limit, or reaching within
    ``CLOSE_MARGIN`` of it: a plain pass has its whole interval at least 5% under the limit, a plain fail 5% over)."""
    seen = look(interval, limit)
    if seen == "pass" and interval.high is not None and interval.high <= limit * (1 - CLOSE_MARGIN):
        return "pass"
    if seen == "fail" and interval.low is not None and interval.low > limit * (1 + CLOSE_MARGIN):
        return "fail"
    return "close"


def gated_ratio(sample: Callable[[int], SpeedRatio], limit: float | None, schedule: PairSchedule) -> SpeedRatio:
    """Pairs from ``sample(n)`` (``n`` more pairs, timed after the previous ones) until the interval clears
    ``limit`` or the cap is reached; the result carries its ``decision``, ``limit`` and ``looks``. With no limit,
    one look of ``schedule.initial`` pairs and no decision."""
    result = sample(schedule.initial)
    if limit is None:
        return result
    looks = [result.pairs]
    while look(result.interval, limit) == "straddles" and schedule.more(result.pairs):
        result = result.extended(sample(schedule.more(result.pairs)))
        looks.append(result.pairs)
    return dataclasses.replace(result, decision=decision(result.interval, limit), limit=limit, looks=tuple(looks))


def describe(ratio: SpeedRatio, fmt: str = "{:.3f}") -> str:
    """How the gate decided, for a check's message: ``"95% interval [0.290, 0.330] from 9 interleaved pairs, all
    under the limit"``, ``"close: median 0.490, interval [0.470, 0.520] straddles the limit after 61 pairs"``."""
    iv, n = ratio.interval, ratio.pairs
    shown = iv.text(fmt) if iv.defined else f"none (under {min_pairs()} pairs)"
    if ratio.decision == "close" and ratio.limit is not None:
        where = "straddles the limit" if look(iv, ratio.limit) == "straddles" else "within 5% of the limit"
        return f"close: median {fmt.format(ratio.median)}, interval {shown} {where}, {n} pairs"
    side = {"pass": ", all under the limit", "fail": ", all above the limit"}.get(str(ratio.decision), "")
    return f"95% interval {shown} from {n} interleaved pairs{side}"
