"""The history of the gated figures (report.history, report.steps, report.history_report) on synthetic stored runs:
the step rule on noisy series, entries read from pytest-benchmark's saved JSON, the summary's ``history`` document,
its HTML block and verdict lines, and the option's bad values."""

from __future__ import annotations

import numpy as np
import pytest

from slimbench.core.errors import SlimbenchError
from slimbench.report import history, history_report
from slimbench.report.options import history_limit
from slimbench.report.steps import newest_step


def noisy(n: int, level: float = 0.3, noise: float = 0.03, seed: int = 0) -> list[float]:
    """A paired speed ratio of ``level`` measured ``n`` times with ``noise`` relative Gaussian spread."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in level * (1 + rng.normal(0, noise, n))]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_step(seed):
    assert newest_step(noisy(20, seed=seed)) is None


@pytest.mark.parametrize("seed", range(5))
def test_a_step_of_30_percent_at_run_7_is_flagged_at_run_7(seed):
    values = noisy(12, seed=seed)
    values[6:] = [v * 1.3 for v in values[6:]]  # run 7 (1-based) on is 30% slower
    step = newest_step(values)
    assert step is not None and step.index == 6
    assert step.change == pytest.approx(0.3, abs=0.06)
    assert step.after > step.before


@pytest.mark.parametrize("where", [0, 5, 11])
def test_a_single_outlier_is_not_a_step(where):
    values = noisy(12, seed=3)
    values[where] *= 2.0
    assert newest_step(values) is None


def test_deterministic_figures_step_exactly_where_they_change_and_the_newest_step_wins():
    params = [100.0] * 5 + [150.0] * 5 + [120.0] * 4
    step = newest_step(params)
    assert step is not None and step.index == 10 and (step.before, step.after) == (150.0, 120.0)
    assert step.spread == 0.0
    assert newest_step([100.0] * 10) is None


def test_a_step_needs_three_runs_on_each_side_and_a_minimum_change():
    assert newest_step([0.3] * 8 + [0.4, 0.4]) is None, "two runs: not told from outliers yet, nor flagged a run early"
    assert newest_step([0.3] * 8 + [0.4] * 3).index == 8
    values = noisy(12, seed=2)
    values[6:] = [v * 1.3 for v in values[6:]]
    values[11] *= 2.0
    assert newest_step(values).index == 6, "an outlier after the step neither hides nor moves it"
    assert newest_step([0.300] * 6 + [0.306] * 6) is None, "2% is below the 5% minimum change"


def stored_run(commit: str, figures: dict, number: int) -> tuple[str, dict]:
    """A saved pytest-benchmark run as ``storage.load()`` gives it, with slimbench's key."""
    data = {
        "commit_info": {"id": commit, "time": f"2026-12-0{1 + number % 9}T10:00:00", "dirty": False, "branch": "main"},
        "datetime": f"2026-12-05T10:{number:02d}:00+00:00",
        "benchmarks": [],
        history.KEY: {"version": 1, "reference": "original", "variants": figures, "sha256": {}},
    }
    return f"{number:04d}_{commit}_20261205_100000.json", data


def figures(ratio: float, params: int = 288_554) -> dict:
    return {
        "original": {"params": 3_011_238, "file_size_mb": 6.2},
        "pruned": {"params": params, "file_size_mb": 0.74, "speed_ratio[cpu-b1-t2]": ratio, "map50_95": 0.81},
    }


def test_entries_from_saved_runs_with_and_without_slimbench_figures():
    name, data = stored_run("abc123", figures(0.3), 1)
    entry = history.stored_entry(name, data)
    assert entry["run"] == "0001_abc123_20261205_100000" and entry["commit"] == "abc123"
    assert entry["variants"]["pruned"]["speed_ratio[cpu-b1-t2]"] == 0.3 and entry["time"].startswith("2026-12-05")
    # saved before slimbench added its key: params and GFLOPs from the forward benchmarks' extra_info
    old = {
        "commit_info": {"id": "old"},
        "benchmarks": [
            {"extra_info": {"variant": "pruned", "params": 10, "gflops": 0.5, "fps": 3.0}},
            {"extra_info": {"variant": "original", "params": 20, "gflops": None}},
        ],
    }
    assert history.stored_entry("0001_old.json", old)["variants"] == {
        "pruned": {"params": 10, "gflops": 0.5},
        "original": {"params": 20},
    }
    assert history.stored_entry("0002_x.json", {"benchmarks": [{"extra_info": {}}]}) is None, "another project's"


def test_figures_of_rows_keep_the_gated_figures_only():
    rows = [
        {
            "variant": "pruned",
            "params": 5,
            "latency_ms[cpu-b1-t1]": 3.0,
            "speed_ratio[cpu-b1-t1]": 0.4,
            "map50_95": "n/a",
        },
        {"variant": "original", "params": 9, "gflops": float("nan")},
    ]
    assert history.figures_of_rows(rows) == {
        "pruned": {"params": 5, "speed_ratio[cpu-b1-t1]": 0.4},
        "original": {"params": 9},
    }


def test_history_document_flags_the_run_where_the_speed_ratio_stepped():
    ratios = noisy(11, seed=1)
    ratios[6:] = [r * 1.3 for r in ratios[6:]]
    stored = [stored_run(f"c{i:03d}", figures(r), i + 1) for i, r in enumerate(ratios)]
    stored.insert(3, ("0099_foreign.json", {"benchmarks": []}))  # another project's run in the same storage
    rows = [{"variant": "pruned", "params": 288_554, "speed_ratio[cpu-b1-t2]": ratios[-1]}]
    current = history.current_entry(rows, "original", {"id": "now123", "dirty": True}, {"pruned": "f" * 64})
    doc = history.build(stored, current, 20, "/store (Linux-CPython-3.11-64bit)")
    assert len(doc["runs"]) == 12 and doc["left_out"] == 1
    assert doc["runs"][-1]["current"] is True and doc["runs"][-1]["commit"] == "now123"
    assert [r["commit"] for r in doc["runs"][:2]] == ["c000", "c001"]
    steps = {(s["variant"], s["figure"]): s for s in doc["steps"]}
    assert set(steps) == {("pruned", "speed_ratio[cpu-b1-t2]")}, "params, sizes and mAP did not move"
    step = steps["pruned", "speed_ratio[cpu-b1-t2]"]
    assert step["commit"] == "c006" and step["run"].startswith("0007_") and not step["current"]
    assert step["label"] == "speed ratio cpu-b1-t2" and step["change"] == pytest.approx(0.3, abs=0.06)
    line = history_report.step_line(step)
    assert line.startswith("history: pruned speed ratio cpu-b1-t2 stepped 0.") and "run 0007_c006" in line
    assert "(commit c006) on" in line and f"({step['change']:+.0%})" in line
    assert doc["rule"] and "run-to-run spread" in doc["rule"]


def test_the_report_block_draws_one_chart_per_figure_and_says_the_step():
    ratios = [0.3] * 4 + [0.45] * 4
    stored = [stored_run(f"c{i}", figures(r), i + 1) for i, r in enumerate(ratios)]
    current = history.current_entry([{"variant": "pruned", "speed_ratio[cpu-b1-t2]": 0.45}], "original", {}, {})
    doc = history.build(stored, current, 20, "store")
    block = history_report.section(doc, "original")
    assert 'id="slimbench-history"' in block and "8 earlier run(s)" in block
    for figure in ("speed_ratio[cpu-b1-t2]", "params", "file_size_mb", "map50_95"):
        assert f'data-chart="history-{figure}"' in block, figure
    assert "stepped 0.300 -&gt; 0.450 (+50%) from run 0005_c4" in block
    assert history_report.step_lines({"history": doc}) == [history_report.step_line(doc["steps"][0])]
    assert history_report.step_lines({"history": None}) == []


def test_the_nms_free_map_has_its_own_chart_where_a_variant_measures_it():
    """YOLO26's NMS-free mAP50-95 (one-to-one head) is a gated figure like mAP50-95: kept per run, charted, labelled;
    a run of a model without that head has no such key, so no chart."""
    rows = [{"variant": "pruned", "map50_95": 0.86, "map50_95_nms_free": 0.85, "map50_nms_free": 0.98}]
    assert history.figures_of_rows(rows) == {"pruned": {"map50_95": 0.86, "map50_95_nms_free": 0.85}}
    figs = {"pruned": {"map50_95": 0.86, "map50_95_nms_free": 0.85}}
    stored = [stored_run(f"c{i}", figs, i + 1) for i in range(3)]
    doc = history.build(stored, history.current_entry(rows, "original", {}, {}), 20, "store")
    assert set(history_report.charts(doc, "original")) == {"history-map50_95", "history-map50_95_nms_free"}
    assert history.label("map50_95_nms_free") == "NMS-free mAP50-95"
    yolov8 = [stored_run(f"c{i}", {"pruned": {"map50_95": 0.86}}, i + 1) for i in range(3)]
    doc = history.build(
        yolov8, history.current_entry([{"variant": "pruned", "map50_95": 0.86}], "original", {}, {}), 20, ""
    )
    assert set(history_report.charts(doc, "original")) == {"history-map50_95"}


def test_a_first_run_has_a_history_of_itself_and_no_step():
    current = history.current_entry([{"variant": "pruned", "params": 3}], "original", {}, {})
    doc = history.build([], current, 20, None)
    assert [r["run"] for r in doc["runs"]] == ["this run"] and doc["steps"] == []
    block = history_report.section(doc, "original")
    assert "0 earlier run(s)" in block and "no step in any figure" in block and "data-chart" not in block


@pytest.mark.parametrize("raw", ["-1", "x", "2.5"])
def test_bad_history_option_is_one_line(raw):
    with pytest.raises(SlimbenchError, match=r"^--slimbench-history .*expected a whole number >= 0"):
        history_limit(raw)
    assert history_limit(" 0 ") == 0 and history_limit(20) == 20
