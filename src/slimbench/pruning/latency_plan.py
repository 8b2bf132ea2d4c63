"""Per-layer keep counts that reach a latency target at the least importance lost: a greedy plan on a latency model.

The pruning units are torch-pruning's groups (:mod:`slimbench.pruning.groups`), with the two halves of a C2f/C3k2
``cv1`` tied into one unit (they must keep equal widths, or the fold back pads). Each step takes ``step`` channels
(the multiple the runtime prefers) from the unit whose removal saves the most predicted latency per unit of
importance lost (the sum of the removed channels' scores, least important first), until the predicted latency is
at most the target. This is NetAdapt's and HALP's trade-off (latency saved against importance lost) solved greedily,
which is exact for a latency model additive over layers and close otherwise; the caller measures the result and
corrects the target (:mod:`slimbench.pruning.latency_target`).

Pure: the latency model is a callable, so the planner's tests need no timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlanUnit:
    """Channels pruned together: ``costs`` holds each member group's channel scores, least important first; the
    unit's width is each member's width (tied members keep equal widths)."""

    name: str
    width: int
    costs: tuple[tuple[float, ...], ...]
    min_keep: int
    step: int

    def lost(self, width: int, new: int) -> float:
        """Importance removed going from ``width`` to ``new`` kept channels (the least important first)."""
        return sum(sum(c[self.width - width : self.width - new]) for c in self.costs)


Predict = Callable[[dict[str, int]], float]
"""Unit name -> kept width  ->  predicted latency (any unit: the planner only compares and reaches a target)."""


@dataclass
class Plan:
    """Kept widths per unit and what the latency model predicts for them."""

    widths: dict[str, int]
    predicted: float
    predicted_full: float
    reached: bool
    steps: list[tuple[str, int, float]] = field(default_factory=list)  # (unit, new width, predicted after)

    @property
    def predicted_ratio(self) -> float:
        return self.predicted / self.predicted_full if self.predicted_full > 0 else float("nan")


def plan_widths(units: list[PlanUnit], predict: Predict, target_ratio: float) -> Plan:
    """Greedily remove ``step`` channels at a time until ``predict`` is at most ``target_ratio`` x the full model's.

    ``reached`` is False when no unit can shrink further (every one at ``min_keep``) or no step saves time."""
    if not 0.0 < target_ratio <= 1.0:
        raise ValueError(f"target latency ratio must be in (0, 1], got {target_ratio}")
    widths = {u.name: u.width for u in units}
    full = current = predict(widths)
    goal = target_ratio * full
    steps: list[tuple[str, int, float]] = []
    scale = max((sum(sum(c) for c in u.costs) / max(1, u.width) for u in units), default=1.0) or 1.0
    eps = 1e-6 * scale
    while current > goal:
        best: tuple[float, PlanUnit, int, float] | None = None
        for u in units:
            w = widths[u.name]
            new = w - u.step
            if new < u.min_keep:
                continue
            widths[u.name] = new
            latency = predict(widths)
            widths[u.name] = w
            saved = current - latency
            if saved <= 0:
                continue
            score = saved / (u.lost(w, new) + eps)
            if best is None or score > best[0]:
                best = (score, u, new, latency)
        if best is None:
            break
        _, unit, new, current = best
        widths[unit.name] = new
        steps.append((unit.name, new, current))
    return Plan(widths, current, full, current <= goal, steps)


def next_plan_target(tries: list[tuple[float, float]], target: float) -> float:
    """The ratio to plan for next, from ``tries`` (planned-for, measured) so far: the planned-for ratio that linear
    interpolation between the two tries that bracket ``target`` (the unpruned model, 1.0 -> 1.0, included) says
    will measure ``target``. The latency model's error need not be a constant factor (its floor may sit far above
    what the pruned model measures), so the correction searches on the measured curve itself (regula falsi)."""
    points = sorted({(1.0, 1.0), *tries}, key=lambda p: p[1])
    below = [p for p in points if p[1] <= target]
    above = [p for p in points if p[1] > target]
    if below and above:
        (p0, m0), (p1, m1) = below[-1], above[0]
    elif len(above) >= 2:  # every try measured above the target: extrapolate from the two lowest
        (p0, m0), (p1, m1) = above[0], above[1]
    else:
        return min(1.0, max(1e-3, tries[-1][0] * target / max(tries[-1][1], 1e-9)))
    if m1 == m0:
        return p0
    return min(1.0, max(1e-3, p0 + (p1 - p0) * (target - m0) / (m1 - m0)))
