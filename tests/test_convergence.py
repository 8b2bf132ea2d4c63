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


@pytest.mark.parametrize(
    ("patience", "delta", "cap", "min_epochs"),
    [(0, 0.002, 10, 1), (10, -0.1, 10, 1), (10, 0.0, 0, 1), (10, 0.002, 10, 0), (10, 0.002, 10, 11)],
)
def test_bad_rules_are_refused(patience: int, delta: float, cap: int, min_epochs: int) -> None:
    with pytest.raises(ValueError):
        ConvergenceRule(patience, delta, cap, min_epochs)


def test_min_epochs_holds_off_a_plateau_until_then() -> None:
    """The same plateau stops at epoch 32 with no floor, at the floor when it lies later, and never before it."""
    flat = PLATEAU + [0.7022] * 10
    assert ConvergenceRule(patience=10, min_delta=0.002, cap=90, min_epochs=20).stopping_epoch(flat) == 32
    late = ConvergenceRule(patience=10, min_delta=0.002, cap=90, min_epochs=38)
    assert late.stopping_epoch(flat[:37]) is None and late.stopping_epoch(flat) == 38
    assert "not before epoch 38" in late.describe() and "not before" not in ConvergenceRule().describe()
    assert convergence_record(late, flat)["min_epochs"] == 38


def test_the_shifted_yolo26n_plateau_no_longer_stops_the_plan() -> None:
    """The recorded curve of a YOLO26n original that stopped at epoch 58 (0.843, its learning rate still 0.52x its
    start; trained on, it reached 0.887): the plan's rule does not stop it before epoch 72 (60% of the cap)."""
    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.reference_stage import plan_rule

    curve = json.loads((Path(__file__).parent / "data" / "yolo26n_shifted_stream_curve.json").read_text())
    curve = curve["curve_map50_95"]
    plan = FixturePlan(model_cfg="yolo26n.yaml")
    assert (
        len(curve) == 58
        and ConvergenceRule(plan.converge_patience, plan.converge_min_delta, 120).stopping_epoch(curve) == 58
    )
    rule = plan_rule(plan)
    assert rule.min_epochs == plan.converge_min_epochs == 72 and rule.cap == 120
    held = curve + [curve[-1]] * 14  # the plateau held on to epoch 72
    assert rule.stopping_epoch(curve) is None and rule.stopping_epoch(held[:71]) is None
    assert rule.stopping_epoch(held) == 72


@pytest.mark.parametrize(
    "manifest", ["fixtures/manifest.json", "fixtures/yolo11n/manifest.json", "fixtures/yolo26n/manifest.json"]
)
def test_the_plan_rule_stops_each_bundled_original_where_it_stopped(manifest: str) -> None:
    """The floor moves no bundled original: each stopped after epoch 72, so its recorded curve, judged by the plan's
    rule today, stops at the same epoch, and the build stays reproducible."""
    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.reference_stage import plan_rule

    recorded = json.loads((Path(__file__).parent.parent / manifest).read_text())
    training = recorded["original_training"]
    plan = FixturePlan(**{k: v for k, v in recorded["plan"].items() if k in FixturePlan.__dataclass_fields__})
    assert training["stopping_epoch"] >= plan.converge_min_epochs
    assert plan_rule(plan).stopping_epoch(training["curve_map50_95"]) == training["stopping_epoch"]


def test_the_quick_plan_still_stops_at_epoch_two() -> None:
    from slimbench.pruning.fixture_plan import FixturePlan
    from slimbench.pruning.reference_stage import plan_rule

    quick = FixturePlan.quick()
    assert plan_rule(quick).stopping_epoch([0.1, 0.2, 0.3]) == 2 == quick.converge_min_epochs


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
