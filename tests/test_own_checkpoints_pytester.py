"""A user's own checkpoints on the command line, end to end (pytester, tiny foreign detectors): the README's
commands work, a limit stays with the checkpoint it was written for, deselection is reported as "not run", an
unmeasurable limit whose test still runs stops the run with one line, and a thread count above the CPUs is said."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tiny_models
from test_suite_pytester import SETTINGS

from slimbench.measure.timing import available_cpus
from slimbench.model.checkpoint import save_detector

FOREIGN_NAMES = {0: "car", 1: "person", 2: "bike"}
BUNDLED_LIMITS = {  # written for the "bundled" checkpoints: a foreign checkpoint breaks every one of them
    "pruned": {"max_params_ratio": 0.001, "max_map50_95_drop": 0.0},
    "finetuned": {"max_params_ratio": 0.001},
}


@pytest.fixture
def repo(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    """A folder shaped like this repository (benchmarks/ and a default fixtures/slimbench.toml with three bundled
    variants and their limits) plus someone else's detector (3 other classes) and a thinner copy of it."""
    p = bench_dir.path
    fixtures = p / "fixtures"
    fixtures.mkdir()
    tiny_models.copy_into(fixtures, tiny.original, tiny.pruned, tiny.copy, tiny.scene)
    shutil.copy(tiny.scene, p / "street.jpg")
    variants = {"original": "original.pt", "pruned": "pruned.pt", "finetuned": "copy.pt"}
    tiny_models.write_suite(fixtures / "slimbench.toml", variants, "original", SETTINGS, BUNDLED_LIMITS)
    for name, width in (("theirs.pt", None), ("theirs-pruned.pt", 0.125)):
        net = tiny_models.build_detector("yolov8n.yaml", nc=3, width=width)
        net.names = dict(FOREIGN_NAMES)
        save_detector(net, p / name)
    return bench_dir


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    small = ("--imgsz", "64", "--batch", "1", "--runtime", "torch", "--slimbench-smoke")
    return tiny_models.run_suite(pytester, *small, *args, toml=None)


def summary(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "reports" / "summary.json").read_text())


def test_readme_command_on_foreign_checkpoints(repo):
    """`./run bench --variant original=theirs.pt --variant pruned=pruned.pt --reference original --image street.jpg`:
    the command line's variants alone, no bundled variant, no bundled limit, no bundled baseline."""
    args = ("--variant", "original=theirs.pt", "--variant", "pruned=theirs-pruned.pt", "--reference", "original")
    result = run(repo, *args, "--image", "street.jpg", "-rs")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert "slimbench: no suite config: the --variant checkpoints alone, no limits, figures only" in out
    assert "finetuned" not in out
    doc = summary(repo)
    assert set(doc["variants"]) == {"original", "pruned"}
    assert {row["variant"] for row in doc["rows"]} == {"original", "pruned"}
    assert doc["variants"]["pruned"]["class_names"] == {str(k): v for k, v in FOREIGN_NAMES.items()}
    verdict = doc["verdicts"][0]
    assert verdict["variant"] == "pruned" and verdict["gates_failed"] == 0 and verdict["gates_not_run"] == []
    assert doc["environment"]["baseline_file"] == "none"
    assert "no stored baseline: the --variant checkpoints alone" in out  # the baseline test says why it skips


def test_variants_file_with_limits_on_foreign_checkpoints(repo):
    """`./run bench --variants-file my-suite.toml`: the same checkpoints, with limits written for them."""
    variants = {"original": "theirs.pt", "pruned": "theirs-pruned.pt"}
    limits = {"pruned": {"max_params_ratio": 0.5, "max_gflops_ratio": 0.5}}
    tiny_models.write_suite(repo.path / "my-suite.toml", variants, "original", {"images": ["street.jpg"]}, limits)
    result = run(repo, "--variants-file", "my-suite.toml", "--update-baseline")
    assert result.ret == 0, result.stdout.str()
    doc = summary(repo)
    assert set(doc["variants"]) == {"original", "pruned"}
    checks = {c["limit"]: c["passed"] for c in doc["variants"]["pruned"]["checks"] if c["limit"]}
    assert checks == {"max_params_ratio": True, "max_gflops_ratio": True}
    assert (repo.path / "baseline.json").exists(), "the baseline goes next to the named config"


def test_replacing_a_variant_drops_its_limits_and_pin_and_says_so(repo):
    """With a config named, --variant NAME=PATH replaces NAME's checkpoint: the limits written for the old file do
    not apply to the new one (here they would fail it), and the start line and the verdict say so."""
    other = tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.25, seed=1)  # the bundled classes, other weights
    save_detector(other, repo.path / "mine.pt")
    toml = repo.path / "fixtures" / "slimbench.toml"
    args = ("--variants-file", str(toml), "--variant", "pruned=mine.pt", "-m", "not accuracy", "--update-baseline")
    result = run(repo, *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # finetuned's own limit, below
    out = result.stdout.str()
    assert "slimbench: pruned: checkpoint replaced on the command line; limits from slimbench.toml not applied" in out
    doc = summary(repo)
    pruned = next(v for v in doc["verdicts"] if v["variant"] == "pruned")
    assert pruned["limits_not_applied"].startswith("checkpoint replaced on the command line")
    assert "limits from slimbench.toml not applied" in pruned["line"]
    assert not [c for c in doc["variants"]["pruned"].get("checks", []) if c["limit"]], "no limit of the old file"
    assert doc["variants"]["pruned"]["sha256"] is None, "the pin belonged to the old file"
    finetuned = next(v for v in doc["verdicts"] if v["variant"] == "finetuned")
    assert finetuned["gates_failed"] == 1 and "params ratio" in finetuned["first_failure"], "its own limits still gate"


def test_deselected_gated_test_reads_not_run_and_the_run_passes(repo):
    """An accuracy limit that cannot be measured here (the tiny classes are not the default dataset's): with its
    test deselected the run passes and says which limits did not run; with it selected the run stops at start."""
    toml = repo.path / "fixtures" / "slimbench.toml"
    limits = {"pruned": {"max_params_ratio": 0.9, "max_map50_95_drop": 0.0, "min_agreement_map50": 0.0}}
    variants = {"original": "original.pt", "pruned": "pruned.pt"}
    tiny_models.write_suite(toml, variants, "original", SETTINGS, limits)
    result = run(repo, "-m", "not accuracy", "--update-baseline")
    assert result.ret == 0, result.stdout.str()
    line = next(v for v in summary(repo)["verdicts"] if v["variant"] == "pruned")
    assert line["gates_not_run"] == [  # in the declaration order of the limit keys
        {"limit": "min_agreement_map50", "reason": "deselected"},
        {"limit": "max_map50_95_drop", "reason": "deselected"},
    ]
    assert "2 not run (deselected: min_agreement_map50, max_map50_95_drop)" in line["line"]
    assert line["line"] in result.stdout.str()

    shutil.rmtree(repo.path / "reports")
    stopped = run(repo, "-k", "not test_predict")  # a deselection that leaves test_map selected
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR
    errors = [x for x in stopped.stderr.lines if x.strip()]
    assert len(errors) == 1 and "thresholds.pruned.max_map50_95_drop is set but cannot be measured" in errors[0]
    reports = repo.path / "reports"
    assert not (reports / "report.html").exists() and not (reports / "summary.json").exists(), "nothing written"


def test_thread_count_above_the_cpus_is_said(repo):
    too_many = available_cpus() + 1
    mine = ("--variant", "original=theirs.pt", "--variant", "pruned=theirs-pruned.pt", "--image", "street.jpg")
    result = run(repo, *mine, "--threads", str(too_many), "-k", "test_params or test_forward")
    assert result.ret == 0, result.stdout.str()
    warning = f"slimbench: WARNING: {too_many} threads requested, but only {available_cpus()} CPUs are available"
    assert warning in result.stdout.str()
    env = summary(repo)["environment"]
    assert env["threads_oversubscribed"] == [too_many]
    assert "measure oversubscription" in (repo.path / "reports" / "report.html").read_text()


def test_the_openmp_wait_policy_is_recorded(repo, monkeypatch):
    """OMP_WAIT_POLICY moves a pruned model's 2-thread torch ratio (docs/method.md): the run says what it had."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    mine = ("--variant", "original=theirs.pt", "--variant", "pruned=theirs-pruned.pt", "--image", "street.jpg")
    result = run(repo, *mine, "-k", "test_params")
    assert result.ret == 0, result.stdout.str()
    assert summary(repo)["environment"]["omp_wait_policy"] == "PASSIVE"
    assert "OMP_WAIT_POLICY PASSIVE" in (repo.path / "reports" / "report.html").read_text()


def test_unchanged_config_keeps_its_limits(repo):
    """No --variant: the default config and its limits, as before (the bundled suite's behaviour)."""
    result = run(repo, "-k", "test_params")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the bundled limit of 0.001 breaks the tiny pruned
    assert "pruned: params ratio" in result.stdout.str()
    assert Path(repo.path / "fixtures" / "slimbench.toml").exists()
