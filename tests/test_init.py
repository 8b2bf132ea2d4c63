"""``slimbench init``: a ready suite in a folder outside this repository that ``pytest`` runs, one line and nothing
written for each bad input, and the shipped tests identical to the repository's benchmarks/."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimbench.cli import main
from slimbench.scaffold import suite_tests

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SLIMBENCH_FIXTURES") or ROOT / "fixtures")
MODELS = FIXTURES / "models"


def _init(folder: Path, *extra: str) -> list[str]:
    return [
        "init",
        str(folder),
        "--variant",
        f"original={MODELS / 'original.pt'}",
        "--variant",
        f"pruned={MODELS / 'pruned.pt'}",
        "--reference",
        "original",
        *extra,
    ]


def test_the_repositorys_benchmarks_are_the_shipped_suite():
    """One source: each benchmarks/test_*.py imports the tests the package ships (slimbench/suite/, what ``slimbench
    init`` copies, since an installed slimbench has no repository), so the two cannot drift."""
    import importlib
    import inspect

    local = sorted((ROOT / "benchmarks").glob("test_*.py"))
    assert sorted(p.name for p in local) == sorted(suite_tests()), "every shipped test module has one in benchmarks/"
    for p in local:
        shipped = importlib.import_module(f"slimbench.suite.{p.stem}")
        spec = importlib.util.spec_from_file_location(f"_bench_{p.stem}", p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tests = {n for n, f in inspect.getmembers(shipped, inspect.isfunction) if n.startswith("test_")}
        assert tests, f"{shipped.__name__} has no tests"
        for n in tests | {"pytest_generate_tests", "pytestmark"} & set(vars(shipped)):
            assert getattr(mod, n, None) is getattr(shipped, n), f"{p}: {n} is not the shipped suite's"


def test_init_writes_a_suite_that_pytest_runs(tmp_path, capsys):
    suite = tmp_path / "bench"
    assert main(_init(suite, "--image", str(FIXTURES / "images" / "scene.jpg"))) == 0
    assert f"pytest {suite}" in capsys.readouterr().out
    toml = (suite / "slimbench.toml").read_text()
    assert 'reference = "original"' in toml and toml.count("sha256 = ") == 2
    assert {"conftest.py", "__init__.py", "test_static.py", "test_detections.py"} <= {p.name for p in suite.iterdir()}
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    args = ["--batch", "1", "--imgsz", "160", "--device", "cpu", "--runtime", "torch", "-k", "static or detections"]
    cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", *args]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outcome = run.stdout.strip().splitlines()[-1]  # pytest's last line: "12 passed, 20 deselected in 4.52s"
    assert " passed" in outcome and "failed" not in outcome and "error" not in outcome, outcome
    removed = json.loads((FIXTURES / "manifest.json").read_text())["pruning"]["channels_removed_pct"]
    rows = [line.split() for line in run.stdout.splitlines() if line.startswith("pruned ")]
    assert any(row[-1] == f"{removed:.1f}" for row in rows), run.stdout  # the static table: the pinned variant loaded
    assert list(tmp_path.rglob("summary.json")), "no report written"


def test_the_commented_baseline_table_is_valid_once_uncommented(tmp_path):
    """init writes ``[baseline]`` with ``required`` commented out; a user who uncomments it gets a valid config."""
    from slimbench.config.suite import load_config
    from slimbench.scaffold import InitRequest, render

    req = InitRequest(Path("bench"), (f"original={MODELS / 'original.pt'}",), "original")
    text = render(req, tmp_path)["slimbench.toml"].decode()
    assert "# [baseline]" in text and "# required = true" in text
    as_written, uncommented = tmp_path / "a.toml", tmp_path / "b.toml"
    as_written.write_text(text)
    uncommented.write_text(re.sub(r"^# (\[baseline\]|required = true)", r"\1", text, flags=re.M))
    assert load_config(as_written).baseline.required is False
    assert load_config(uncommented).baseline.required is True


FAST_SETTINGS = (
    '[settings]\nimgsz = 64\nbatch = [1]\ndevice = ["cpu"]\nruntime = ["torch"]\nthreads = [1]\nmemory = false'
)
"""What a user fills in after init, small enough that each run of the suite takes seconds."""


def _suite_run(cmd: str, cwd: Path, ci: str | None = None) -> subprocess.CompletedProcess[str]:
    """One printed command, as printed, in a fresh process; smoke mode, no accuracy and no cache through
    PYTEST_ADDOPTS, so the command line itself is the one init printed."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(YOLO_OFFLINE="1", MPLBACKEND="Agg")
    env["PYTEST_ADDOPTS"] = '-m "not accuracy" --slimbench-smoke -p no:cacheprovider'
    if ci is not None:
        env["CI"] = ci
    argv = shlex.split(cmd)
    assert argv[0] == "pytest", cmd
    return subprocess.run(
        [sys.executable, "-m", *argv, "-rs"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _summary(repo: Path) -> dict:
    return json.loads((repo / "reports" / "summary.json").read_text())


def test_init_then_its_printed_commands_in_order_end_green(tmp_path, tiny, capsys, monkeypatch):
    """The issue's first run: init's closing lines are the real sequence (run, store the baseline, gate), each step
    exits 0 with CI unset, and the last one gates against the stored baseline; under CI=true a first run without a
    baseline fails with the one line that says how to create it."""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    for name in ("original", "pruned"):
        shutil.copy(getattr(tiny, name), repo / "models" / f"{name}.pt")
    shutil.copy(tiny.scene, repo / "scene.jpg")
    monkeypatch.chdir(repo)
    capsys.readouterr()
    args = ["init", "bench", "--variant", "original=models/original.pt", "--variant", "pruned=models/pruned.pt"]
    assert main([*args, "--reference", "original", "--image", "scene.jpg"]) == 0
    printed = capsys.readouterr().out
    cmds = re.findall(r"^  \d\. (pytest \S.*?)\s+# ", printed, flags=re.M)
    assert cmds == ["pytest bench", "pytest bench --update-baseline", "pytest bench"], printed
    assert "review bench/baseline.json and commit it" in printed
    toml = repo / "bench" / "slimbench.toml"
    toml.write_text(toml.read_text().replace("[settings]", FAST_SETTINGS, 1))
    hint = "no baseline yet: create it with `pytest bench --update-baseline`, review bench/baseline.json and commit it"
    baseline = repo / "bench" / "baseline.json"

    in_ci = _suite_run(cmds[0], repo, ci="true")
    assert in_ci.returncode == 1, in_ci.stdout[-3000:] + in_ci.stderr[-3000:]
    assert in_ci.stdout.count(f"{hint} (required: CI=true)") >= 2 and "Traceback" not in in_ci.stdout
    assert not baseline.exists()

    first = _suite_run(cmds[0], repo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"baseline not run (no baseline yet): {hint.split(': ', 1)[1]}" in first.stdout
    assert "SKIPPED [2]" in first.stdout and hint in first.stdout, first.stdout[-3000:]
    doc = _summary(repo)
    assert {r["baseline"] for r in doc["rows"]} == {"not run (no baseline yet)"}
    assert doc["verdicts"][0]["gates_not_run"] == [{"limit": "baseline", "reason": "no baseline yet"}]
    assert not baseline.exists()

    store = _suite_run(cmds[1], repo)
    assert store.returncode == 0, store.stdout[-3000:] + store.stderr[-3000:]
    assert f"baseline {baseline}: created" in store.stdout
    stored = json.loads(baseline.read_text())["variants"]
    assert set(stored) == {"original", "pruned"} and stored["pruned"]["settings"]["imgsz"] == 64

    gated = _suite_run(cmds[2], repo)
    assert gated.returncode == 0, gated.stdout[-3000:] + gated.stderr[-3000:]
    assert "no baseline yet" not in gated.stdout and "SKIPPED" in gated.stdout  # -rs: other skips, not the baseline's
    doc = _summary(repo)
    assert {r["variant"]: r["baseline"] for r in doc["rows"]} == {"original": "ok", "pruned": "ok"}
    for name in ("original", "pruned"):
        rows = {r["metric"]: r for r in doc["variants"][name]["baseline"]["rows"]}
        params = stored[name]["metrics"]["params"]
        assert rows["params"]["status"] == "ok" and rows["params"]["baseline"] == rows["params"]["now"] == params
    assert doc["verdicts"][0]["gates_not_run"] == [] and doc["verdicts"][0]["gates_passed"] >= 1
    assert json.loads(baseline.read_text())["variants"] == stored, "never written without --update-baseline"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "--variant pruned: checkpoint not found"),
        ("reference", "--reference 'nope': not among the variants (original, pruned)"),
        ("present", "already holds a suite (conftest.py, slimbench.toml"),
        ("twice", "variant 'original' given twice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case, expected):
    suite = tmp_path / "bench"
    args = _init(suite)
    if case == "missing":
        args[5] = f"pruned={tmp_path / 'nowhere.pt'}"
    elif case == "reference":
        args[-1] = "nope"
    elif case == "present":
        suite.mkdir()
        (suite / "conftest.py").write_text("# the user's own\n")
        (suite / "slimbench.toml").write_text("")
    elif case == "twice":
        args[5] = f"original={MODELS / 'pruned.pt'}"
    before = sorted(tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("slimbench: error: ") and expected in err[0], err
    assert sorted(tmp_path.rglob("*")) == before, "nothing written"
    if case == "present":
        assert (suite / "conftest.py").read_text() == "# the user's own\n"
        assert main([*args, "--force"]) == 0
        assert "slimbench_suite = True" in (suite / "conftest.py").read_text()


def test_missing_reference_option_is_one_usage_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(_init(tmp_path / "bench")[:-2])
    assert e.value.code == 2
    assert "--reference" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()
