"""The suite writes its verdicts where CI users read them, end to end (pytester, tiny detectors, smoke mode): appended
to $GITHUB_STEP_SUMMARY on every run, written to --slimbench-markdown, the same text `slimbench markdown` makes from
summary.json; the dashboard JSON beside --slimbench-github-benchmark; a path whose folder is missing stops the run
with one line naming the option."""

from __future__ import annotations

import json

import markdown as md
import pytest
import tiny_models
from test_markdown import Tables
from test_suite_pytester import write_toml

from slimbench.report import dashboard
from slimbench.report.markdown import render

FAILING = {
    "pruned": {
        "max_params_ratio": 0.001,
        "max_gflops_ratio": 0.9,
        "min_channels_removed_pct": 30,
        "max_speed_ratio": 9,
    },
    "copy": {"min_count_ratio": 0.5, "min_agreement_recall": 0.5},
}


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    """The tiny variants with one limit "pruned" cannot meet (params ratio) beside ones it meets."""
    tiny_models.copy_into(bench_dir.path, tiny.original, tiny.pruned, tiny.copy, tiny.scene)
    write_toml(bench_dir.path / "suite.toml", thresholds=FAILING)
    (bench_dir.path / "out").mkdir()
    return bench_dir


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tiny_models.run_suite(pytester, "--slimbench-smoke", "-m", "not accuracy", *args)


def test_verdicts_go_to_the_step_summary_the_markdown_file_and_the_dashboard(suite, monkeypatch):
    p = suite.path
    assert not (p / "reports").exists()  # a fresh checkout: the reports folder, made by the run, may hold the file
    result = run(suite, "--slimbench-markdown", "reports/verdicts.md")  # no GITHUB_STEP_SUMMARY: this file only
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert "GITHUB_STEP_SUMMARY" not in result.stdout.str()
    doc = json.loads((p / "reports" / "summary.json").read_text())
    text = (p / "reports" / "verdicts.md").read_text()
    assert text == render(doc), "the same markdown comes back from summary.json"
    page = Tables()
    page.feed(md.markdown(text, extensions=["tables"]))
    gates = page.tables[0]
    assert gates[1][:2] == ["pruned", "params ratio"] and gates[1][-1] == "FAIL"
    assert gates[2][-1].startswith("not run (skipped: smoke mode: speed ratio") and gates[2][1] == "speed ratio"
    assert [r[-1] for r in gates[3:5]] == ["not run (no baseline yet)"] * 2  # pruned's and copy's
    assert {r[-1] for r in gates[5:]} == {"pass"}
    speed = page.tables[1]
    assert len(speed) == 2 and speed[1][:5] == ["pruned", "torch", "cpu", "1", "1"]
    assert float(speed[1][5]) > 0 and speed[1][7] == "not gated (smoke mode)"
    assert page.items[0] == f"FAIL {doc['verdicts'][0]['line']}"

    step = p / "step-summary.md"
    step.write_text("an earlier step's summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    for runs in (1, 2):
        result = run(suite, "--slimbench-github-benchmark", "out/bench.json")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert f"markdown verdicts appended to $GITHUB_STEP_SUMMARY ({step})" in result.stdout.str()
        written = step.read_text()
        assert written.startswith("an earlier step's summary\n") and written.count("## slimbench: ") == runs
    doc = json.loads((p / "reports" / "summary.json").read_text())
    assert written.endswith(render(doc))

    files = dashboard.paths(p / "out" / "bench.json")
    smaller = json.loads(files[dashboard.SMALLER].read_text())
    bigger = json.loads(files[dashboard.BIGGER].read_text())
    names = {e["name"]: e for e in smaller}
    assert names["pruned params_ratio"]["extra"].startswith("limit max_params_ratio 0.001: FAILED")
    assert list(names) == ["pruned params_ratio", "pruned gflops_ratio"], "smoke mode: the speed ratio is not gated"
    assert [e["name"] for e in bigger] == ["pruned channels_removed_pct", "copy agreement_recall[scene]"]
    said = f"github-action-benchmark: {files[dashboard.SMALLER]} ({len(smaller)} figures, tool customSmallerIsBetter)"
    assert said in result.stdout.str()


@pytest.mark.parametrize("option", ["--slimbench-markdown", "--slimbench-github-benchmark"])
def test_a_missing_folder_stops_the_run_with_one_line(suite, option):
    before = tiny_models.files_under(suite.path)
    result = run(suite, option, "nowhere/out.md")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: slimbench: {option} nowhere/out.md: folder {suite.path / 'nowhere'} does not exist"]
    assert tiny_models.files_under(suite.path) == before, "nothing written"
