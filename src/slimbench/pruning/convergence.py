"""When the reference original has converged: a stopping rule on its validation curve, and its record.

Pruning's cost is only honest against a converged original. The bundled original once stopped at 26 epochs, and 37
more epochs of the fine-tune recipe lifted it from mAP50-95 0.807 to 0.892, more than pruning "cost". The rule here
stops training once the validation mAP50-95 has not risen by more than ``min_delta`` over the last ``patience``
epochs: ultralytics' own ``patience`` stops on its fitness with no minimum step, so a curve creeping up by 0.0005 an
epoch never stops there. ``cap`` bounds the run either way; a run that hits it is recorded as not converged.

A plateau is not convergence while the learning rate is still high: ultralytics decays it linearly to the cap, and a
YOLO26n original whose augmentation stream was shifted stopped at epoch 58 on a plateau (mAP50-95 0.843, the rate at
0.52x its start) that, trained on over its schedule, climbed to 0.887. ``min_epochs`` is the first epoch the rule may
stop at (Lightning's ``min_epochs``); the bundled plan sets it at 60% of the cap, where the rate is 0.41x its start.

The rule reads the curve only (no training in its tests); :class:`StopWhenConverged` applies it as an ultralytics
callback at each epoch's end, on rank 0, and writes the curve beside the run (:data:`CURVE_FILE`) so the launching
process finds it after a multi-GPU run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimbench.core.files import atomic_write_bytes

CURVE_FILE = "convergence.json"
METRIC = "metrics/mAP50-95(B)"


@dataclass(frozen=True)
class ConvergenceRule:
    """Stop once the best of the last ``patience`` epochs beats the best before them by at most ``min_delta``,
    never before epoch ``min_epochs``."""

    patience: int = 10
    min_delta: float = 0.002
    cap: int = 90
    min_epochs: int = 1

    def __post_init__(self) -> None:
        if self.patience < 1 or self.cap < 1:
            raise ValueError(f"patience and cap must be >= 1, got {self.patience} and {self.cap}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if not 1 <= self.min_epochs <= self.cap:
            raise ValueError(f"min_epochs must be between 1 and the cap ({self.cap}), got {self.min_epochs}")

    def stopping_epoch(self, curve: list[float]) -> int | None:
        """The first epoch (1-based) at which the rule stops on ``curve``, or None while it would go on.

        Epoch ``e`` stops when ``e > patience``, ``e >= min_epochs`` and
        max(curve[e-patience:e]) - max(curve[:e-patience]) <= min_delta. A NaN (an epoch not validated) counts as
        no gain."""
        for e in range(max(self.patience + 1, self.min_epochs), len(curve) + 1):
            before = _best(curve[: e - self.patience])
            recent = _best(curve[e - self.patience : e])
            if before is not None and (recent is None or recent - before <= self.min_delta):
                return e
        return None

    def describe(self) -> str:
        return (
            f"stop when val mAP50-95 has not risen by more than {self.min_delta:g} over {self.patience} epochs "
            f"(cap {self.cap} epochs{self._not_before()})"
        )

    def _not_before(self) -> str:
        return f", not before epoch {self.min_epochs}" if self.min_epochs > 1 else ""


def _best(values: list[float]) -> float | None:
    real = [v for v in values if not math.isnan(v)]
    return max(real) if real else None


def convergence_record(rule: ConvergenceRule, curve: list[float]) -> dict[str, Any]:
    """The manifest's record of the original's training: rule, curve, stopping epoch, best and final mAP."""
    stop = rule.stopping_epoch(curve)
    best = _best(curve)
    return {
        "rule": rule.describe(),
        "patience": rule.patience,
        "min_delta": rule.min_delta,
        "cap_epochs": rule.cap,
        "min_epochs": rule.min_epochs,
        "epochs_trained": len(curve),
        "stopping_epoch": stop,
        "converged": stop is not None,
        "best_epoch": curve.index(best) + 1 if best is not None else None,
        "best_map50_95": round(best, 5) if best is not None else None,
        "final_map50_95": round(curve[-1], 5) if curve else None,
        "curve_map50_95": [round(v, 5) for v in curve],
    }


@dataclass
class StopWhenConverged:
    """An ``on_fit_epoch_end`` callback: record the epoch's val mAP50-95 and stop the trainer once ``rule`` says so.

    Ultralytics fires the same event once more for its final validation of best.pt, with the epoch counter moved
    on by one: only an event after ``on_train_epoch_start`` (:meth:`epoch_started`) is an epoch; register both with
    :meth:`callbacks`. Ranks other than 0 have no metrics and decide nothing (rank 0's stop is broadcast)."""

    rule: ConvergenceRule
    curve: list[float] = field(default_factory=list)
    in_epoch: bool = False

    def callbacks(self) -> dict[str, list[Any]]:
        """The ultralytics events to add this to (``train(callbacks=...)``)."""
        return {"on_train_epoch_start": [self.epoch_started], "on_fit_epoch_end": [self]}

    def epoch_started(self, trainer: Any) -> None:
        self.in_epoch = True

    def __call__(self, trainer: Any) -> None:
        from ultralytics.utils import RANK

        if RANK > 0 or not self.in_epoch:
            return
        self.in_epoch = False
        self.curve.append(float((trainer.metrics or {}).get(METRIC, float("nan"))))
        if getattr(trainer, "save_dir", None):
            path = Path(trainer.save_dir) / CURVE_FILE
            atomic_write_bytes(path, json.dumps(self.curve).encode())
        if self.rule.stopping_epoch(self.curve) == len(self.curve):
            print(f"[train] converged at epoch {len(self.curve)}: {self.rule.describe()}", flush=True)
            trainer.stop = True


def saved_curve(run_dir: str | Path) -> list[float]:
    """The curve :class:`StopWhenConverged` wrote in a run folder (empty if none)."""
    path = Path(run_dir) / CURVE_FILE
    return [float(v) for v in json.loads(path.read_text())] if path.is_file() else []
