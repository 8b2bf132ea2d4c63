"""The benchmark suite end to end, run by pytester on tiny temp variants: it passes, it fails on a broken limit
with a message naming variant, metric, value and limit, and every bad input stops it with one line before any
test runs and before any report is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_models
import torch

from slimbench.model.checkpoint import save_detector, sha256_of

# torch only and no memory subprocesses here: fast, and no in-process export (the ONNX Runtime path, parity and
# memory run end to end in test_deployment_pytester.py); their tests are skipped with the reason
SETTINGS = {**tiny_models.SUITE_SETTINGS, "runtime": ["torch"], "memory": False}
THRESHOLDS = {
    "pruned": {
        "max_size_mb": 3.0,
        "max_size_ratio": 0.5,
        "max_params_ratio": 0.5,
        "max_gflops_ratio": 0.5,
        "min_channels_removed_pct": 30,
        "max_zeroed_channels": 0,
        "max_speed_ratio": 10.0,  # measured and gated, loose enough never to flake on a shared CPU
    },
    "copy": {
        "min_count_ratio": 1.0,
        "max_count_ratio": 1.0,
        "min_agreement_recall": 0.99,
        "min_agreement_precision": 0.99,
        "max_zeroed_channels": 0,
    },
}
REPORTS = ("--junitxml=out/junit.xml", "--html=out/report.html", "--benchmark-json=out/bench.json")


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    """bench_dir with the tiny checkpoints and a passing suite.toml."""
    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned, tiny.copy, tiny.masked, tiny.blind, tiny.scene)
    write_toml(bench_dir.path / "suite.toml")
    return bench_dir


def write_toml(path: Path, variants: dict | None = None, thresholds: dict | None = None, **settings) -> Path:
    return tiny_models.write_suite(
        path,
        variants or {"original": "original.pt", "pruned": "pruned.pt", "copy": "copy.pt"},
        "original",
        {**SETTINGS, **settings},
        THRESHOLDS if thresholds is None else thresholds,
    )


run = tiny_models.run_suite  # every test of benchmarks/ with --variants-file suite.toml (or toml=...)
files_under = tiny_models.files_under


def test_suite_passes_on_good_variants(suite):
    result = run(suite, "--benchmark-min-rounds=2", "--benchmark-max-time=0.01", "-rs", "--update-baseline", *REPORTS)
    # skipped: copy has no max_speed_ratio; mAP x3 (the tiny variants' classes are not the default dataset's)
    # skipped also: test_onnx_parity x3 (onnxruntime not in settings.runtime), test_peak_memory x3 (memory = false)
    # test_baseline x3 pass: --update-baseline creates the baseline; test_attribution x3 (torch, batch 1)
    result.assert_outcomes(passed=33, skipped=10)
    assert result.ret == 0
    out = result.stdout.str()
    assert "copy: no max_speed_ratio in the config" in out
    assert "static figures (GFLOPs at 64x64" in out and "speed ratio vs original" in out
    assert "benchmark 'forward-cpu-b1-t1-64': 3 tests" in out and "benchmark 'predict-cpu-t1-64': 3 tests" in out
    bench = json.loads((suite.path / "out/bench.json").read_text())
    forward = {b["extra_info"]["variant"]: b["extra_info"] for b in bench["benchmarks"] if b["group"].startswith("fo")}
    assert forward["original"]["speedup_from_medians"] == 1.0
    assert forward["pruned"]["params"] < forward["original"]["params"]
    assert forward["pruned"]["speedup_from_medians"] > 0 and forward["pruned"]["stored_dtype"] == "float16"
    assert {"gflops", "dtype", "batch", "device", "imgsz"} <= forward["pruned"].keys()


def test_suite_fails_when_a_variant_breaks_its_limits(suite):
    # the original registered as "pruned", one that detects nothing as "copy", and a mask-only variant
    thresholds = {**THRESHOLDS, "masked": {"max_zeroed_channels": 0}}
    variants = {"original": "original.pt", "pruned": "original.pt", "copy": "blind.pt", "masked": "masked.pt"}
    write_toml(suite.path / "broken.toml", variants, thresholds)
    result = run(suite, "--benchmark-disable", toml="broken.toml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "pruned: params ratio 1.000 > max 0.500 (3,011,238 vs 3,011,238 of original)" in out
    assert "pruned: channels removed 0.0% < min 30.0%" in out
    assert "pruned: GFLOPs ratio 1.000 > max 0.500" in out
    assert "pruned: file size 6.20 MB > max 3.00 MB (as stored, float16)" in out
    assert "copy on scene: agreement recall 0.000 < min 0.990 (0 of " in out  # found none: 0 of N, not n/a
    assert "copy on scene: agreement precision n/a (0 detections), min 0.990 (0 of 0 boxes" in out
    assert "copy on scene: detection count ratio 0.000 < min 1.000 (0 vs " in out
    assert f"masked: zeroed channels {suite_masked(suite):,} > max 0 (all-zero output channels: mask-only" in out
    assert "Traceback" not in out


def suite_masked(suite: pytest.Pytester) -> int:
    from slimbench.model.checkpoint import load_detector
    from slimbench.model.static_metrics import total_zeroed_channels

    return total_zeroed_channels(load_detector(suite.path / "masked.pt"))


def test_smoke_mode_runs_everything_once(suite):
    write_toml(suite.path / "suite.toml", batch=[1, 2], speed_pairs=50)
    result = run(suite, "--slimbench-smoke", "-rs", "--update-baseline")
    # mAP x3, parity x3 and memory x3 skipped, as above; test_baseline x3 (creates it); test_attribution x3
    result.assert_outcomes(passed=32, skipped=11)
    out = result.stdout.str()
    assert "smoke mode: speed ratio" in out and "from 2 pairs, not gated" in out
    assert "-b2" not in out, "smoke mode times the first batch size only"
    assert "benchmark 'forward" not in out, "benchmarks disabled: one call each, no tables"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "missing.pt: checkpoint not found"),
        ("truncated", "truncated.pt: not a loadable ultralytics checkpoint"),
        ("classifier", "classifier.pt: not a detection model (holds ClassificationModel)"),
        ("plain-dict", "plain-dict.pt: not a loadable ultralytics checkpoint"),
        ("sha-mismatch", "pruned.pt: sha256 mismatch"),
        ("bad-image", "bad.jpg: image does not decode"),
        ("malformed-toml", "broken.toml: malformed TOML"),
        ("unknown-key", "broken.toml: thresholds.pruned.max_parms: unknown key"),
        ("unknown-reference", "--reference 'nope': unknown variant (variants: original, pruned, copy)"),
        ("bad-batch", "--batch '0': expected comma-separated integers >= 1"),
    ],
)
def test_bad_input_stops_with_one_line_and_writes_nothing(suite, case, expected):
    p = suite.path
    args: list[str] = []
    toml = "suite.toml"
    if case == "missing":
        args = ["--variant", "pruned=missing.pt"]
    elif case == "truncated":
        data = (p / "pruned.pt").read_bytes()
        (p / "truncated.pt").write_bytes(data[: len(data) // 2])
        args = ["--variant", "pruned=truncated.pt"]
    elif case == "classifier":
        from ultralytics.nn.tasks import ClassificationModel

        save_detector(ClassificationModel("yolov8n-cls.yaml", nc=2, verbose=False), p / "classifier.pt")
        args = ["--variant", "pruned=classifier.pt"]
    elif case == "plain-dict":
        torch.save({"model": "not a module"}, p / "plain-dict.pt")
        args = ["--variant", "pruned=plain-dict.pt"]
    elif case == "sha-mismatch":
        pinned = {"original": ("original.pt", sha256_of(p / "original.pt")), "pruned": ("pruned.pt", "0" * 64)}
        write_toml(p / "suite.toml", {**pinned, "copy": "copy.pt"})
    elif case == "bad-image":
        (p / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        args = ["--image", "bad.jpg"]
    elif case == "malformed-toml":
        (p / "broken.toml").write_text('reference = "original"\n[variants.original\npath = "original.pt"\n')
        toml = "broken.toml"
    elif case == "unknown-key":
        write_toml(p / "broken.toml", thresholds={"pruned": {"max_parms": 1}})
        toml = "broken.toml"
    elif case == "unknown-reference":
        args = ["--reference", "nope"]
    elif case == "bad-batch":
        args = ["--batch", "0"]

    before = files_under(p)
    result = run(
        suite, *args, *REPORTS, "--benchmark-autosave", "--benchmark-storage=file://bstore", toml=toml, cache=True
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.lines
    assert errors[0].startswith("ERROR: slimbench: ") and expected in errors[0]
    everything = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in everything and "benchmarks/test_" not in everything and "collected" not in everything
    assert files_under(p) == before, "nothing written: no report, benchmark storage or .pytest_cache"
    if case == "sha-mismatch":
        assert "refusing to unpickle" in errors[0]


def test_plugin_is_dormant_outside_a_suite(pytester):
    """Other test suites in the same environment: no checkpoints demanded, and their own --device is theirs."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--device", default="mine")

        @pytest.fixture
        def device(request):
            return request.config.getoption("device")
        """
    )
    pytester.makepyfile("def test_it(device):\n    assert device == 'mine'\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_candidate_that_finds_nothing_has_undefined_precision_and_no_baseline_records_a_failed_run(suite):
    variants = {"original": "original.pt", "blind": "blind.pt"}
    write_toml(suite.path / "blind.toml", variants, {"blind": {"min_agreement_precision": 0.5}})
    baseline = suite.path / "baseline.json"

    result = run(suite, "--benchmark-disable", "--update-baseline", toml="blind.toml")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "blind on scene: agreement precision n/a (0 detections), min 0.500 (0 of 0 boxes also in original)" in out
    assert f"baseline {baseline}: not updated: 1 check(s) failed in this run" in out
    assert not baseline.exists(), "a run whose gates failed writes no baseline unless asked"

    result = run(  # the despite-failures flag alone asks for the update
        suite,
        "--benchmark-disable",
        "--update-baseline-despite-failures",
        *REPORTS,
        toml="blind.toml",
    )
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert f"baseline {baseline}: written despite 1 failed check(s), as asked" in out
    assert "recall 0.000  precision n/a (0 detections)" in out  # the terminal summary: 0 of N found, 0 of 0 kept
    metrics = json.loads(baseline.read_text())["variants"]["blind"]["metrics"]
    assert (metrics["agreement_recall[scene]"], metrics["agreement_precision[scene]"]) == (0.0, "n/a (0 detections)")
    doc = json.loads((suite.path / "reports" / "summary.json").read_text())
    row = next(r for r in doc["rows"] if r["variant"] == "blind")
    assert (row["agreement_recall_sample"], row["agreement_precision_sample"]) == (0.0, "n/a (0 detections)")
    assert doc["variants"]["blind"]["agreement"]["scene"]["precision"] == "n/a (0 detections)"
    assert "n/a (0 detections)" in (suite.path / "reports" / "summary.csv").read_text()
    assert ">n/a (0 detections)</td>" in (suite.path / "out" / "report.html").read_text()

    # the stored baseline compares n/a with n/a and 0.0 with 0.0
    result = run(suite, "--benchmark-disable", "-k", "test_baseline", toml="blind.toml")
    assert result.ret == 0, result.stdout.str()


def test_attribution_is_deselected_by_its_marker_and_off_by_its_setting(suite):
    collected = run(suite, "--collect-only", "-q", marks="not attribution")
    out = collected.stdout.str()
    assert collected.ret == 0 and "benchmarks/test_attribution.py" not in out and "(3 deselected)" in out
    write_toml(suite.path / "suite.toml", attribution=False)
    result = run(suite, "-rs", "--slimbench-reports", "out", marks="attribution")
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == 3 and "passed" not in outcomes and "failed" not in outcomes
    assert "settings.attribution = false" in result.stdout.str()
    assert json.loads((suite.path / "out" / "summary.json").read_text())["attribution"] == []
