"""The deployment matrix's settings, options and limits: precision, calibration, openvino as a runtime, the INT8
gates; cell keys; and the matrix rows' speedups, undefined (not 1.0) where the reference cell was not timed."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import two_variant_config

from slimbench.bench.figures import VariantFigures
from slimbench.bench.matrix import accuracy_key, cell_key
from slimbench.config.overrides import Overrides, apply_overrides
from slimbench.config.suite import Settings
from slimbench.config.values import parse_precisions
from slimbench.core.errors import SlimbenchError
from slimbench.core.timing_key import TimingKey


def test_the_matrix_is_off_by_default():
    assert Settings().precision == () and Settings().calibration is None


def test_precision_calibration_openvino_and_int8_limits_parse():
    cfg = two_variant_config(
        {"precision": ["fp32", "int8"], "calibration": "calib", "runtime": "torch, ov"},
        {"pruned": {"max_int8_map50_95_drop": 0.02, "min_int8_agreement_map50": 0.9}},
    )
    s = cfg.settings
    assert s.precision == ("fp32", "int8") and s.calibration == Path("/x/calib")
    assert s.runtime == ("torch", "openvino")
    assert cfg.limits("pruned").max_int8_map50_95_drop == 0.02 and cfg.limits("pruned").min_int8_agreement_map50 == 0.9


def test_options_override_the_file(tmp_path):
    cfg = apply_overrides(
        two_variant_config(),
        Overrides(precision="int8,fp32,int8", calibration="cal", runtime="onnxruntime,openvino"),
        tmp_path,
    )
    assert cfg.settings.precision == ("int8", "fp32") and cfg.settings.calibration == tmp_path / "cal"
    assert cfg.settings.runtime == ("onnxruntime", "openvino")


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"precision": ["fp16"]}, "settings.precision: unknown precision 'fp16' (expected fp32, int8)"),
        ({"calibration": ""}, "settings.calibration: expected a non-empty path"),
    ],
)
def test_bad_matrix_settings_are_one_line(settings, expected):
    with pytest.raises(SlimbenchError) as e:
        two_variant_config(settings)
    assert expected in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SlimbenchError, match="--precision: unknown precision 'bf16'"):
        parse_precisions("fp32,bf16")


def test_cell_keys_name_every_axis():
    assert cell_key("openvino", "int8", "cpu", 1, 2) == "ov-int8-cpu-b1-t2"
    assert cell_key("onnxruntime", "fp32", "cpu", 8, 1) == "ort-fp32-cpu-b8-t1"
    assert accuracy_key("openvino", "int8") == "ov-int8"
    assert TimingKey.parse("ov-cpu-b1-t2-640").runtime == "openvino"


def test_rows_give_speedups_and_leave_unmeasured_ones_undefined():
    from slimbench.bench.matrix import DeployMatrix

    cell = {"runtime": "onnxruntime", "precision": "int8", "device": "cpu", "batch": 1, "threads": 2}
    key = cell_key("onnxruntime", "int8", "cpu", 1, 2)
    ov_key = cell_key("openvino", "int8", "cpu", 1, 2)
    figures = {
        "original": {"forward": {"cpu-b1-t2-640": {"median_s": 0.080}}, "matrix": {key: {**cell, "median_s": 0.040}}},
        "pruned": {
            "matrix": {key: {**cell, "median_s": 0.020}},
            "matrix_accuracy": {"ort-int8": {"agreement_map50": 0.95}},
            "matrix_vs_torch": {key: {"speedup": 4.5, "reference_median_s": 0.09}},
        },
        "finetuned": {
            "matrix": {ov_key: {**cell, "runtime": "openvino", "median_s": 0.02}},
            "matrix_vs_torch": {ov_key: {"speedup": 4.0, "reference_median_s": 0.08}},
        },
        "unpaired": {"matrix": {key: {**cell, "median_s": 0.010}}},
        "paired_only": {"matrix_vs_torch": {key: {**cell, "speedup": 3.0, "reference_median_s": 0.09}}},
    }
    m = DeployMatrix.__new__(DeployMatrix)  # just what rows and summary_lines read
    typed = {name: VariantFigures(name, "candidate", f"{name}.pt", None, **f) for name, f in figures.items()}
    m.figures, m.reference, m.settings = typed, "original", Settings(imgsz=640)
    rows = {(r["variant"], r["cell"]): r for r in m.rows()}
    pruned = rows[("pruned", key)]
    assert pruned["speedup_same_cell"] == pytest.approx(2.0)
    # against torch FP32: the interleaved pairs' figure, not the ratio of medians of separate benchmarks (0.08/0.02)
    assert pruned["speedup_vs_torch_fp32"] == pytest.approx(4.5) and pruned["torch_fp32_reference_s"] == 0.09
    unpaired = rows[("unpaired", key)]
    assert unpaired["speedup_vs_torch_fp32"] is None, "not timed in pairs against torch: undefined, not a guess"
    paired = rows[("paired_only", key)]  # timed only in pairs (-k vs_torch): a row, its latency undefined
    assert paired["speedup_vs_torch_fp32"] == 3.0 and paired.get("median_s") is None
    assert paired["speedup_same_cell"] is None
    assert pruned["agreement_map50"] == 0.95
    ov = rows[("finetuned", "ov-int8-cpu-b1-t2")]
    assert ov["speedup_same_cell"] is None, "the reference's OpenVINO cell was not timed: undefined, not 1.0"
    assert ov["speedup_vs_torch_fp32"] == pytest.approx(4.0)
    lines = m.summary_lines()
    assert any(line.startswith("finetuned") and "n/a" in line for line in lines)
    only = next(line for line in lines if line.startswith("paired_only")).split()
    assert only[2:5] == ["n/a", "n/a", "n/a"] and only[6] == "3.00", "no latency timed: n/a, not 0.0"


class _Accuracy:
    def agreement_images(self):
        return [Path("a.jpg")]


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, "int8 is not in settings.precision / --precision"),
        ({"precision": ["fp32", "int8"], "runtime": ["torch"]}, "neither onnxruntime nor openvino is in"),
        ({"precision": ["int8"], "runtime": ["openvino"]}, None),
    ],
)
def test_int8_limits_that_cannot_be_measured_stop_the_run(settings, expected):
    from types import SimpleNamespace

    from slimbench.bench.unmeasurable import unmeasurable_limits

    cfg = two_variant_config(settings, {"pruned": {"min_int8_agreement_map50": 0.9}})
    session = SimpleNamespace(
        config=cfg,
        settings=cfg.settings,
        image_paths={"a": "a.jpg"},
        accuracy=_Accuracy(),
        map_unsupported=lambda: None,
    )
    lines = unmeasurable_limits(session)
    if expected is None:
        assert lines == []
    else:
        assert (
            len(lines) == 1 and "thresholds.pruned.min_int8_agreement_map50 is set but cannot be measured" in lines[0]
        )
        assert expected in lines[0]


def test_the_report_block_has_the_matrix_and_the_chart():
    from slimbench.report.matrix_report import section, table

    rows = [
        {
            "variant": "pruned",
            "cell": "ort-int8-cpu-b1-t2",
            "median_s": 0.02,
            "speedup_same_cell": 2.0,
            "speedup_vs_torch_fp32": 4.0,
            "agreement_map50": 0.95,
            "map50_95": None,
        },
        {
            "variant": "pruned",
            "cell": "ov-int8-cpu-b1-t2",
            "median_s": 0.03,
            "speedup_same_cell": None,
            "agreement_map50": float("nan"),
        },
    ]
    html = section(rows, "ONNX Runtime static QDQ, MinMax calibration, per-channel QInt8 weights")
    assert '<table id="slimbench-matrix">' in html and "<td>20.00</td>" in html and "<td>4.00x</td>" in html
    assert "MinMax calibration, per-channel" in html and "data:image/png;base64," in html
    assert table(rows[1:]).count("<td>n/a</td>") >= 3, "undefined figures are n/a, never 1.0 or 0.0"
    assert section([], None) == ""


def test_the_chart_plots_map_when_every_cell_has_it_and_leaves_undefined_points_out():
    from slimbench.report.matrix_report import chart_points

    cell = {"variant": "pruned", "speedup_vs_torch_fp32": 4.0, "agreement_map50": 0.99, "map50_95": 0.76}
    rows = [
        {**cell, "cell": "ov-int8-cpu-b1-t2"},
        {**cell, "cell": "ort-fp32-cpu-b1-t2", "speedup_vs_torch_fp32": None, "speedup_same_cell": 2.0},
        {**cell, "cell": "ort-int8-cpu-b1-t2", "speedup_vs_torch_fp32": float("nan"), "speedup_same_cell": None},
    ]
    label, points = chart_points(rows)
    assert label == "mAP50-95 on the dataset"
    assert points == [(4.0, 0.76, "pruned", "ov-int8"), (2.0, 0.76, "pruned", "ort-fp32")]  # no speedup: left out
    label, points = chart_points([*rows, {**cell, "cell": "ov-fp32-cpu-b1-t2", "map50_95": None}])
    assert label == "agreement mAP50 with the FP32 checkpoint" and [p[1] for p in points] == [0.99] * 3
