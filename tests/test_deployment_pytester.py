"""The deployment view end to end (pytester, tiny variants): ONNX Runtime benchmarks beside torch's in one table,
the per-runtime speed gate, parity, peak memory, percentiles and FPS in the summary, the report and the baseline;
the export cache reused by a second run; a baseline written before these figures still works; onnxruntime missing
gives skips with the reason; a variant whose export fails is named with the reason while the others run."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tiny_models

from slimbench.runtimes import export

SETTINGS = {**tiny_models.SUITE_SETTINGS, "batch": [1, 2], "images": ["noise.jpg"]}
THRESHOLDS = {"pruned": {"max_speed_ratio": 10.0, "max_ort_speed_ratio": 10.0, "max_params_ratio": 0.5}}
FAST = ("--benchmark-min-rounds=3", "--benchmark-max-time=0.01")
DEPLOYMENT = ("onnx_params", "onnx_weights_mb", "peak_rss_mb", "inference_mb")


def write_noise(path: Path) -> Path:
    """A textured image: on a flat one the untrained tiny detectors tie on every box, and NMS ties are arbitrary."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((160, 160, 3)) * 255).astype(np.uint8), (0, 0), 3)
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture(scope="module")
def imported_once(imported_once, tiny, tmp_path_factory) -> None:
    """Export, run ONNX Runtime and predict on an ONNX file once in this process before the in-process runs:
    pytester drops modules an inner run imported, and onnx's protobuf and torch's registrations refuse a second
    import (see conftest.imported_once, which this overrides)."""
    from ultralytics import YOLO

    from slimbench.model.checkpoint import load_detector, sha256_of
    from slimbench.model.detections import detect
    from slimbench.runtimes import onnx_runtime as ort_runtime

    root = tmp_path_factory.mktemp("preimport")
    onnx = export.export_onnx(load_detector(tiny.pruned), sha256_of(tiny.pruned), 64, root, name="pre").path
    ort_runtime.run(ort_runtime.session(onnx, "cpu"), np.zeros((1, 3, 64, 64), np.float32))
    detect(YOLO(str(onnx), task="detect"), tiny.scene, imgsz=64)
    detect(load_detector(tiny.original), tiny.scene, imgsz=64)


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned)
    write_noise(bench_dir.path / "noise.jpg")
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(bench_dir.path / "suite.toml", variants, "original", SETTINGS, THRESHOLDS)
    return bench_dir


run = functools.partial(tiny_models.run_suite, marks="not accuracy")


def test_deployment_figures_everywhere_and_the_export_cached(suite):
    result = run(suite, *FAST, "--threads", "2", "--update-baseline", "-rs")  # the TOML says 1
    out = result.stdout.str()
    assert result.ret == 0, out
    # forward x 2 variants x 2 batches x 2 runtimes, ratio x 2 x 2, parity x 2, memory x 2 x 2 x 2, static, ...
    assert "benchmark 'forward-cpu-b1-t2-64': 4 tests" in out and "benchmark 'forward-cpu-b2-t2-64': 4 tests" in out
    assert "test_forward[pruned-cpu-b1-t2-ort]" in out and "test_forward[pruned-cpu-b1-t2-torch]" in out
    assert "pruned          ort-cpu-b2-t2-64" in out, "the speed ratio per runtime in the terminal summary"
    assert "p50 ms   p90 ms   p99 ms      FPS" in out and "peak memory of inference" in out
    assert "detections identical" in out and "(ok)" in out and "exported in" in out
    onnx_files = sorted((suite.path / ".slimbench-cache/onnx").glob("*.onnx"))
    assert len(onnx_files) == 2 and not list(suite.path.glob("*.onnx")), "in the cache, not next to the checkpoints"

    reports = suite.path / "reports"
    bench = json.loads((reports / "benchmark.json").read_text())
    forward = {
        (b["extra_info"]["variant"], b["extra_info"]["runtime"], b["extra_info"]["batch"]): b
        for b in bench["benchmarks"]
        if b["group"].startswith("forward-")
    }
    assert len(forward) == 8
    for (_, runtime, batch), b in forward.items():
        info = b["extra_info"]
        data = b["stats"].get("data")
        assert info["p50_s"] == pytest.approx(b["stats"]["median"], rel=1e-12)
        assert info["p90_s"] >= info["p50_s"] and info["p99_s"] >= info["p90_s"]
        assert info["fps"] == pytest.approx(batch / b["stats"]["median"], rel=1e-12)
        if data:
            assert info["p99_s"] == pytest.approx(float(np.percentile(data, 99)))
        assert info["threads"] == 2, "--threads reaches every timing, torch and ONNX Runtime alike"
        if runtime == "onnxruntime":
            assert info["provider"] == "CPUExecutionProvider"
    assert (
        bench["machine_info"]["slimbench"]["threads"] == [2]
        and bench["machine_info"]["slimbench"]["available_cpus"] >= 1
    )

    doc = json.loads((reports / "summary.json").read_text())
    assert doc["environment"]["threads"] == [2] and doc["environment"]["available_cpus"] >= 1
    rows = doc["deployment"]
    assert {r["threads"] for r in rows} == {2}
    assert {(r["variant"], r["runtime"], r["batch"]) for r in rows} == set(forward)
    for r in rows:
        b = forward[r["variant"], r["runtime"], r["batch"]]
        assert r["median_ms"] == pytest.approx(b["stats"]["median"] * 1e3, rel=1e-12)
        assert r["peak_rss_mb"] > 0 and r["inference_mb"] is not None and r["p99_ms"] >= r["median_ms"]
        assert (r["speed_ratio"] is None) == (r["variant"] == "original")
    torch_rss = {r["peak_rss_mb"] for r in rows if r["runtime"] == "torch"}
    ort_rss = {r["peak_rss_mb"] for r in rows if r["runtime"] == "onnxruntime"}
    assert max(ort_rss) < min(torch_rss), "the ONNX Runtime process holds no torch"
    main = {r["variant"]: r for r in doc["rows"]}
    assert main["pruned"]["onnx_size_mb"] < main["original"]["onnx_size_mb"]
    assert main["pruned"]["onnx_parity_max_abs_diff"] < 1e-3
    assert main["pruned"]["latency_ms[ort-cpu-b1-t2]"] > 0 and main["pruned"]["speed_ratio[ort-cpu-b2-t2]"] > 0
    assert main["pruned"]["peak_rss_mb[ort-cpu-b2-t2]"] > 0
    assert doc["variants"]["pruned"]["parity"]["images"]["noise"]["recall"] == 1.0
    page = (reports / "report.html").read_text()
    assert 'id="slimbench-deployment"' in page and 'data-chart="speedup"' in page
    assert '<td data-key="runtime">onnxruntime</td>' in page and '<td data-key="runtime">torch</td>' in page

    baseline = json.loads((suite.path / "baseline.json").read_text())
    metrics = baseline["variants"]["pruned"]["metrics"]
    assert {"onnx_params", "onnx_weights_mb"} <= set(metrics)
    assert not [m for m in metrics if m.startswith(("peak_rss_mb", "inference_mb"))], "memory is reported, not stored"

    # a baseline written before the deployment figures existed: they are "new", not failures
    for entry in baseline["variants"].values():
        entry["metrics"] = {k: v for k, v in entry["metrics"].items() if k.split("[")[0] not in DEPLOYMENT}
    (suite.path / "baseline.json").write_text(json.dumps(baseline))
    calls = []
    real = export._run_exporter
    suite_monkey = pytest.MonkeyPatch()
    suite_monkey.setattr(export, "_run_exporter", lambda *a, **k: calls.append(a) or real(*a, **k))
    try:
        again = run(suite, "--benchmark-disable", "-k", "parity or memory or baseline")
    finally:
        suite_monkey.undo()
    assert again.ret == 0, again.stdout.str()
    assert calls == [], "the second run reuses the cached exports"
    doc = json.loads((reports / "summary.json").read_text())
    assert {doc["variants"][n]["deployment"]["export_built"] for n in ("original", "pruned")} == {False}


def test_onnxruntime_missing_gives_skips_with_the_reason(suite, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    # an ONNX Runtime limit is configured: the run stops at start with one line instead of skipping it green
    stopped = run(suite, "--benchmark-disable")
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR
    assert "thresholds.pruned.max_ort_speed_ratio is set but cannot be measured in this run: onnxruntime not " in (
        stopped.stderr.str()
    )
    no_ort_limit = {"pruned": {k: v for k, v in THRESHOLDS["pruned"].items() if k != "max_ort_speed_ratio"}}
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(suite.path / "suite.toml", variants, "original", SETTINGS, no_ort_limit)
    result = run(suite, "--benchmark-disable", "-rs", "-k", "forward or ratio or parity or memory", "--batch", "1")
    out = result.stdout.str()
    assert result.ret == 0, out
    # skipped: forward x2, speed ratio x1, parity x2, memory x2 (ort); torch: forward x2, ratio x1, memory x2
    result.assert_outcomes(passed=5, skipped=7)
    assert out.count("onnxruntime not installed") >= 1 and "SKIPPED [" in out


def test_a_failed_export_is_named_and_the_others_still_run(suite, monkeypatch):
    from slimbench.core.errors import SlimbenchError

    real = export._run_exporter

    def fail_pruned(model, tmp, imgsz, dynamic, simplify, name):
        if name == "pruned":
            raise SlimbenchError("pruned: ONNX export failed (ValueError: operator not supported)")
        return real(model, tmp, imgsz, dynamic, simplify, name)

    monkeypatch.setattr(export, "_run_exporter", fail_pruned)
    result = run(suite, "--benchmark-disable", "-k", "forward or parity", "--batch", "1", "--runtime", "ort,torch")
    out = result.stdout.str()
    result.assert_outcomes(passed=4, failed=2)  # pruned: forward (ort) and parity; the original and torch pass
    assert out.count("pruned: ONNX export failed (ValueError: operator not supported)") >= 2
    assert "FAILED benchmarks/test_deployment.py::test_onnx_parity[pruned]" in out
    assert "FAILED benchmarks/test_speed.py::test_forward[pruned-cpu-b1-t1-ort]" in out
    assert "Traceback" not in out


def test_memory_is_gated_as_a_ratio_to_the_reference_in_the_same_run(suite):
    """A larger candidate breaks max_memory_ratio; a smaller one passes it (inference memory, same run)."""
    settings = {**SETTINGS, "imgsz": 320, "batch": [4], "runtime": ["torch"]}  # activations large enough to count
    variants = {"small": "pruned.pt", "large": "original.pt"}
    tiny_models.write_suite(
        suite.path / "suite.toml", variants, "small", settings, {"large": {"max_memory_ratio": 1.0}}
    )
    result = run(suite, "--benchmark-disable", "-k", "test_peak_memory")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert "large: memory ratio (torch, cpu, batch 4, 1 threads) 1." in out and "> max 1.000 (inference memory" in out
    assert "MB of small, same run)" in out

    variants = {"large": "original.pt", "small": "pruned.pt"}
    tiny_models.write_suite(
        suite.path / "suite.toml", variants, "large", settings, {"small": {"max_memory_ratio": 1.0}}
    )
    result = run(suite, "--benchmark-disable", "-k", "test_peak_memory")
    result.assert_outcomes(passed=2)
    doc = json.loads((suite.path / "reports" / "summary.json").read_text())
    ratio = doc["variants"]["small"]["memory_ratio"]["cpu-b4-t1-320"]
    assert 0 < ratio["ratio"] < 1.0 and ratio["unit"] == "inference memory"
    assert [r["memory_ratio"] for r in doc["deployment"] if r["variant"] == "small"] == [ratio["ratio"]]
