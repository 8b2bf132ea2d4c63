"""Pruning to a latency target: the cached latency table, the planner on a simulated latency model, the correction
loop on a simulated runtime, and the CLI's refusals. Nothing here is timed: the measuring functions are replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

from slimbench.cli import main
from slimbench.model.checkpoint import load_detector, save_detector
from slimbench.pruning import latency_measure, latency_target
from slimbench.pruning.latency_plan import PlanUnit, next_plan_target, plan_widths
from slimbench.pruning.latency_table import ConvModel, ConvShape, LatencyTable, table_path
from slimbench.pruning.latency_target import LatencySettings, prune_to_latency


def _macs(shape: ConvShape, ci: int, co: int) -> float:
    """A deterministic 'latency': MACs plus a fixed cost per call, in seconds."""
    per_out = 1 if shape.depthwise else ci
    return 1e-6 + shape.kernel**2 * per_out * co * shape.height * shape.width / shape.stride**2 * 1e-11


def test_latency_table_is_cached_and_keyed(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    def measure(shape: ConvShape, ci: int, co: int) -> float:
        calls.append((ci, co))
        return _macs(shape, ci, co)

    shape = ConvShape(3, 1, 1, False, True, 40, 40, 1)
    path = table_path(tmp_path, "onnxruntime", 2, 1)
    table = LatencyTable(path, measure)
    model = ConvModel.measure(table, shape, 64, 32, ci_varies=True, co_varies=True, step=8)
    assert model.ci_grid == [16, 32, 64] and model.co_grid == [8, 16, 32] and len(calls) == 9
    table.save()
    again = LatencyTable(path, measure)
    ConvModel.measure(again, shape, 64, 32, ci_varies=True, co_varies=True, step=8)
    assert len(calls) == 9 and again.measured == 0  # every point read back from the file
    assert model.predict(64, 32) == pytest.approx(_macs(shape, 64, 32))
    assert _macs(shape, 16, 8) < model.predict(24, 12) < _macs(shape, 32, 16)  # interpolated between the points
    # another thread count, batch or runtime is another file; the machine and versions are in the name's digest
    others = {table_path(tmp_path, "onnxruntime", 1, 1), table_path(tmp_path, "onnxruntime", 2, 8)}
    others.add(table_path(tmp_path, "torch", 2, 1))
    assert path not in others and len(others) == 3
    assert path.name.startswith("onnxruntime-t2-b1-")


def _units() -> list[PlanUnit]:
    """Three layers: 'wide' costs much and matters little, 'key' matters much, 'cheap' costs nothing."""
    return [
        PlanUnit("wide", 64, ((0.1,) * 64,), 8, 8),
        PlanUnit("key", 64, ((1.0,) * 64,), 8, 8),
        PlanUnit("cheap", 64, ((0.1,) * 64,), 8, 8),
    ]


def _simulated(widths: dict[str, int]) -> float:
    return 2.0 + 10.0 * widths["wide"] + 10.0 * widths["key"] + 0.01 * widths["cheap"]


def test_planner_reaches_the_target_at_the_least_importance_lost() -> None:
    plan = plan_widths(_units(), _simulated, 0.6)
    assert plan.reached and plan.predicted_ratio <= 0.6
    assert plan.widths["key"] == 64, "the important layer is kept while a cheaper loss reaches the target"
    assert plan.widths["wide"] < 64 and plan.widths["cheap"] == 64  # cheap saves nothing: not touched
    assert all(w % 8 == 0 for w in plan.widths.values())
    deeper = plan_widths(_units(), _simulated, 0.3)  # past what 'wide' alone can give: 'key' goes too
    assert deeper.reached and deeper.widths["wide"] == 8 and deeper.widths["key"] < 64


def test_planner_says_when_the_target_is_out_of_reach() -> None:
    plan = plan_widths(_units(), _simulated, 0.01)  # the fixed 2.0 and the minimum widths stay
    assert not plan.reached and plan.widths == {"wide": 8, "key": 8, "cheap": 8}  # every step that saves time
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        plan_widths(_units(), _simulated, 1.5)


def test_correction_interpolates_between_the_tries_that_bracket_the_target() -> None:
    assert next_plan_target([(0.5, 0.2)], 0.5) == pytest.approx(0.5 + 0.5 * 0.3 / 0.8)  # between 0.2 and 1.0
    assert next_plan_target([(0.5, 0.2), (0.8, 0.6)], 0.5) == pytest.approx(0.5 + 0.3 * 0.3 / 0.4)
    assert next_plan_target([(0.5, 0.7), (0.4, 0.6)], 0.5) == pytest.approx(0.3)  # both above: extrapolated


def _simulated_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_seconds: float) -> Any:
    """A yolov8n checkpoint (nc=3) and a simulated runtime: layer 'latency' is MACs (:func:`_macs`), the
    reference's forward measures ``model_seconds``, and a measured ratio is the candidate's params ratio."""
    torch.manual_seed(0)
    path = save_detector(DetectionModel("yolov8n.yaml", nc=3, verbose=False), tmp_path / "m.pt", half=False)

    def forward(y: Any, *args: Any) -> Any:
        params = sum(p.numel() for p in y.model.parameters())
        return lambda: params

    monkeypatch.setattr(latency_measure, "conv_measure", lambda runtime, threads: _macs)
    monkeypatch.setattr(latency_measure, "model_forward", forward)
    monkeypatch.setattr(latency_measure, "model_seconds", lambda fn: model_seconds)
    monkeypatch.setattr(latency_measure, "paired_ratio", lambda ref, cand, pairs: cand() / ref())
    return load_detector(path)


def test_prune_to_latency_corrects_until_the_measured_ratio_is_within_tolerance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A simulated runtime whose measured ratio is the params ratio: the layer model (MACs) is off, so the loop
    has to correct; the kept candidate measures within 0.03 of the target and is a plain, loadable checkpoint."""
    yolo = _simulated_runtime(monkeypatch, tmp_path, model_seconds=1e-3)
    settings = LatencySettings(runtime="onnxruntime", threads=1, imgsz=64, rounds=8)
    logs: list[str] = []
    pruned, result = prune_to_latency(yolo, 0.5, settings, tmp_path / "cache", tmp_path / "work", logs.append)
    assert abs(result.measured - 0.5) <= 0.03, result.rounds
    assert len(result.rounds) >= 2, "the MACs model is not the params ratio: at least one correction"
    assert any("planned for" in line for line in logs)
    assert result.params_after < result.params_before and result.plan
    assert all(kept % 8 == 0 for _, kept in result.plan.values())
    # sparsify --target-latency: the plan's shares, given to the per-layer targets, target exactly the channels the
    # plan removes in every group (the same units, found by the same roots)
    from slimbench.pruning.sparsity import coupled_units, targeted_weights

    net0 = yolo.model
    names = {m: n for n, m in net0.named_modules()}
    weights = targeted_weights(net0, 0.5, per_layer=True, round_to=8, layer_shares=dict(result.sparsity_shares()))
    unit_of = {bn: u for u, bns in result.member_bns.items() for bn in bns}
    checked = 0
    for unit in coupled_units(net0):
        bn, idx = unit[0]
        width, kept = result.plan[unit_of[names[bn]]]
        assert int(weights[bn][idx].sum()) == width - kept, names[bn]
        checked += 1
    assert checked >= len(result.plan)
    out = save_detector(pruned, tmp_path / "p.pt", half=False)
    net = YOLO(str(out)).model
    net.eval()(torch.rand(1, 3, 64, 64))
    assert sum(p.numel() for p in net.parameters()) == result.params_after


def test_a_floor_above_the_target_is_left_when_the_measurement_is_below_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The layer model's floor sits far above the target (a large fixed cost in the reference's measurement, as on a
    busy machine) while the runtime measures the floor plan far below it: the next rounds plan above that floor,
    not again below it, and end within the tolerance."""
    yolo = _simulated_runtime(monkeypatch, tmp_path, model_seconds=5e-3)  # ~10x the convs: the floor is ~0.9
    settings = LatencySettings(runtime="onnxruntime", threads=1, imgsz=64, rounds=8)
    _, result = prune_to_latency(yolo, 0.5, settings, tmp_path / "cache", tmp_path / "work", lambda _: None)
    first, second = result.rounds[:2]
    assert first["predicted"] > 0.8 and first["measured"] < 0.2, first  # the floor: predicted high, measured low
    assert second["planned_for"] > first["predicted"], second  # planned above the floor, so less is pruned
    assert abs(result.measured - 0.5) <= 0.03, result.rounds


def test_latency_plan_shares_keep_the_cap_on_every_unit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """make-fixtures' sparsity shares with a per-unit cap (``latency_max_layer_ratio``): uncapped, the plan for a low
    target cuts some units by more than half; capped at 0.5, no unit loses more than half, and the record says so."""
    from slimbench.pruning.latency_sparsity import latency_plan_shares

    yolo = _simulated_runtime(monkeypatch, tmp_path, model_seconds=1e-3)
    kw = {"runtime": "onnxruntime", "threads": 1, "step": 8, "imgsz": 64, "log": lambda _: None}
    free, free_record = latency_plan_shares(yolo, 0.3, cache_dir=tmp_path / "cache", **kw)
    capped, record = latency_plan_shares(yolo, 0.3, cache_dir=tmp_path / "cache", max_layer_ratio=0.5, **kw)
    assert max(share for _, share in free) > 0.5, free
    assert capped and max(share for _, share in capped) <= 0.5, capped
    assert record["max_layer_ratio"] == 0.5 and free_record["max_layer_ratio"] == 0.9
    assert all(kept >= width / 2 for width, kept in record["plan"].values())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target-latency", "1.5"], "--target-latency"),
        (["--target-latency", "0.5", "--runtime", "tensorrt"], "--runtime"),
        (["--target-latency", "0.5", "--ratio", "0.3"], "not allowed with"),
    ],
)
def test_target_latency_refuses_bad_input_in_one_line(
    tmp_path: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_detector(DetectionModel("yolov8n.yaml", nc=3, verbose=False), tmp_path / "m.pt")
    with pytest.raises(SystemExit) as e:
        main(["prune", str(src), *args, "--out", str(tmp_path / "p.pt")])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("usage")]
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "p.pt").exists()


def test_target_latency_refuses_a_runtime_not_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slimbench.runtimes import registry

    monkeypatch.setattr(registry, "missing_reason", lambda name: "openvino is not installed (pip install openvino)")
    src = save_detector(DetectionModel("yolov8n.yaml", nc=3, verbose=False), tmp_path / "m.pt")
    rc = main(["prune", str(src), "--target-latency", "0.5", "--runtime", "openvino", "--out", str(tmp_path / "p.pt")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "--runtime openvino: openvino is not installed" in err[0], err
    assert not (tmp_path / "p.pt").exists()


def test_settings_default_to_the_suite_measurement() -> None:
    s = LatencySettings()
    assert (s.pairs, s.tolerance, s.step) == (21, 0.03, 8)
    assert latency_target.RUNTIMES == ("torch", "onnxruntime", "openvino")


def test_kept_width_moves_in_steps_of_round_to() -> None:
    """Why a uniform share between 0.7 and 0.75 gives no size between 0.161x and 0.081x: the kept widths jump."""
    from slimbench.pruning.sparsity import kept_width

    assert [kept_width(64, s, 8) for s in (0.7, 0.72, 0.74, 0.75)] == [24, 24, 24, 16]
    assert [kept_width(256, s, 8) for s in (0.7, 0.72)] == [80, 72]
    assert kept_width(16, 0.99, 8) == 8 and kept_width(32, 0.0, 8) == 32


def test_share_plan_size_prunes_every_unit_to_its_targets_width() -> None:
    """The sweep's size estimate: each unit keeps ``kept_width`` of its share (a named layer's share where given),
    so the estimate is the size the threshold rule gives after sparsity reaches those targets."""
    from ultralytics import YOLO

    from slimbench.pruning.latency_sparsity import share_plan_size
    from slimbench.pruning.latency_target import pruned_to_widths
    from slimbench.pruning.sparsity import kept_width, unit_share

    yolo = YOLO("yolov8n.yaml", task="detect")
    shares = {"model.22": 0.75}
    seen: dict[str, tuple[int, int]] = {}

    def width_of(unit) -> int:
        seen[unit.name] = (unit.width, kept_width(unit.width, unit_share(unit.name, 0.7, shares), 8))
        return seen[unit.name][1]

    pruned = dict(pruned_to_widths(yolo, width_of, 8).model.named_modules())
    assert seen["model.22.cv2.0.0"] == (64, 16) and seen["model.3"] == (64, 24) and seen["model.7"] == (256, 80)
    assert pruned["model.3.conv"].out_channels == 24 and pruned["model.22.cv2.0.0.conv"].out_channels == 16
    full = share_plan_size(yolo, 0.0, {}, 8, imgsz=320)
    uniform = share_plan_size(yolo, 0.7, {}, 8, imgsz=320)
    mixed = share_plan_size(yolo, 0.7, shares, 8, imgsz=320)
    assert full == {"gflops_ratio": 1.0, "params_ratio": 1.0}
    assert mixed["gflops_ratio"] < uniform["gflops_ratio"] < 0.3 and mixed["params_ratio"] < uniform["params_ratio"]
