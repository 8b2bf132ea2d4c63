"""``slimbench merge`` on hand-written summaries: the candidate x testbed verdict table with its counts, the testbed
read from each summary's environment, the merged summary.json and report.html, and every refusal as one line with
exit code 2 (another schema version, one variant name for two checkpoints, a missing folder or summary.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimbench.cli import main
from slimbench.report import merge as fleet
from slimbench.report.summary import SCHEMA, SCHEMA_VERSION

SHA = {"original": "a" * 64, "pruned": "b" * 64, "finetuned": "c" * 64}


def environment(cpu: str = "Intel(R) Xeon(R) Gold 6338", threads: tuple[int, ...] = (1, 2)) -> dict:
    return {
        "python": "3.11.9",
        "torch": "2.5.1",
        "onnxruntime": "1.20.1",
        "openvino": "not installed",
        "ultralytics": "8.3.40",
        "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
        "machine": "x86_64",
        "cpu": cpu,
        "cpu_count": 4,
        "gpu": "none",
        "threads": list(threads),
    }


def verdict(name: str, passed: int, failed: int, not_run: int = 0) -> dict:
    return {
        "variant": name,
        "gates_passed": passed,
        "gates_failed": failed,
        "gates_not_run": [{"limit": f"l{i}", "reason": "deselected"} for i in range(not_run)],
        "line": f"{name}: gates {passed} passed, {failed} failed",
    }


def summary(verdicts: list[dict], env: dict | None = None, **over) -> dict:
    names = ["original", *(v["variant"] for v in verdicts)]
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-12-05T10:00:00Z",
        "reference": "original",
        "environment": env or environment(),
        "columns": [
            {"key": "variant", "label": "variant", "unit": "", "better": ""},
            {"key": "params", "label": "params", "unit": "", "better": "lower"},
        ],
        "rows": [{"variant": n, "params": 100 if n == "original" else 30} for n in names],
        "verdicts": verdicts,
        "deployment_columns": [],
        "deployment": [],
        "variants": {n: {"name": n, "sha256": None, "checkpoint_sha256": SHA[n]} for n in names},
    }
    return {**doc, **over}


def write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(doc))
    return folder


def merge(capsys, *args: object) -> tuple[int, str, str]:
    rc = main(["merge", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_merge_joins_runs_into_a_candidate_by_testbed_table(tmp_path, capsys):
    a = write(tmp_path / "a", summary([verdict("pruned", 12, 0), verdict("finetuned", 10, 2)]))
    b = write(tmp_path / "b", summary([verdict("pruned", 11, 1, not_run=2)], environment("AMD EPYC 7763", (4,))))
    rc, out, err = merge(capsys, a, b, "--out", tmp_path / "fleet")
    assert rc == 0, err
    assert "pruned: PASS on 1, FAIL on 1, not run on 0 of 2 testbed(s)" in out
    assert "finetuned: PASS on 0, FAIL on 1, not run on 1 of 2 testbed(s)" in out
    fleet = json.loads((tmp_path / "fleet" / "summary.json").read_text())
    assert fleet["schema"] == "slimbench-fleet" and fleet["summary_schema_version"] == SCHEMA_VERSION
    beds = fleet["verdict_table"]["testbeds"]
    assert len(beds) == 2 and "Intel(R) Xeon(R) Gold 6338" in beds[0] and "AMD EPYC 7763" in beds[1]
    assert "torch 2.5.1" in beds[0] and "onnxruntime 1.20.1" in beds[0] and "openvino" not in beds[0]
    assert beds[0].endswith("| t1,2") and beds[1].endswith("| t4")
    cells = {(c["variant"], c["testbed"]): c for c in fleet["verdict_table"]["cells"]}
    assert cells["pruned", beds[0]]["status"] == "PASS" and cells["pruned", beds[1]]["status"] == "FAIL"
    assert cells["pruned", beds[1]]["gates_not_run"] == 2 and cells["finetuned", beds[1]]["status"] == "not run"
    assert fleet["verdict_table"]["totals"]["finetuned"] == {"PASS": 0, "FAIL": 1, "not run": 1}
    assert [r["testbed"] for r in fleet["rows"]] == [beds[0]] * 3 + [beds[1]] * 2, "each row keyed by its testbed"
    assert fleet["columns"][0]["key"] == "testbed"
    assert fleet["testbeds"][1]["cpu"] == "AMD EPYC 7763" and fleet["testbeds"][1]["source"].endswith("summary.json")
    page = (tmp_path / "fleet" / "report.html").read_text()
    assert 'id="slimbench-fleet-verdicts"' in page and 'data-status="FAIL"' in page
    assert ">T2: AMD EPYC 7763 (x86_64), t4</th>" in page, "a short name per testbed, its facts in the testbeds table"
    assert "PASS (12 passed, 0 failed)" in page and "FAIL (1 failed, 11 passed" not in page
    assert "FAIL (11 passed, 1 failed, 2 not run)" in page and "not run (not in this run)" in page

    rc, _, err = merge(capsys, a, b, "--out", tmp_path / "fleet")
    assert rc == 2 and "already holds a report; pass --force" in err
    assert merge(capsys, a, b, "--out", tmp_path / "fleet", "--force")[0] == 0


def test_the_same_testbed_twice_is_told_apart(tmp_path, capsys):
    a = write(tmp_path / "a", summary([verdict("pruned", 3, 0)]))
    b = write(tmp_path / "b", summary([verdict("pruned", 3, 0)]))
    assert merge(capsys, a, b, "--out", tmp_path / "out")[0] == 0
    beds = json.loads((tmp_path / "out" / "summary.json").read_text())["verdict_table"]["testbeds"]
    assert beds[1] == beds[0] + " #2"


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("slimbench: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "case", ["schema-version", "sha256", "missing-summary", "missing-dir", "not-json", "reference"]
)
def test_merge_refuses_in_one_line(tmp_path, capsys, case):
    a = write(tmp_path / "a", summary([verdict("pruned", 3, 0)]))
    b_doc = summary([verdict("pruned", 3, 0)])
    b = tmp_path / "b"
    if case == "schema-version":
        write(b, {**b_doc, "schema_version": SCHEMA_VERSION - 1})
        expected = f"{b / 'summary.json'}: schema_version {SCHEMA_VERSION - 1}, this slimbench merges"
    elif case == "sha256":
        b_doc["variants"]["pruned"]["checkpoint_sha256"] = "d" * 64
        write(b, b_doc)
        expected = (
            f"{b / 'summary.json'}: variant 'pruned' is checkpoint sha256 dddddddddddddddd..., but {a / 'summary.json'}"
        )
    elif case == "missing-summary":
        b.mkdir()
        (b / "report.html").write_text("<html></html>")
        expected = f"{b / 'summary.json'}: missing"
    elif case == "missing-dir":
        expected = f"{b}: no such reports folder"
    elif case == "not-json":
        b.mkdir()
        (b / "summary.json").write_text("{not json")
        expected = f"{b / 'summary.json'}: summary is not JSON ("
    else:
        write(b, {**b_doc, "reference": "pruned"})
        expected = f"{b / 'summary.json'}: reference 'pruned', but"
    rc, out, err = merge(capsys, a, b, "--out", tmp_path / "fleet")
    assert rc == 2
    assert expected in one_error(err)
    assert not (tmp_path / "fleet").exists(), "nothing written"


def test_out_must_not_be_an_input(tmp_path, capsys):
    a = write(tmp_path / "a", summary([verdict("pruned", 3, 0)]))
    rc, _, err = merge(capsys, a, "--out", a)
    assert rc == 2 and "is an input reports folder" in one_error(err)


def test_testbed_and_cell_rules():
    t = fleet.testbed({**environment(), "gpu": "NVIDIA H100 80GB HBM3"})
    assert t["versions"] == {"python": "3.11.9", "torch": "2.5.1", "onnxruntime": "1.20.1", "ultralytics": "8.3.40"}
    assert fleet.testbed_label(t).startswith(
        "Intel(R) Xeon(R) Gold 6338 (4 CPUs) + NVIDIA H100 80GB HBM3 | Linux-6.8.0"
    )
    assert fleet.verdict_cell(None)["status"] == "not run"
    assert fleet.verdict_cell(verdict("p", 0, 0, not_run=3))["status"] == "not run", "no gate ran"
    assert (
        fleet.verdict_cell(verdict("p", 0, 1))["status"] == "FAIL"
        and fleet.verdict_cell(verdict("p", 1, 0))["status"] == "PASS"
    )


def test_the_fleet_workflow_uploads_each_runners_reports_and_merges_them():
    """.ci/github-fleet.example.yml: a runner matrix uploading reports/, then a job that downloads and merges them with
    a command this slimbench parses."""
    import shlex

    import yaml

    from slimbench.cli import build_parser

    flow = yaml.safe_load((Path(__file__).resolve().parents[1] / ".ci/github-fleet.example.yml").read_text())
    bench, final = flow["jobs"]["bench"], flow["jobs"]["merge"]
    assert len(bench["strategy"]["matrix"]["runner"]) >= 2 and bench["strategy"]["fail-fast"] is False
    uses = {step.get("uses", "").split("@")[0]: step for step in bench["steps"]}
    assert uses["actions/upload-artifact"]["with"]["path"] == "reports/"
    assert final["needs"] == "bench" and final["if"] == "always()"
    download = next(s for s in final["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "reports-*"
    command = next(s["run"] for s in final["steps"] if "slimbench merge" in s.get("run", ""))
    args = build_parser().parse_args(shlex.split(command.split("./run slimbench ", 1)[1]))
    assert args.command == "merge" and str(args.out) == "fleet" and args.dirs
