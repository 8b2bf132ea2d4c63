"""Reports: the HTML report (pytest-html, one self-contained file), benchmark.json, summary.json and summary.csv.

End to end with pytester on tiny variants: every output exists and parses, holds every variant and every chart, and
its figures are the ones the tests measured (recomputed here with model.static_metrics on the same files). Plus the
pieces alone: charts, annotated images, the HTML table, the CI check.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_models

from slimbench.measure.timing import SpeedRatio
from slimbench.report import charts, check, html, images, summary
from slimbench.report.facts import RunFacts
from slimbench.report.rows import DEPLOYMENT_COLUMNS, paired_speedup

# torch only, no memory: the deployment figures' report is in test_deployment_pytester.py
SETTINGS = {**tiny_models.SUITE_SETTINGS, "batch": [1, 2], "runtime": ["torch"], "memory": False}
THRESHOLDS = {"pruned": {"max_params_ratio": 0.5, "max_speed_ratio": 10.0}, "copy": {"min_agreement_recall": 0.99}}
FAST = ("--benchmark-min-rounds=3", "--benchmark-max-time=0.01")
FAKE_ACCURACY = '''
"""Stands in for the accuracy tests: the report shows accuracy figures whenever the session has them."""


def test_zz_fake_accuracy(slimbench, variant):
    for i, key in enumerate(("map50", "map50_95", "precision", "recall")):
        slimbench.record(variant.name, "accuracy", key, 0.5 + 0.1 * i)
'''


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    (bench_dir.path / "benchmarks/test_zz_fake_accuracy.py").write_text(FAKE_ACCURACY)
    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned, tiny.copy, tiny.scene)
    tiny_models.write_suite(
        bench_dir.path / "suite.toml",
        {"original": "original.pt", "pruned": "pruned.pt", "copy": "copy.pt"},
        "original",
        SETTINGS,
        THRESHOLDS,
    )
    return bench_dir


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tiny_models.run_suite(pytester, "--update-baseline", *args, marks="not accuracy")


def test_full_run_writes_every_report_with_the_measured_figures(suite, monkeypatch):
    from ultralytics.engine.results import Results

    def no_plot(*a, **k):
        raise AssertionError("Results.plot draws labels with PIL and may download a font")

    monkeypatch.setattr(Results, "plot", no_plot)
    result = run(suite, *FAST)
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert re.search(r"reports: \S+summary.json, \S+summary.csv and the HTML report section built in [\d.]+ s", out)
    reports = suite.path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["benchmark.json", "report.html", "summary.csv", "summary.json"]
    assert check.problems(reports) == []

    doc = json.loads((reports / "summary.json").read_text())
    assert doc["schema"] == "slimbench-summary" and doc["schema_version"] == 3
    env = doc["environment"]
    for key in ("torch", "ultralytics", "torch-pruning", "cpu", "gpu", "imgsz", "batches", "thresholds_file"):
        assert env[key] not in (None, ""), key
    assert env["imgsz"] == 64 and env["batches"] == [1, 2] and env["thresholds_file"].endswith("suite.toml")
    rows = {r["variant"]: r for r in doc["rows"]}
    assert list(rows) == ["original", "pruned", "copy"] and doc["charts"] == list(summary.CHARTS)
    assert rows["original"]["baseline"] == "written to the baseline"

    # static figures: the same numbers slimbench.model.static_metrics gives on the same files
    from slimbench.model import static_metrics as metrics
    from slimbench.model.checkpoint import load_detector
    from slimbench.model.detections import detect

    counts = {}
    for name in rows:
        path = suite.path / f"{name}.pt"
        model = load_detector(path)
        r = rows[name]
        assert r["params"] == metrics.count_params(model)
        assert r["gflops"] == metrics.gflops(model, 64)
        assert r["file_size_mb"] == metrics.file_size_mb(path)
        assert r["normalized_size_mb"] == metrics.normalized_size_mb(model)
        assert r["zeroed_channels"] == metrics.total_zeroed_channels(model)
        assert r["stored_dtype"] == "float16"
        counts[name] = detect(model, suite.path / "scene.jpg", imgsz=64, conf=0.25, iou=0.7).count
        assert r["detections_per_image"] == counts[name]
        assert doc["images"]["scene"][name] == counts[name]
    ref_channels = metrics.prunable_channels(load_detector(suite.path / "original.pt"))
    pruned_channels = metrics.prunable_channels(load_detector(suite.path / "pruned.pt"))
    assert rows["pruned"]["channels_removed_pct"] == metrics.channels_removed_pct(ref_channels, pruned_channels)
    assert rows["copy"]["agreement_recall_sample"] == 1.0 and rows["original"]["agreement_recall_sample"] == 1.0

    # timings: the forward benchmark's medians as pytest-benchmark wrote them
    bench = json.loads((reports / "benchmark.json").read_text())
    forward = {
        (b["extra_info"]["variant"], b["extra_info"]["batch"]): b["stats"]["median"]
        for b in bench["benchmarks"]
        if b["group"].startswith("forward-")
    }
    assert len(forward) == 6
    assert all(b["options"]["disable_gc"] for b in bench["benchmarks"]), "no collector pause inside a timed round"
    for (name, batch), median in forward.items():
        assert rows[name][f"latency_ms[cpu-b{batch}-t1]"] == pytest.approx(median * 1e3, rel=1e-12)
        assert rows[name][f"fps[cpu-b{batch}-t1]"] == pytest.approx(batch / median, rel=1e-12)
        medians = forward["original", batch] / median
        assert rows[name][f"speedup_medians[cpu-b{batch}-t1]"] == pytest.approx(medians, rel=1e-12)
    ratio = rows["pruned"]["speed_ratio[cpu-b1-t1]"]
    assert 0 < ratio < 10 and rows["original"]["speed_ratio[cpu-b1-t1]"] is None
    # one speedup per cell: 1 / the paired ratio; the reference 1.0; copy (no speed limit, never paired) undefined
    assert rows["pruned"]["speedup[cpu-b1-t1]"] == pytest.approx(1 / ratio, rel=1e-12)
    assert rows["original"]["speedup[cpu-b1-t1]"] == 1.0 and rows["copy"]["speedup[cpu-b1-t1]"] is None
    cell = next(r for r in doc["deployment"] if r["variant"] == "pruned" and r["batch"] == 1)
    assert cell["speedup"] == pytest.approx(1 / cell["speed_ratio"], rel=1e-12) and cell["speed_ratio"] == ratio
    # every paired ratio with its 95% interval (order statistics of its pairs) and the pairs it rests on
    for b in (1, 2):
        paired = doc["variants"]["pruned"]["speed_ratio"][f"cpu-b{b}-t1-64"]
        assert paired["ci_low"] <= paired["median_ratio"] <= paired["ci_high"], paired
        assert paired["pairs"] >= 6 and paired["ci_coverage"] >= 0.95 and paired["decision"] in ("pass", "close")
        assert paired["looks"][-1] == paired["pairs"] and paired["limit"] == 10.0
        lo, hi = paired["ci_ranks"]
        assert lo + hi == paired["pairs"] + 1 and paired["min_ratio"] <= paired["ci_low"]
        row = rows["pruned"]
        assert (row[f"speed_ratio_ci_low[cpu-b{b}-t1]"], row[f"speed_ratio_ci_high[cpu-b{b}-t1]"]) == (
            paired["ci_low"],
            paired["ci_high"],
        )
        assert row[f"speed_pairs[cpu-b{b}-t1]"] == paired["pairs"]
        deployed = next(r for r in doc["deployment"] if r["variant"] == "pruned" and r["batch"] == b)
        assert (deployed["speed_ratio_ci_low"], deployed["speed_pairs"]) == (paired["ci_low"], paired["pairs"])
    check_doc = next(c for c in doc["variants"]["pruned"]["checks"] if c["metric"] == "speed_ratio")
    assert check_doc["decision"] in ("pass", "close") and check_doc["passed"]
    assert "decision" not in next(c for c in doc["variants"]["pruned"]["checks"] if c["metric"] == "params_ratio")
    assert doc["environment"]["speed_pairs"] == 6 and doc["environment"]["speed_pairs_max"] == 61

    # accuracy, when the session has it
    assert [rows[n]["map50"] for n in rows] == [0.5, 0.5, 0.5] and rows["copy"]["recall"] == pytest.approx(0.8)

    # summary.csv: the same table
    frame = pd.read_csv(reports / "summary.csv", keep_default_na=False, na_values=[""])
    assert list(frame.columns) == [c["key"] for c in doc["columns"]]
    for record in frame.to_dict("records"):
        for key, value in rows[record["variant"]].items():
            csv_value = record[key]
            if value is None:
                assert pd.isna(csv_value), key
            elif isinstance(value, (int, float)):
                assert csv_value == pytest.approx(value, rel=1e-15), key
            else:
                assert str(csv_value) == value or (value == "" and pd.isna(csv_value)), key

    # report.html: self-contained, the title, the environment, the table, every chart, the annotated images
    page = (reports / "report.html").read_text()
    assert "<link " not in page and 'src="assets' not in page, "one self-contained file"
    assert '<title id="head-title">slimbench benchmark suite: original vs pruned, copy (suite.toml)</title>' in page
    blob = unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1))
    data = json.loads(blob)
    assert {"torch", "ultralytics", "torch-pruning", "CPU", "GPU", "imgsz", "batches", "thresholds file"} <= set(
        data["environment"]
    )
    for name in rows:
        assert f'data-variant="{name}"' in page
    for chart in summary.CHARTS:
        img = re.search(
            rf'data-chart="{chart}"><img alt="slimbench chart: {chart}" src="data:image/png;base64,([^"]+)"', page
        )
        assert img and base64.b64decode(img.group(1)).startswith(b"\x89PNG"), chart
    assert 'data-image="scene"' in page and "scene: detections per variant (original: " in page
    extras = {
        e["name"] for tests in data["tests"].values() for t in tests for e in t["extras"] if e["format_type"] == "image"
    }
    assert extras == {f"{n} on scene: {counts[n]} detections" for n in rows}
    assert ">mAP50<" in page
    assert '<th data-key="channels_removed_pct">channels removed<small>%</small></th>' in page
    assert doc["tables"]["size"][:3] == ["variant", "file_size_mb", "normalized_size_mb"]
    for table_id in ("slimbench-verdicts", "slimbench-gates", "slimbench-size", "slimbench-speed-cells"):
        assert f'id="{table_id}"' in page, table_id
    assert [v["variant"] for v in doc["verdicts"]] == ["pruned", "copy"]
    b1 = doc["variants"]["pruned"]["speed_ratio"]["cpu-b1-t1-64"]
    paired_text = f"{ratio:.2f} [{b1['ci_low']:.2f}, {b1['ci_high']:.2f}], {b1['pairs']} pairs"
    if b1["decision"] == "close":  # a limit of 10 is far: only an interval reaching 9.5 would read close
        paired_text = f"close: median {ratio:.2f}, interval [{b1['ci_low']:.2f}, {b1['ci_high']:.2f}]"
    assert "x smaller" in doc["verdicts"][0]["line"] and f"{1 / ratio:.2f}x faster torch b1 t1 (paired: " in page
    assert paired_text in doc["verdicts"][0]["line"] and doc["verdicts"][0]["speed_ratio"]["cpu-b1-t1"]["pairs"] >= 6
    cell_text = f"{ratio:.3f} [{b1['ci_low']:.3f}, {b1['ci_high']:.3f}], {b1['pairs']} pairs"
    assert f'data-key="speed_ratio">{cell_text}</td>' in page, "the speed table's cell: median [interval], pairs"
    assert doc["verdicts"][1]["faster_from"]["torch b1 t1"] == "medians", "copy was never timed in pairs"
    assert "faster torch b1 t1 (from medians, not paired)" in doc["verdicts"][1]["line"]
    # where the time goes: one entry per variant (torch, batch 1), each candidate against the reference's layers
    entries = {e["variant"]: e for e in doc["attribution"]}
    assert list(entries) == ["original", "pruned", "copy"]
    assert entries["original"]["reference"] is None and entries["pruned"]["reference"] == "original"
    for name, e in entries.items():
        assert e["cell"] == "cpu-b1-t1" and e["batch"] == 1 and e["runtime"] == "torch"
        assert sum(r["ms"] for r in e["rows"]) == pytest.approx(e["total_ms"], rel=1e-9), name
        assert [r["key"] for r in e["rows"] if r["kind"] == "fixed"] == ["22.dfl", "22.decode"]
        assert doc["variants"][name]["attribution"]["cpu-b1-t1-64"]["total_ms"] == e["total_ms"]
    pruned = {r["key"]: r for r in entries["pruned"]["rows"]}
    assert pruned["2"]["gflops_ratio"] < 1 and pruned["22.dfl"]["gflops_ratio"] == 1.0
    assert 'id="slimbench-attribution"' in page and 'id="slimbench-attribution-pruned-cpu-b1-t1"' in page
    assert "where the time goes (batch 1" in out
    speed = page.split('id="slimbench-speed-cells"')[1].split("</thead>")[0]
    assert speed.count('data-key="speedup') == 1 and '<th data-key="speedup">speedup<small>x, 1 / paired' in speed
    assert len(re.findall(r'data-chart="[^"]*speedup', page)) == 1, "one speedup chart"


def test_smoke_run_writes_the_report_and_summaries(suite):
    result = run(suite, "--slimbench-smoke")
    assert result.ret == 0, result.stdout.str()
    reports = suite.path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["report.html", "summary.csv", "summary.json"]
    assert check.problems(reports) == []
    doc = json.loads((reports / "summary.json").read_text())
    assert doc["environment"]["smoke"] is True and doc["outputs"]["benchmark_json"] is None
    assert not any(k.startswith("latency_ms") for k in doc["rows"][0]), "no benchmark rounds in smoke mode"
    assert "Smoke mode: benchmarks disabled" in (reports / "report.html").read_text()


def test_the_users_paths_win_and_none_writes_nothing(suite):
    result = run(suite, "--benchmark-disable", "--html=out/r.html", "-k", "static")
    assert result.ret == 0
    assert (suite.path / "out/r.html").is_file() and 'id="slimbench"' in (suite.path / "out/r.html").read_text()
    assert sorted(p.name for p in (suite.path / "reports").iterdir()) == ["summary.csv", "summary.json"]
    shutil.rmtree(suite.path / "reports")
    assert run(suite, "--benchmark-disable", "--slimbench-reports", "none", "-k", "static").ret == 0
    assert not (suite.path / "reports").exists()
    assert run(suite, "--collect-only", "-q").ret == 0
    assert not (suite.path / "reports/summary.json").exists() and not (suite.path / "baseline.json").exists()


def swap_pruned(suite: pytest.Pytester) -> None:
    """The config's pruned variant swapped for the original, its limits kept (a --variant would drop them)."""
    variants = {"original": "original.pt", "pruned": "original.pt", "copy": "copy.pt"}
    tiny_models.write_suite(suite.path / "suite.toml", variants, "original", SETTINGS, THRESHOLDS)


def test_failures_are_flagged_in_the_table(suite):
    swap_pruned(suite)
    result = run(suite, "--benchmark-disable", "-k", "static or detections")
    assert result.ret == 1
    doc = json.loads((suite.path / "reports/summary.json").read_text())
    assert doc["regressions"] == {"pruned": ["params", "variant"]}
    row = next(r for r in doc["rows"] if r["variant"] == "pruned")
    assert row["failed_checks"] == "params ratio"
    verdict = next(v for v in doc["verdicts"] if v["variant"] == "pruned")
    assert verdict["gates_failed"] == 1 and verdict["first_failure"].startswith("pruned: params ratio 1.000 > max")
    assert verdict["smaller"] == pytest.approx(1.0) and "1.00x smaller" in verdict["line"]
    assert "mAP50-95 n/a (not measured)" in verdict["line"]
    page = (suite.path / "reports/report.html").read_text()
    assert re.search(
        r'<tr class="sb-regressed" data-variant="pruned">.*?<td class="sb-num sb-bad" data-key="params">', page
    )
    assert "<li>pruned: params ratio 1.000 &gt; max 0.500" in page
    assert "test_params" not in page.split('id="slimbench"')[1].split("</div>")[0], "no test names in the section"


def test_a_renamed_copy_of_the_suite_reports_the_same(suite):
    """The report reads the checks the library recorded, not test names: renamed files and functions change nothing."""
    swap_pruned(suite)
    args = ("--benchmark-disable", "-k", "static or shape or detections")
    assert run(suite, *args).ret == 1
    before = json.loads((suite.path / "reports/summary.json").read_text())
    static = suite.path / "benchmarks/test_static.py"
    text = static.read_text().replace("def test_params(", "def test_parameter_count(")
    (suite.path / "benchmarks/test_shape.py").write_text(text.replace("def test_size(", "def test_bytes("))
    static.unlink()
    assert run(suite, *args).ret == 1
    after = json.loads((suite.path / "reports/summary.json").read_text())
    for key in ("columns", "rows", "regressions", "verdicts", "tables"):
        assert after[key] == before[key], key
    assert {n: f.get("checks") for n, f in after["variants"].items()} == {
        n: f.get("checks") for n, f in before["variants"].items()
    }


# ---------------------------------------------------------------- the pieces alone


def fake_summary(with_timings: bool = True) -> dict:
    cols = [{"key": k, "label": k, "unit": "", "better": ""} for k in ("variant", "file_size_mb", "params", "gflops")]
    rows = [
        {"variant": "original", "file_size_mb": 6.2, "normalized_size_mb": 6.0, "params": 3_000_000, "gflops": 8.2},
        {"variant": "pruned", "file_size_mb": 2.0, "normalized_size_mb": 1.9, "params": 1_000_000, "gflops": 3.0},
    ]
    if with_timings:
        cols += [{"key": k, "label": k, "unit": "", "better": ""} for k in ("fps[cpu-b1-t1]", "speedup[cpu-b1-t1]")]
        cols.append({"key": "speed_ratio[cpu-b1-t1]", "label": "", "unit": "", "better": ""})
        rows[0].update({"fps[cpu-b1-t1]": 10.0, "speedup[cpu-b1-t1]": 1.0, "speed_ratio[cpu-b1-t1]": None})
        rows[1].update({"fps[cpu-b1-t1]": 20.0, "speedup[cpu-b1-t1]": 2.0, "speed_ratio[cpu-b1-t1]": 0.5})
    cell = {"runtime": "torch", "device": "cpu", "batch": 1, "threads": 1}
    deployment = [
        {**cell, "variant": "original", "speed_ratio": None, "speedup": 1.0, "speedup_medians": 1.0},
        {**cell, "variant": "pruned", "speed_ratio": 0.5, "speedup": 2.0, "speedup_medians": 1.6},
    ]
    doc = {"rows": rows, "columns": cols, "reference": "original", "environment": {"imgsz": 640}}
    return {**doc, "deployment": deployment if with_timings else []}


@pytest.mark.parametrize("with_timings", [True, False])
def test_every_chart_renders(with_timings):
    rounds = {"cpu-b1-t1": {"original": [0.010, 0.011, 0.012], "pruned": [0.005, 0.006]}} if with_timings else {}
    pngs = charts.render_all(fake_summary(with_timings), rounds)
    assert list(pngs) == list(summary.CHARTS)
    for name, png in pngs.items():
        assert png.startswith(b"\x89PNG") and len(png) > 2000, name


def paired_run(tmp_path: Path, max_speed_ratio: float | None = None):
    """A session holding what the speed tests record: forward medians in a torch and an ort cell, and one paired
    ratio (pruned, torch). copy has no speed limit, so it is never paired."""
    from slimbench.bench.checks import record_forward
    from slimbench.bench.session import SuiteSession
    from slimbench.config.suite import config_from_dict

    names = ("original", "pruned", "copy")
    data = {"reference": "original", "variants": {n: {"path": f"{n}.pt"} for n in names}}
    if max_speed_ratio is not None:
        data["thresholds"] = {"pruned": {"max_speed_ratio": max_speed_ratio}}
    session = SuiteSession(config_from_dict(data, tmp_path))
    for key, medians in (("cpu-b1-t2-640", (0.100, 0.040, 0.090)), ("ort-cpu-b1-t2-640", (0.080, 0.050, None))):
        runtime = "onnxruntime" if key.startswith("ort") else "torch"
        for name, median in zip(names, medians, strict=True):
            if median is not None:
                record_forward(session, name, key, [median] * 3, 1, runtime)
    session.figures["pruned"].speed_ratio["cpu-b1-t2-640"] = SpeedRatio(0.308, [0.308] * 9)
    return session


def test_a_paired_cell_shows_one_speedup_and_it_is_the_paired_one(tmp_path):
    session = paired_run(tmp_path)
    doc = summary.build(session, RunFacts(), {"imgsz": 640})
    rows = {r["variant"]: r for r in doc["rows"]}
    assert rows["pruned"]["speedup[cpu-b1-t2]"] == pytest.approx(1 / 0.308, rel=1e-12)  # not the medians' 2.5
    assert rows["pruned"]["speedup_medians[cpu-b1-t2]"] == pytest.approx(2.5)
    assert rows["original"]["speedup[cpu-b1-t2]"] == 1.0, "the reference is 1.0 where its candidates were paired"
    assert rows["copy"]["speedup[cpu-b1-t2]"] is None and rows["copy"]["speedup_medians[cpu-b1-t2]"] == pytest.approx(
        0.1 / 0.09
    )
    labels = {c["key"]: c["label"] for c in doc["columns"]}
    assert labels["speedup[cpu-b1-t2]"] == "speedup (paired) cpu-b1-t2"
    assert labels["speedup_medians[cpu-b1-t2]"] == "speedup from medians (not paired) cpu-b1-t2"
    assert "speedup[ort-cpu-b1-t2]" not in labels, "no pair was timed in the ort cell"

    cells = {(r["variant"], r["runtime"]): r for r in doc["deployment"]}
    assert cells["pruned", "torch"]["speedup"] == pytest.approx(1 / 0.308, rel=1e-12)
    assert cells["pruned", "torch"]["speedup_medians"] == pytest.approx(2.5)
    assert cells["original", "torch"]["speedup"] == 1.0 and cells["copy", "torch"]["speedup"] is None
    assert cells["pruned", "onnxruntime"]["speedup"] is None and cells["original", "onnxruntime"]["speedup"] is None
    assert cells["pruned", "onnxruntime"]["speedup_medians"] == pytest.approx(0.08 / 0.05)

    pruned, copy = doc["verdicts"]
    assert pruned["faster"] == {"torch b1 t2": pytest.approx(1 / 0.308), "ort b1 t2": pytest.approx(1.6)}
    assert pruned["faster_from"] == {"torch b1 t2": "paired", "ort b1 t2": "medians"}
    assert (
        "3.25x faster torch b1 t2 (paired: 0.31 [0.31, 0.31], 9 pairs), 1.60x faster ort b1 t2 (from medians, not "
        "paired)" in pruned["line"]
    )
    assert copy["faster"]["ort b1 t2"] is None and "n/a (not measured) faster ort b1 t2" in copy["line"]

    assert charts.speedup_series(doc["deployment"], "original") == {
        "torch b1 t2\npaired": {"original": 1.0, "pruned": pytest.approx(1 / 0.308)},
        "torch b1 t2\nmedians": {"original": 1.0, "copy": pytest.approx(0.1 / 0.09)},
        "ort b1 t2\nmedians": {"original": 1.0, "pruned": pytest.approx(1.6)},
    }
    assert [c for c in summary.CHARTS if "speedup" in c] == ["speedup"], "one speedup chart"
    assert [c for c in charts.render_all(doc, {}) if "speedup" in c] == ["speedup"]


def test_the_speed_table_shows_the_paired_speedup_only_and_flags_it_with_its_ratio(tmp_path):
    session = paired_run(tmp_path, max_speed_ratio=0.25)
    assert session.judge("pruned", "speed_ratio", 0.308, cell="cpu-b1-t2-640"), "0.308 > max 0.25: a failed gate"
    doc = summary.build(session, RunFacts(), {"imgsz": 640})
    formats = {c.key: c.fmt for c in DEPLOYMENT_COLUMNS}
    page = html.cell_table(doc, "speed", formats)
    head = page.split("</thead>")[0]
    assert re.findall(r'<th data-key="(speed[^"]*)"', head) == ["speed_ratio", "speedup"]
    assert '<td class="sb-num sb-bad" data-key="speedup">3.25</td>' in page and ">2.50<" not in page
    assert '<td class="sb-bad" data-key="speed_ratio">0.308 [0.308, 0.308], 9 pairs</td>' in page
    assert '<td class="sb-num" data-key="speedup">1.00</td>' in page, "the reference's, not flagged"


def test_a_close_speed_verdict_is_never_a_plain_pass(tmp_path):
    """The gate's close pass: counted as passed, but the check's message, the verdict line, the speed table and
    summary.json all say close, with the median and its interval."""
    import dataclasses

    session = paired_run(tmp_path, max_speed_ratio=0.5)
    ratios = [0.44, 0.46, 0.47, 0.48, 0.49, 0.51, 0.52, 0.53, 0.54] * 6 + [0.49] * 7  # [0.48, 0.51] at 61 pairs
    close = dataclasses.replace(SpeedRatio.from_ratios(ratios), decision="close", limit=0.5, looks=(9, 17, 61))
    session.figures["pruned"].speed_ratio["cpu-b1-t2-640"] = close
    note = "close: median 0.490, interval [0.480, 0.510] straddles the limit, 61 pairs"
    assert session.judge("pruned", "speed_ratio", close.median, cell="cpu-b1-t2-640", note=note, decision="close") == []
    check = session.figures["pruned"].checks[-1]
    assert check.passed and check.decision == "close"
    assert check.message == f"pruned: speed ratio 0.490 <= max 0.500 ({note})", "a close pass keeps its line"

    doc = summary.build(session, RunFacts(), {"imgsz": 640})
    pruned = doc["verdicts"][0]
    assert "(paired: close: median 0.49, interval [0.48, 0.51], 61 pairs)" in pruned["line"]
    assert "gates 1 passed (1 close: speed ratio [cpu-b1-t2]), 0 failed" in pruned["line"]
    assert pruned["gates_close"] == ["speed ratio [cpu-b1-t2]"] and pruned["gates_failed"] == 0
    assert pruned["speed_ratio"]["cpu-b1-t2"]["decision"] == "close"
    recorded = doc["variants"]["pruned"]["speed_ratio"]["cpu-b1-t2-640"]
    assert (recorded["decision"], recorded["pairs"], recorded["looks"]) == ("close", 61, [9, 17, 61])
    assert doc["variants"]["pruned"]["checks"][-1]["decision"] == "close"
    page = html.cell_table(doc, "speed", {c.key: c.fmt for c in DEPLOYMENT_COLUMNS})
    assert 'data-key="speed_ratio">close: median 0.490, interval [0.480, 0.510], 61 pairs</td>' in page


def test_a_paired_speedup_is_undefined_only_without_a_ratio():
    assert paired_speedup(0.5) == 2.0
    assert paired_speedup(0.0) is None and paired_speedup(None) is None
    assert paired_speedup("n/a (smoke mode)") is None and paired_speedup(float("nan")) is None


def test_annotate_draws_the_recorded_boxes_offline():
    img = np.full((120, 160, 3), 114, dtype=np.uint8)
    record = {"boxes": [[10, 20, 60, 80]], "class_ids": [1], "confidences": [0.9], "count": 1}
    out = images.annotate(img, record, {1: "circle"})
    assert out.shape == img.shape and not np.array_equal(out, img) and np.array_equal(img, np.full_like(img, 114))
    assert (out[50, 10] != 114).any() and (out[100, 150] == 114).all(), "on the box edge, not elsewhere"
    row = images.side_by_side([("a: 1 detections", out), ("b: 0 detections", img)], height=100)
    assert row.shape == (128, 2 * round(160 * 100 / 120) + 8, 3)
    assert base64.b64decode(images.jpeg_b64(row)).startswith(b"\xff\xd8")


def test_html_table_flags_cells_and_marks_missing_figures():
    doc = {
        "columns": [
            {"key": k, "label": k, "unit": "u" if k == "params" else ""} for k in ("variant", "role", "params")
        ],
        "rows": [
            {"variant": "original", "role": "reference", "params": 3_000_000},
            {"variant": "pruned", "role": "candidate", "params": None},
        ],
        "regressions": {"pruned": ["params", "variant"]},
    }
    page = html.table(doc, {"params": "{:,}"})
    assert '<td class="sb-num" data-key="params">3,000,000</td>' in page
    assert '<tr class="sb-reference" data-variant="original">' in page
    assert '<tr class="sb-regressed" data-variant="pruned">' in page
    assert '<td class="sb-bad" data-key="params">&ndash;</td>' in page
    assert '<th data-key="params">params<small>u</small></th>' in page


def test_summary_json_is_strict_json():
    assert summary._plain({"a": float("nan"), "b": (1, float("inf")), "c": Path("x")}) == {
        "a": None,
        "b": [1, None],
        "c": "x",
    }


def test_check_names_what_is_missing(tmp_path):
    assert check.problems(tmp_path) == [
        f"{tmp_path / n}: missing" for n in ("report.html", "summary.json", "summary.csv")
    ]
    assert check.main([str(tmp_path)]) == 1


def test_a_broken_report_fails_the_run_loudly(suite, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no charts today")

    monkeypatch.setattr(charts, "render_all", broken)
    result = run(suite, "--benchmark-disable", "-k", "static")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert "could not write the reports: RuntimeError: no charts today" in result.stdout.str()
    assert "slimbench could not build its report section" in (suite.path / "reports/report.html").read_text()


def test_the_default_benchmark_json_is_a_path_and_an_open_file(tmp_path):
    """pytest-benchmark 5.2+ opens the path it is given; earlier versions write into an open file: both work."""
    from slimbench.bench.benchmark_bridge import JsonTarget

    target = JsonTarget(tmp_path / "benchmark.json")
    assert not target.path.exists(), "created only when pytest-benchmark writes it"
    with open(target, "wb") as f:
        f.write(b"{}")
    with target as fh:
        fh.write(b'{"benchmarks": []}')
    assert target.path.read_bytes() == b'{"benchmarks": []}' and str(target) == target.name == str(target.path)


def test_the_report_title_names_the_config_as_typed_from_the_working_folder(tmp_path, monkeypatch):
    from slimbench.core.files import shown_path

    config = tmp_path / "fixtures" / "yolo11n" / "slimbench.toml"
    monkeypatch.chdir(tmp_path)
    assert shown_path(config) == str(Path("fixtures") / "yolo11n" / "slimbench.toml")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the working folder: the path as given
    assert shown_path(config) == str(config)
