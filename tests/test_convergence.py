"""The converged-original rule on recorded curves (no training), and its callback's bookkeeping."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from slimbench.pruning.convergence import (
    CURVE_FILE,
    METRIC,
    ConvergenceRule,
    StopWhenConverged,
    convergence_record,
    saved_curve,
)

# the bundled YOLOv8n original's first 26 epochs were still climbing by ~0.01 an epoch; then a plateau
RISING = [0.1 + 0.03 * i for i in range(20)]
PLATEAU = RISING + [0.70, 0.701, 0.7015, 0.702, 0.7012, 0.7018, 0.7021, 0.7019, 0.702, 0.7022, 0.7021, 0.7023]


def test_a_curve_still_rising_does_not_stop() -> None:
    assert ConvergenceRule(patience=10, min_delta=0.002).stopping_epoch(RISING) is None


def test_a_plateau_stops_once_ten_epochs_gained_at_most_min_delta() -> None:
    """Epoch 21 reaches 0.70; by epoch 31 the ten epochs 22-31 beat 0.70 by 0.0021 (> 0.002): go on; at epoch 32 the
    window 23-32 beats the best before it (0.701) by 0.0013: stop."""
    rule = ConvergenceRule(patience=10, min_delta=0.002)
    assert rule.stopping_epoch(PLATEAU[:31]) is None
    assert rule.stopping_epoch(PLATEAU) == 32


def test_a_slow_creep_above_min_delta_keeps_training() -> None:
    """Ultralytics' patience would never stop a curve that creeps up; ours does only when the creep is small."""
    creep = [0.5 + 0.0005 * i for i in range(40)]  # +0.005 per 10 epochs
    assert ConvergenceRule(patience=10, min_delta=0.002).stopping_epoch(creep) is None
    assert ConvergenceRule(patience=10, min_delta=0.01).stopping_epoch(creep) == 11


def test_epochs_not_validated_count_as_no_gain() -> None:
    curve = [0.5, 0.6, math.nan, math.nan]
    assert ConvergenceRule(patience=2, min_delta=0.0).stopping_epoch(curve) == 4


def test_record_holds_curve_stopping_epoch_and_best() -> None:
    rec = convergence_record(ConvergenceRule(patience=10, min_delta=0.002, cap=90), PLATEAU)
    assert rec["converged"] is True and rec["stopping_epoch"] == 32 == rec["epochs_trained"]
    assert rec["best_map50_95"] == 0.7023 and rec["best_epoch"] == 32 and rec["final_map50_95"] == 0.7023
    assert rec["curve_map50_95"][0] == 0.1 and len(rec["curve_map50_95"]) == 32 and rec["cap_epochs"] == 90
    capped = convergence_record(ConvergenceRule(cap=20), RISING)
    assert capped["converged"] is False and capped["stopping_epoch"] is None and capped["epochs_trained"] == 20


@pytest.mark.parametrize(("patience", "delta", "cap"), [(0, 0.002, 10), (10, -0.1, 10), (10, 0.0, 0)])
def test_bad_rules_are_refused(patience: int, delta: float, cap: int) -> None:
    with pytest.raises(ValueError):
        ConvergenceRule(patience, delta, cap)


def test_callback_stops_the_trainer_and_writes_the_curve(tmp_path: Path) -> None:
    """One record per epoch; the final validation of best.pt fires the event again (no epoch started): not recorded."""
    stopper = StopWhenConverged(ConvergenceRule(patience=2, min_delta=0.01))
    trainer = SimpleNamespace(epoch=0, metrics={}, save_dir=tmp_path, stop=False)
    assert set(stopper.callbacks()) == {"on_train_epoch_start", "on_fit_epoch_end"}
    for epoch, value in enumerate([0.3, 0.5, 0.505, 0.507]):
        trainer.epoch, trainer.metrics = epoch, {METRIC: value}
        stopper.epoch_started(trainer)
        stopper(trainer)
        assert trainer.stop == (epoch == 3), epoch
    trainer.epoch, trainer.metrics = 4, {METRIC: 0.9}  # final validation of best.pt: the counter moved on, no epoch
    stopper(trainer)
    assert stopper.curve == [0.3, 0.5, 0.505, 0.507]
    assert json.loads((tmp_path / CURVE_FILE).read_text()) == stopper.curve == saved_curve(tmp_path)
    assert saved_curve(tmp_path / "nowhere") == []
