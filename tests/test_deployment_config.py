"""The deployment settings and limits in the suite config, the --runtime option, and the baseline's new metrics:
strict parsing with one line per mistake, and a baseline written before these metrics existed still compares."""

from __future__ import annotations

import pytest
from tiny_models import two_variant_config

from slimbench.bench.baseline_compare import RULES, compare, merge_entry
from slimbench.bench.baseline_store import read_baseline, render
from slimbench.config.overrides import Overrides, apply_overrides
from slimbench.config.suite import Settings
from slimbench.config.values import parse_runtimes
from slimbench.core.errors import SlimbenchError


def test_defaults_time_both_runtimes_and_measure_memory():
    s = Settings()
    assert s.runtime == ("torch", "onnxruntime") and s.memory is True
    assert (s.parity_atol, s.parity_rtol) == (1e-3, 1e-3)


def test_settings_and_limits_parse():
    cfg = two_variant_config(
        {"runtime": ["onnxruntime"], "parity_atol": 0.01, "parity_rtol": 0, "memory": False},
        {"pruned": {"max_ort_speed_ratio": 0.85}},
    )
    assert cfg.settings.runtime == ("onnxruntime",) and cfg.settings.memory is False
    assert cfg.settings.parity_atol == 0.01 and cfg.settings.parity_rtol == 0.0
    assert cfg.limits("pruned").max_ort_speed_ratio == 0.85
    assert two_variant_config({"runtime": "torch, ort"}).settings.runtime == ("torch", "onnxruntime")


@pytest.mark.parametrize(
    "settings, expected",
    [
        (
            {"runtime": ["tensorrt"]},
            "settings.runtime: unknown runtime 'tensorrt' (expected torch, onnxruntime, openvino)",
        ),
        ({"runtime": []}, "settings.runtime: expected a non-empty list of str"),
        ({"parity_atol": -1}, "settings.parity_atol: expected a number >= 0, got -1"),
        ({"memory": "yes"}, "settings.memory: expected true or false"),
    ],
)
def test_bad_settings_are_one_line(settings, expected):
    with pytest.raises(SlimbenchError) as e:
        two_variant_config(settings)
    assert expected in str(e.value) and str(e.value).startswith("/x/suite.toml: ")


def test_runtime_option_overrides_the_file():
    cfg = apply_overrides(two_variant_config(), Overrides(runtime="ort"))
    assert cfg.settings.runtime == ("onnxruntime",)
    with pytest.raises(SlimbenchError, match=r"--runtime: unknown runtime 'tf'"):
        apply_overrides(two_variant_config(), Overrides(runtime="torch,tf"))
    assert parse_runtimes("torch,torch") == ("torch",)


def entry(metrics, imgsz=640):
    return {"settings": {"imgsz": imgsz, "images": {}}, "metrics": metrics}


def test_baseline_knows_the_deployment_metrics(tmp_path):
    metrics = {"params": 10, "onnx_params": 9, "onnx_weights_mb": 0.5}
    path = tmp_path / "baseline.json"
    path.write_bytes(render({"pruned": entry(metrics)}))
    assert read_baseline(path)["variants"]["pruned"]["metrics"] == dict(sorted(metrics.items()))


def test_onnx_is_gated_on_its_graph_and_absolute_memory_is_not_stored(tmp_path):
    base, worse = entry({"onnx_params": 10}), entry({"onnx_params": 11})
    assert {r.metric: r.status for r in compare(base, worse)} == {"onnx_params": "regressed"}
    # absolute memory is the environment's as much as the model's: an older baseline's figures are dropped on read
    path = tmp_path / "baseline.json"
    path.write_text(
        '{"schema": "slimbench-baseline", "schema_version": 1, "variants": {"pruned": {"metrics": '
        '{"params": 10, "peak_rss_mb[cpu-b8-t2]": 1000.0, "inference_mb[cpu-b1-t2]": 40.0}}}}'
    )
    assert read_baseline(path)["variants"]["pruned"]["metrics"] == {"params": 10}
    assert "peak_rss_mb" not in RULES and "inference_mb" not in RULES


def test_an_older_baseline_s_onnx_file_size_is_dropped_not_compared(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_bytes(render({"pruned": entry({"params": 10, "onnx_size_mb": 4.1})}))
    assert read_baseline(path)["variants"]["pruned"]["metrics"] == {"params": 10}


def test_a_baseline_from_before_the_deployment_figures_still_compares():
    old = entry({"params": 10})
    now = entry({"params": 10, "onnx_params": 9})
    rows = {r.metric: r.status for r in compare(old, now)}
    assert rows == {"params": "ok", "onnx_params": "new"}
    merged = merge_entry(now, entry({"params": 10}))  # a run without ONNX keeps the stored figures
    assert merged["metrics"]["onnx_params"] == 9
