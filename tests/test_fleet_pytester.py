"""History and fleet end to end (pytester, tiny variants): runs saved with --benchmark-autosave feed the next run's
history (a step flagged at the stored run where it began, in summary.json, the terminal verdicts and the report),
--benchmark-compare still works beside it, and two real runs' reports merge into one fleet report with a candidate x
testbed verdict table."""

from __future__ import annotations

import copy
import html
import json

import pytest
import tiny_models
from test_suite_pytester import SETTINGS

from slimbench.cli import main

STORE = "--benchmark-storage=file://bstore"
FAST = ("-k", "not predict and not detections", "--benchmark-min-rounds=2", "--benchmark-max-time=0.01")
LIMITS = {"pruned": {"max_params_ratio": 0.5, "max_speed_ratio": 10.0}}


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned, tiny.scene)
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(bench_dir.path / "suite.toml", variants, "original", SETTINGS, LIMITS)
    return bench_dir


def run(suite: pytest.Pytester, reports: str, *args: str, toml: str = "suite.toml") -> pytest.RunResult:
    return tiny_models.run_suite(suite, *FAST, "--slimbench-reports", reports, *args, toml=toml, marks="not accuracy")


def summary(suite: pytest.Pytester, reports: str) -> dict:
    return json.loads((suite.path / reports / "summary.json").read_text())


def test_history_over_autosaved_runs_flags_a_step_and_compare_still_works(suite):
    first = run(suite, "r1", "--benchmark-autosave", STORE)
    assert first.ret == 0, first.stdout.str()
    [saved] = (suite.path / "bstore").rglob("0001_*.json")
    data = json.loads(saved.read_text())
    doc = summary(suite, "r1")
    pruned = data["slimbench"]["variants"]["pruned"]
    assert pruned["params"] == doc["variants"]["pruned"]["static"]["params"] and pruned["speed_ratio[cpu-b1-t1]"] > 0
    assert data["slimbench"]["sha256"]["pruned"] == doc["variants"]["pruned"]["checkpoint_sha256"]
    assert [r["run"] for r in doc["history"]["runs"]] == ["this run"], "nothing stored before the first run"

    # seven more stored runs on this machine, each its own commit; pruned's params double from the 5th on
    for n in range(2, 9):
        d = copy.deepcopy(data)
        d["commit_info"]["id"] = f"c{n:03d}" + "0" * 36
        if n >= 5:
            d["slimbench"]["variants"]["pruned"]["params"] *= 2
        (saved.parent / f"{n:04d}_c{n:03d}_20261205_100000.json").write_text(json.dumps(d))

    second = run(suite, "r2", "--benchmark-autosave", STORE)
    assert second.ret == 0, second.stdout.str()
    history = summary(suite, "r2")["history"]
    assert [r["run"][:4] for r in history["runs"]] == ["0001", "0002", *(f"{n:04d}" for n in range(3, 9)), "this"]
    assert history["runs"][0]["commit"] == data["commit_info"]["id"] and history["runs"][-1]["current"]
    steps = {(s["variant"], s["figure"]): s for s in history["steps"]}
    assert ("pruned", "params") in steps, history["steps"]
    step = steps["pruned", "params"]
    assert step["run"].startswith("0005_c005") and step["commit"].startswith("c005") and step["change"] == 1.0
    params = step["before"]
    line = f"history: pruned params stepped {params:,.0f} -> {2 * params:,.0f} (+100%) from run 0005_c005"
    assert line in second.stdout.str(), "said in the terminal's verdicts"
    page = (suite.path / "r2" / "report.html").read_text()
    assert 'id="slimbench-steps"' in page and html.escape(line) in page and 'id="slimbench-history"' in page
    assert 'data-chart="history-params"' in page and 'data-chart="history-speed_ratio[cpu-b1-t1]"' in page
    assert len(list(saved.parent.glob("*.json"))) == 9, "the second run was saved too"

    third = run(suite, "r3", "--benchmark-compare", STORE, "--slimbench-history", "3")
    assert third.ret == 0, third.stdout.str()  # no --benchmark-compare-fail: timings under load are not gated here
    assert "test_forward[pruned-cpu-b1-t1-torch] (0009_" in third.stdout.str(), "compared with the newest saved run"
    assert [r["run"][:4] for r in summary(suite, "r3")["history"]["runs"]] == ["0007", "0008", "0009", "this"]
    assert len(list(saved.parent.glob("*.json"))) == 9, "--benchmark-compare alone saves nothing"


def test_two_runs_merge_into_one_fleet_report(suite, capsys):
    """Two real runs of one suite, the second with a limit pruned breaks and its summary's machine changed (as if a
    second runner had written it): one summary.json and report.html, pruned PASS on one testbed, FAIL on the other."""
    strict = {"pruned": {**LIMITS["pruned"], "max_params_ratio": 0.01}}
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(suite.path / "strict.toml", variants, "original", SETTINGS, strict)
    assert run(suite, "a", "--slimbench-history", "0").ret == 0
    assert run(suite, "b", "--slimbench-history", "0", toml="strict.toml").ret == 1
    b = suite.path / "b" / "summary.json"
    doc = json.loads(b.read_text())
    assert doc["history"] is None, "--slimbench-history 0: off"
    doc["environment"].update(cpu="Ampere Altra Q80-30", machine="aarch64", threads=[4])
    b.write_text(json.dumps(doc))

    rc = main(["merge", str(suite.path / "a"), str(suite.path / "b"), "--out", str(suite.path / "fleet")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "pruned: PASS on 1, FAIL on 1, not run on 0 of 2 testbed(s)" in out
    fleet = json.loads((suite.path / "fleet" / "summary.json").read_text())
    beds = fleet["verdict_table"]["testbeds"]
    assert "Ampere Altra Q80-30" in beds[1] and beds[1].endswith("| t4") and beds[0].endswith("| t1")
    cells = {c["testbed"]: c for c in fleet["verdict_table"]["cells"] if c["variant"] == "pruned"}
    assert cells[beds[0]]["status"] == "PASS" and cells[beds[1]]["status"] == "FAIL"
    assert cells[beds[1]]["gates_failed"] >= 1 and cells[beds[0]]["gates_passed"] == cells[beds[1]]["gates_passed"] + 1
    assert {r["testbed"] for r in fleet["rows"]} == set(beds) and len(fleet["rows"]) == 4
    assert {r["testbed"] for r in fleet["deployment"]} == set(beds)
    page = (suite.path / "fleet" / "report.html").read_text()
    assert page.count('data-status="PASS"') == 1 and page.count('data-status="FAIL"') == 1
    assert 'id="slimbench-fleet-speed"' in page and "Ampere Altra Q80-30" in page
