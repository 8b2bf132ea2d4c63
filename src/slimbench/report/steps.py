"""Step detection in a figure's history: did a gated figure (a paired speed ratio, mAP, a size) shift at some run
and stay shifted, or is it run-to-run noise and the odd outlier?

Pure arithmetic on a list of values, oldest first (:mod:`slimbench.report.history` feeds it the stored runs). The
rule uses medians only, so one outlier moves nothing:

1. **Spread.** The run-to-run spread is the median absolute difference between successive runs, divided by sqrt(2)
   (for Gaussian noise that is the median absolute deviation of one run). A step is one large difference and an
   outlier two: neither moves the median. Why not the MAD about each segment's own median: fitted to the chosen split,
   it is biased low in short segments (simulated: 3% of single outliers read as steps, against 0.6% with this one).
2. **Where.** Each split ``s`` (``min_runs`` runs or more on each side) cuts the series into a before and an after
   segment; the split that fits best has the least total absolute deviation of each run from its own segment's
   median (a least-absolute-deviations change point).
3. **Significant?** ``|median(after) - median(before)|`` exceeds ``k`` x the spread and is at least ``min_change`` of
   ``|median(before)|``; and the runs either side of the split each lie nearer their own side's median (the first run
   of a step belongs to the new level, so a split cannot land a run early).
4. **Newest.** Once a step is found, the same search runs on the runs after it; the newest significant step is the
   one reported, at its first run.

A step in the last ``min_runs - 1`` runs is not told from outliers yet: it is flagged once ``min_runs`` runs show it.
A regression undone in full later (A, B, A in runs of similar length) may go unflagged: the newest state is the old.
Defaults (``k`` 4, ``min_change`` 5%, ``min_runs`` 3), simulated on a speed ratio of 0.3 with 3% Gaussian noise:
false steps in 0.4% of flat 20-run series (0.8% with Student-t(3) noise) and in 0.6% of 12-run series with one 2x
outlier; a 30% step at run 7 of 12 flagged at run 7 in 99% of series (98% with a 2x outlier in the last run).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

K_SPREAD = 4.0
MIN_CHANGE = 0.05
MIN_RUNS = 3
RULE = (
    f"a step: the split of the history with the least absolute deviation from each side's median, where the medians "
    f"differ by more than {K_SPREAD:g} x the run-to-run spread (the median absolute difference of successive runs / "
    f"sqrt 2) and by at least {MIN_CHANGE:.0%} of the earlier median, with {MIN_RUNS}+ runs on each side; the newest "
    "such step is flagged at its first run"
)
"""The rule in one sentence, as the report and summary.json state it."""


@dataclass(frozen=True)
class Step:
    """A significant step: the index of its first run in the series given, the medians either side, the spread."""

    index: int
    before: float
    after: float
    spread: float

    @property
    def change(self) -> float | None:
        """The shift relative to the earlier median (+0.30: 30% up); None when the earlier median is 0."""
        return (self.after - self.before) / abs(self.before) if self.before else None


def spread(values: Sequence[float]) -> float:
    """The run-to-run spread: median |x[i+1] - x[i]| / sqrt(2) (0 for fewer than two values)."""
    diffs = [abs(b - a) for a, b in itertools.pairwise(values)]
    return statistics.median(diffs) / math.sqrt(2) if diffs else 0.0


def _cost(values: Sequence[float]) -> float:
    centre = statistics.median(values)
    return sum(abs(v - centre) for v in values)


def _best_split(values: Sequence[float], min_runs: int) -> int | None:
    """The split with the least absolute deviation from each segment's median (the earliest of equals)."""
    best: tuple[float, int] | None = None
    for s in range(min_runs, len(values) - min_runs + 1):
        cost = _cost(values[:s]) + _cost(values[s:])
        if best is None or cost < best[0] - 1e-12 * max(1.0, abs(cost)):
            best = (cost, s)
    return None if best is None else best[1]


def _significant(values: Sequence[float], s: int, noise: float, k: float, min_change: float) -> Step | None:
    before, after = statistics.median(values[:s]), statistics.median(values[s:])
    shift = abs(after - before)
    if not (shift > 0 and shift > k * noise and shift >= min_change * abs(before)):
        return None
    first, last = values[s], values[s - 1]
    if abs(first - after) >= abs(first - before) or abs(last - before) >= abs(last - after):
        return None  # the split is off the level change by a run
    return Step(s, before, after, noise)


def newest_step(
    values: Sequence[float], k: float = K_SPREAD, min_change: float = MIN_CHANGE, min_runs: int = MIN_RUNS
) -> Step | None:
    """The newest significant step in ``values`` (oldest first), by the module's rule; None when there is none."""
    noise = spread(values)
    found: Step | None = None
    offset, rest = 0, list(values)
    while True:
        s = _best_split(rest, min_runs)
        step = _significant(rest, s, noise, k, min_change) if s is not None else None
        if step is None:
            return found
        found = Step(offset + step.index, step.before, step.after, step.spread)
        offset, rest = offset + step.index, rest[step.index :]
