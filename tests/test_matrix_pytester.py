"""The deployment matrix end to end (pytester, tiny variants at 64 px): ONNX Runtime and OpenVINO in FP32 and INT8,
each cell timed and scored, the matrix in the terminal summary; off (skipped with the reason) without --precision;
a variant that fails to quantize is one line naming it while its FP32 cells and the other variant still run; an
empty calibration folder is one line naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models

from slimbench.runtimes import openvino_runtime as ovr

SETTINGS = {**tiny_models.SUITE_SETTINGS, "images": ["noise.jpg"]}
FAST = ("--benchmark-min-rounds=3", "--benchmark-max-time=0.01")

pytestmark = pytest.mark.skipif(ovr.missing_reason() is not None, reason=str(ovr.missing_reason()))


@pytest.fixture(scope="module")
def imported_once(imported_once, tiny, tmp_path_factory) -> None:
    """Export, quantize and run both runtimes once in this process before the in-process runs (pytester drops
    modules an inner run imported; onnx's protobuf and torch's registrations refuse a second import)."""
    from ultralytics import YOLO

    from slimbench.model.checkpoint import load_detector, sha256_of
    from slimbench.model.detections import detect
    from slimbench.runtimes import export, quantize
    from slimbench.runtimes import onnx_runtime as ort_runtime

    root = tmp_path_factory.mktemp("preimport")
    e = export.export_onnx(load_detector(tiny.pruned), sha256_of(tiny.pruned), 64, root, name="pre")
    q = quantize.quantize_onnx(e.path, e.key, "0" * 64, 64, quantize.calibration_set(tiny.scene), root, name="pre")
    x = np.zeros((1, 3, 64, 64), np.float32)
    ort_runtime.run(ort_runtime.session(q.path, "cpu"), x)
    ovr.run(ovr.compile_model(q.path, "cpu", 1, 1, 64), x)
    detect(YOLO(str(e.path), task="detect"), tiny.scene, imgsz=64)
    detect(load_detector(tiny.original), tiny.scene, imgsz=64)


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    from test_deployment_pytester import write_noise

    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned)
    write_noise(bench_dir.path / "noise.jpg")
    (bench_dir.path / "calib").mkdir()
    for i, size in enumerate((160, 96, 128)):
        tiny_models.write_scene(bench_dir.path / "calib" / f"s{i}.jpg", size)
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(bench_dir.path / "suite.toml", variants, "original", SETTINGS)
    return bench_dir


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tiny_models.run_suite(
        pytester, *FAST, "-rsf", *args, target="benchmarks/test_matrix.py", marks="matrix and not accuracy"
    )


def test_every_cell_is_timed_and_scored(suite):
    result = run(suite, "--precision", "fp32,int8", "--runtime", "torch,onnxruntime,openvino", "--calibration", "calib")
    out = result.stdout.str()
    assert result.ret == 0, out
    result.assert_outcomes(passed=24)  # (latency + vs torch + agreement) x 2 variants x 2 runtimes x 2 precisions
    assert "deployment matrix vs original (INT8: ONNX Runtime static QDQ, MinMax calibration, per-channel" in out
    for cell in ("ort-fp32-cpu-b1-t1", "ort-int8-cpu-b1-t1", "ov-fp32-cpu-b1-t1", "ov-int8-cpu-b1-t1"):
        assert f"pruned      {cell}" in out, cell
    assert "benchmark 'matrix-cpu-b1-t1-64': 8 tests" in out
    report = (suite.path / "reports" / "report.html").read_text()
    assert 'id="slimbench-matrix"' in report and "speedup vs accuracy" in report
    rows = json.loads((suite.path / "reports" / "summary.json").read_text())["matrix"]
    assert {(r["variant"], r["runtime"], r["precision"]) for r in rows} == {
        (v, rt, p) for v in ("original", "pruned") for rt in ("onnxruntime", "openvino") for p in ("fp32", "int8")
    }  # every cell in summary.json too
    for r in rows:  # against the reference in torch FP32, timed in interleaved pairs in every cell
        assert r["speedup_vs_torch_fp32"] > 0 and r["torch_fp32_reference_s"] > 0, r


def test_the_matrix_is_off_without_precision(suite):
    result = suite.runpytest_inprocess(
        "benchmarks", "--variants-file", "suite.toml", "-p", "no:cacheprovider", "-m", "matrix", "--co", "-q"
    )
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED and "test_matrix.py" not in out, out


def test_a_variant_that_fails_to_quantize_is_named_and_the_rest_runs(suite, monkeypatch):
    from slimbench.core.errors import SlimbenchError
    from slimbench.runtimes import quantize

    real = quantize._run_quantizer

    def fails_for_pruned(fp32, tmp, batches, settings, name):
        if name == "pruned":
            raise SlimbenchError("pruned: INT8 quantization failed (RuntimeError: unsupported node)")
        return real(fp32, tmp, batches, settings, name)

    monkeypatch.setattr(quantize, "_run_quantizer", fails_for_pruned)
    result = run(suite, "--precision", "fp32,int8", "--runtime", "onnxruntime", "--calibration", "calib")
    out = result.stdout.str()
    result.assert_outcomes(passed=9, failed=3)  # pruned's INT8 cell: latency, vs torch, agreement
    assert out.count("pruned: INT8 quantization failed (RuntimeError: unsupported node)") >= 3


def test_an_empty_calibration_folder_is_one_line_naming_it(suite):
    (suite.path / "empty").mkdir()
    result = run(suite, "--precision", "int8", "--runtime", "onnxruntime", "--calibration", "empty")
    out = result.stdout.str()
    result.assert_outcomes(failed=6)
    assert f"{suite.path / 'empty'}: no calibration images in the folder" in out
