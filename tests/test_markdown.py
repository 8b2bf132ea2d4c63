"""The markdown verdicts and the github-action-benchmark JSON, from a summary document: the tables render as tables
(python-markdown, GFM tables), the failing gates come first, undefined figures read "n/a", names stay stable and
each figure lands in the file of its direction. The suite writing them end to end: test_markdown_pytester.py."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from typing import Any

import markdown as md
import pytest

from slimbench.cli import main
from slimbench.core.errors import SlimbenchError
from slimbench.report import ci_outputs, dashboard
from slimbench.report.markdown import gate_rows, render
from slimbench.report.summary import SCHEMA, SCHEMA_VERSION


def check(metric, limit, bound, value, passed, cell=None, message=None) -> dict[str, Any]:
    return {
        "metric": metric,
        "cell": cell,
        "limit": limit,
        "bound": bound,
        "value": value,
        "passed": passed,
        "message": message,
    }


SLOW = "pruned: speed ratio cpu-b1-t2 0.912 > max 0.500"


def summary() -> dict[str, Any]:
    """A summary.json (schema 3) of three variants: "pruned" fails its speed ratio and an export, "copy" passes but
    had its agreement limit deselected and found no boxes (precision undefined)."""
    row = {"runtime": "torch", "device": "cpu", "batch": 1, "threads": 2, "p90_ms": None, "p99_ms": None}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-12-05T10:00:00Z",
        "reference": "original",
        "environment": {"cpu": "Test CPU", "threads": [2], "imgsz": 640, "gpu": "none", "smoke": False},
        "columns": [
            {"key": "variant", "label": "variant", "unit": "", "better": ""},
            {"key": "map50_95", "label": "mAP50-95", "unit": "dataset", "better": "higher"},
            {"key": "agreement_precision_sample", "label": "agreement P", "unit": "sample images", "better": "higher"},
        ],
        "rows": [
            {"variant": "original", "role": "reference", "map50_95": 0.8, "agreement_precision_sample": 1.0},
            {"variant": "pruned", "role": "candidate", "map50_95": 0.75, "agreement_precision_sample": 0.9},
            {
                "variant": "copy",
                "role": "candidate",
                "map50_95": None,
                "agreement_precision_sample": "n/a (0 detections)",
            },
        ],
        "tables": {"accuracy": ["variant", "agreement_precision_sample", "map50_95"]},
        "deployment": [
            {**row, "variant": "original", "median_ms": 50.0, "speed_ratio": None, "speedup": 1.0, "rounds": 9},
            {**row, "variant": "pruned", "median_ms": 45.0, "speed_ratio": 0.912, "speedup": 1 / 0.912, "rounds": 9},
            {
                **row,
                "variant": "copy",
                "median_ms": 49.0,
                "speed_ratio": None,
                "speedup": None,
                "speedup_medians": 1.02,
            },
        ],
        "benchmark_regressions": [],
        "verdicts": [
            {
                "variant": "pruned",
                "gates_passed": 2,
                "gates_failed": 2,
                "gates_not_run": [],
                "line": f"pruned: 4.00x smaller; 1.10x faster torch b1 t2 (paired); gates 2 passed, 2 failed; "
                f"first failure: {SLOW}",
            },
            {
                "variant": "copy",
                "gates_passed": 1,
                "gates_failed": 0,
                "gates_not_run": [{"limit": "min_agreement_map50", "reason": "deselected"}],
                "line": "copy: 1.00x smaller; gates 1 passed, 0 failed, 1 not run (deselected: min_agreement_map50)",
            },
        ],
        "variants": {
            "original": {"checks": [check("baseline", None, None, None, True)], "failed_checks": []},
            "pruned": {
                "checks": [
                    check("params_ratio", "max_params_ratio", 0.5, 0.25, True),
                    check("speed_ratio", "max_speed_ratio", 0.5, 0.912, False, "cpu-b1-t2-640", SLOW),
                    check("channels_removed_pct", "min_channels_removed_pct", 30.0, 48.5, True),
                ],
                "failed_checks": [
                    {"variant": "pruned", "key": "cpu-b1-t2-640", "message": SLOW, "when": "call"},
                    {"variant": "pruned", "key": None, "message": "pruned: ONNX export failed", "when": "call"},
                ],
                "speed_ratio": {
                    "cpu-b1-t2-640": {"median_ratio": 0.912, "pairs": 9, "min_ratio": 0.8, "max_ratio": 1.1}
                },
                "accuracy": {"map50_95": 0.75, "map50": 0.9},
            },
            "copy": {
                "checks": [
                    check("count_ratio", "min_count_ratio", 1.0, 1.0, True, "scene"),
                    check("count_ratio", "max_count_ratio", 1.0, 1.0, True, "scene"),
                    check("agreement_precision", "min_agreement_precision", 0.9, "n/a (0 detections)", True, "scene"),
                    check("map50_95_drop", "max_map50_95_drop", 0.01, -0.002, True),
                ],
                "failed_checks": [],
                "accuracy": {"map50_95": "n/a (smoke mode)"},
            },
        },
    }


class Tables(HTMLParser):
    """The tables of an HTML page: rows of cell texts, header row included."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.items: list[str] = []
        self._cell: list[str] | None = None
        self._item: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "li":
            self._item = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._item is not None:
            self.items.append("".join(self._item).strip())
            self._item = None

    def handle_data(self, data: str) -> None:
        for part in (self._cell, self._item):
            if part is not None:
                part.append(data)


def rendered(doc: dict[str, Any]) -> Tables:
    page = Tables()
    page.feed(md.markdown(render(doc), extensions=["tables"]))
    return page


def test_tables_render_with_failures_first():
    page = rendered(summary())
    assert len(page.tables) == 3, "gates, speed, accuracy"
    gates, speed, accuracy = page.tables
    assert gates[0] == ["variant", "gate", "limit", "measured", "result"]
    # 1 baseline + 3 pruned checks + 1 unexplained failure + 4 copy checks + 1 not run
    assert len(gates) == 1 + 10
    results = [r[-1] for r in gates[1:]]
    assert results[:2] == ["FAIL", "FAIL"] and results[2] == "not run (deselected)"
    assert set(results[3:]) == {"pass"}
    assert gates[1][:2] == ["pruned", "speed ratio [cpu-b1-t2]"] and gates[1][2:4] == [
        "max 0.500 (max_speed_ratio)",
        "0.912",
    ]
    assert gates[2][1] == "test failure" and gates[2][3] == "pruned: ONNX export failed"
    assert gates[3][:3] == ["copy", "agreement mAP50", "min_agreement_map50"]
    assert len(speed) == 1 + 2, "one row per candidate and cell, the reference left out"
    assert len(accuracy) == 1 + 3 and accuracy[1][0] == "original (reference)"


def test_verdict_lines_are_the_summarys():
    doc = summary()
    items = rendered(doc).items
    assert items == [f"FAIL {doc['verdicts'][0]['line']}", f"PASS, not all gates ran {doc['verdicts'][1]['line']}"]
    assert render(doc).splitlines()[2].startswith("**FAILED**: 1 of 2 candidate(s) failed a gate (pruned).")


def test_undefined_figures_read_na_never_0_or_1():
    doc = summary()
    _, speed, accuracy = rendered(doc).tables
    head = accuracy[0]
    copy_row = dict(zip(head, accuracy[3], strict=True))
    assert copy_row["mAP50-95 (dataset)"] == "n/a (not measured)"
    assert copy_row["mAP50-95 change vs reference"] == "n/a (not measured)"
    assert copy_row["agreement P (sample images)"] == "n/a (0 detections)"
    pruned_row = dict(zip(head, accuracy[2], strict=True))
    assert pruned_row["mAP50-95 change vs reference"] == "-0.0500"
    assert speed[2][5:7] == ["n/a (not paired)", "1.02x (from medians, not paired)"]
    gates = {(r[0], r[2]): r for r in rendered(doc).tables[0][1:]}
    assert gates[("copy", "min 0.900 (min_agreement_precision)")][3] == "n/a (0 detections)"


def test_names_and_messages_cannot_break_the_markdown():
    doc = copy.deepcopy(summary())
    bad = "a|b_<b>x</b>*"
    doc["variants"][bad] = doc["variants"].pop("pruned")
    doc["verdicts"][0]["variant"] = bad
    doc["verdicts"][0]["line"] = f"{bad}: gates | 2 failed"
    html = md.markdown(render(doc), extensions=["tables"])
    assert "<b>" not in html
    page = rendered(doc)
    assert [len(t) for t in page.tables] == [11, 3, 4]
    assert page.tables[0][1][0] == bad and page.items[0] == f"FAIL {bad}: gates | 2 failed"


def test_gate_order_is_fail_not_run_pass_keeping_order_within():
    results = [r.result for r in gate_rows(summary())]
    assert results == sorted(results, key=("fail", "not run", "pass").index)


def test_timing_regressions_are_failed_gates():
    doc = summary()
    doc["benchmark_regressions"] = [
        {"benchmark": "test_forward[copy-cpu-b1-t2]", "variant": "copy", "key": "cpu-b1-t2-640", "why": "median +40%"}
    ]
    rows = gate_rows(doc)
    assert [r.result for r in rows[:3]] == ["fail"] * 3
    assert rows[2].variant == "copy" and rows[2].measured == "median +40%"
    assert "1 timing regression(s) against the stored run" in render(doc)


def test_cli_prints_the_markdown_of_a_stored_summary(tmp_path, capsys):
    doc = summary()
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    assert main(["markdown", str(tmp_path / "summary.json")]) == 0
    assert capsys.readouterr().out == render(doc)
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    assert main(["markdown", str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f'slimbench: error: {tmp_path / "other.json"}: not a slimbench summary.json (no "schema": "{SCHEMA}")'
    ]
    assert main(["markdown", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: summary not found" in capsys.readouterr().err
    for text, says in (
        ("{not json", "summary is not JSON (Expecting property name"),
        ("[1, 2]", "summary is not a JSON object"),
    ):
        (tmp_path / "bad.json").write_text(text)
        assert main(["markdown", str(tmp_path / "bad.json")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{tmp_path / 'bad.json'}: {says}" in err[0], err


# ---------------------------------------------------------------- github-action-benchmark


def test_dashboard_entries_shape_and_directions():
    by_tool = dashboard.entries(summary())
    smaller = {e["name"]: e for e in by_tool[dashboard.SMALLER]}
    bigger = {e["name"]: e for e in by_tool[dashboard.BIGGER]}
    for e in [*smaller.values(), *bigger.values()]:
        assert set(e) <= {"name", "unit", "value", "range", "extra"} and {"name", "unit", "value"} <= set(e)
        assert isinstance(e["value"], (int, float)) and isinstance(e["unit"], str) and isinstance(e["name"], str)
    assert set(smaller) == {
        "pruned params_ratio",
        "pruned speed_ratio[torch-cpu-b1-t2-640]",
        "original latency_ms[torch-cpu-b1-t2-640]",
        "pruned latency_ms[torch-cpu-b1-t2-640]",
        "copy latency_ms[torch-cpu-b1-t2-640]",
    }
    assert set(bigger) == {"pruned channels_removed_pct", "pruned map50_95", "pruned map50"}
    ratio = smaller["pruned speed_ratio[torch-cpu-b1-t2-640]"]
    assert ratio["value"] == 0.912 and ratio["range"] == "0.800 to 1.100 over 9 pairs"
    assert ratio["extra"].startswith("limit max_speed_ratio 0.5: FAILED")
    # left out: the count ratio (no direction), the mAP drop (crosses zero), undefined figures, the unmeasured mAP
    names = " ".join([*smaller, *bigger])
    assert "count_ratio" not in names and "drop" not in names and "copy agreement" not in names
    assert "copy map50_95" not in names


def test_dashboard_names_do_not_depend_on_values():
    other = summary()
    other["variants"]["pruned"]["checks"][1].update(value=0.4, passed=True)
    other["deployment"][1]["median_ms"] = 20.0
    first, second = dashboard.entries(summary()), dashboard.entries(other)
    for tool in (dashboard.SMALLER, dashboard.BIGGER):
        assert [e["name"] for e in first[tool]] == [e["name"] for e in second[tool]]


@pytest.mark.parametrize(
    "given, smaller, bigger",
    [
        ("bench.json", "bench.smaller.json", "bench.bigger.json"),
        ("out/dash", "out/dash.smaller.json", "out/dash.bigger.json"),
        ("a.b.json", "a.b.smaller.json", "a.b.bigger.json"),
    ],
)
def test_dashboard_file_names(tmp_path, given, smaller, bigger):
    got = dashboard.paths(tmp_path / given)
    assert got == {dashboard.SMALLER: tmp_path / smaller, dashboard.BIGGER: tmp_path / bigger}


def test_dashboard_writes_each_direction_and_drops_a_stale_file(tmp_path):
    written = dashboard.write(tmp_path / "bench.json", summary())
    files = dashboard.paths(tmp_path / "bench.json")
    assert {tool: n for tool, (_, n) in written.items()} == {dashboard.SMALLER: 5, dashboard.BIGGER: 3}
    assert json.loads(files[dashboard.BIGGER].read_text())[0]["name"] == "pruned channels_removed_pct"
    assert not (tmp_path / "bench.json").exists()
    doc = summary()
    del doc["variants"]["pruned"]  # no higher-is-better figure left
    written = dashboard.write(tmp_path / "bench.json", doc)
    assert set(written) == {dashboard.SMALLER} and not files[dashboard.BIGGER].exists()


def test_output_paths_need_their_folder_or_the_reports_folder(tmp_path):
    reports = tmp_path / "reports"
    option = ci_outputs.MARKDOWN_OPTION
    assert ci_outputs.output_file("reports/v.md", option, tmp_path, reports) == reports / "v.md"
    assert ci_outputs.output_file("v.md", option, tmp_path, None) == tmp_path / "v.md"
    assert ci_outputs.output_file("", option, tmp_path, reports) is None
    with pytest.raises(SlimbenchError, match=f"^{option} other/v.md: folder {tmp_path / 'other'} does not exist$"):
        ci_outputs.output_file("other/v.md", option, tmp_path, reports)
    with pytest.raises(SlimbenchError, match=f"^{option} {tmp_path}: is a folder; give a file path$"):
        ci_outputs.output_file(str(tmp_path), option, tmp_path, reports)


def test_the_example_workflow_uses_these_options_and_files():
    """.ci/github-workflow.example.yml: the options it passes exist, and it reads the files they write."""
    import re
    from pathlib import Path

    import yaml

    from slimbench.report.options import add_output_options

    declared: list[str] = []
    add_output_options(lambda name, **kw: declared.append(name))
    text = (Path(__file__).resolve().parents[1] / ".ci" / "github-workflow.example.yml").read_text()
    steps = yaml.safe_load(text)["jobs"]["bench"]["steps"]
    runs = " ".join(str(s.get("run", "")) for s in steps)
    used = set(re.findall(r"--slimbench-[a-z-]+", runs))
    assert {"--slimbench-markdown", "--slimbench-github-benchmark"} <= used <= set(declared)
    board = re.search(r"--slimbench-github-benchmark (\S+)", runs).group(1)
    files = {s["with"]["tool"]: s["with"]["output-file-path"] for s in steps if "tool" in s.get("with", {})}
    assert files == {tool: str(path) for tool, path in dashboard.paths(board).items()}
    comment = next(s for s in steps if "sticky-pull-request-comment" in str(s.get("uses")))
    assert comment["with"]["path"] == re.search(r"--slimbench-markdown (\S+)", runs).group(1)


def test_speed_cells_carry_their_interval_pairs_and_close_label():
    """A paired ratio shows its 95% interval and the pairs it took; a close decision says so."""
    from slimbench.report.markdown import speed_rows

    doc = summary()
    pruned = next(r for r in doc["deployment"] if r["variant"] == "pruned")
    pruned.update(speed_ratio_ci_low=0.85, speed_ratio_ci_high=0.97, speed_pairs=17, speed_decision="close")
    cell = next(row for row in speed_rows(doc) if row[0] == "pruned")[5]
    assert cell == "0.912 [0.850, 0.970], 17 pairs (close)", cell
    pruned.update(speed_ratio_ci_low=None, speed_decision="pass")  # an interval needs 6 pairs: none shown then
    assert next(row for row in speed_rows(doc) if row[0] == "pruned")[5] == "0.912"


def test_the_nms_free_map_has_its_own_change_column_beside_map():
    doc = copy.deepcopy(summary())
    doc["columns"].append(
        {
            "key": "map50_95_nms_free",
            "label": "NMS-free mAP50-95",
            "unit": "dataset, one-to-one head",
            "better": "higher",
        }
    )
    doc["tables"]["accuracy"].append("map50_95_nms_free")
    for row, value in zip(doc["rows"], (0.7, 0.69, None), strict=True):
        row["map50_95_nms_free"] = value
    _, _, accuracy = rendered(doc).tables
    head = accuracy[0]
    assert head[1:5] == [
        "mAP50-95 (dataset)",
        "mAP50-95 change vs reference",
        "NMS-free mAP50-95 (dataset, one-to-one head)",
        "NMS-free mAP50-95 change vs reference",
    ]
    pruned = dict(zip(head, accuracy[2], strict=True))
    assert pruned["NMS-free mAP50-95 change vs reference"] == "-0.0100"
    assert pruned["mAP50-95 change vs reference"] == "-0.0500"
    assert dict(zip(head, accuracy[1], strict=True))["NMS-free mAP50-95 change vs reference"] == "reference"


def test_the_dashboard_carries_the_nms_free_map_not_its_drop():
    doc = copy.deepcopy(summary())
    pruned = doc["variants"]["pruned"]
    pruned["accuracy"]["map50_95_nms_free"] = 0.69
    pruned["checks"].append(check("map50_95_nms_free_drop", "max_map50_95_nms_free_drop", 0.03, 0.01, True))
    bigger = {e["name"]: e for e in dashboard.entries(doc)[dashboard.BIGGER]}
    assert bigger["pruned map50_95_nms_free"]["value"] == 0.69
    names = " ".join(e["name"] for tool in dashboard.entries(doc).values() for e in tool)
    assert "nms_free_drop" not in names
