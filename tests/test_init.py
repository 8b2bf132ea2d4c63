"""``slimbench init``: a ready suite in a folder outside this repository that ``pytest`` runs, one line and nothing
written for each bad input, and the shipped tests identical to the repository's benchmarks/."""

from __future__ import annotations

import json
import os
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
