"""Judging a figure against the limits its metric declares: the messages, and the verdicts the report reads."""

from __future__ import annotations

import pytest

from slimbench.bench.session import SuiteSession
from slimbench.config.suite import config_from_dict
from slimbench.report.facts import Failure
from slimbench.report.rows import check_name, failed_checks


@pytest.fixture
def session(tmp_path) -> SuiteSession:
    data = {
        "reference": "original",
        "variants": {"original": {"path": "o.pt"}, "pruned": {"path": "p.pt"}},
        "thresholds": {"pruned": {"max_params_ratio": 0.5, "min_count_ratio": 0.8, "max_count_ratio": 1.2}},
    }
    return SuiteSession(config_from_dict(data, tmp_path))


def test_judge_fails_only_broken_limits_and_records_every_verdict(session):
    assert session.judge("pruned", "params_ratio", 0.4) == []
    assert session.judge("pruned", "params_ratio", 0.6, note="x") == ["pruned: params ratio 0.600 > max 0.500 (x)"]
    assert session.judge("pruned", "gflops_ratio", 9.0) == [], "no limit: measured, not gated"
    checks = session.figures["pruned"].checks
    assert [(c.metric, c.passed) for c in checks] == [("params_ratio", True), ("params_ratio", False)]
    assert checks[1].limit == "max_params_ratio" and checks[1].bound == 0.5 and checks[1].value == 0.6


def test_two_limits_of_one_metric_and_an_undefined_value(session):
    lines = session.judge("pruned", "count_ratio", None, cell="scene", undefined="n/a (0 detections)")
    assert lines == [
        "pruned: detection count ratio n/a (0 detections), min 0.800",
        "pruned: detection count ratio n/a (0 detections), max 1.200",
    ]
    checks = session.figures["pruned"].checks
    assert all(c.value == "n/a (0 detections)" and not c.passed for c in checks)
    assert check_name(checks[0]) == "detection count ratio [scene]"


def test_failed_checks_name_metrics_and_keep_failures_no_check_explains(session):
    session.judge("pruned", "params_ratio", 0.6)
    session.verdict("pruned", "onnx_parity", [])
    failures = [Failure("pruned", None, "pruned: params ratio 0.600 > max 0.500"), Failure("pruned", None, "boom")]
    assert failed_checks(session.figures["pruned"], failures, "pruned") == ["params ratio", "boom"]
    assert session.figures["pruned"].checks[-1].passed is True
