"""The stored baseline without a suite run: strict reading, comparison with tolerances, atomic writes on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimbench.bench.baseline_check import _matrix_metrics
from slimbench.bench.baseline_compare import RULES, Row, compare, diff_table, merge_entry
from slimbench.bench.baseline_gate import NOT_RUN, BaselineGate, open_gate
from slimbench.bench.baseline_store import SCHEMA, SCHEMA_VERSION, read_baseline, render
from slimbench.bench.figures import VariantFigures
from slimbench.config.baseline import BaselineConfig, Tolerance, default_path, parse_tolerance, required_by
from slimbench.config.suite import load_config
from slimbench.core.errors import SlimbenchError

SETTINGS = {"imgsz": 640, "conf": 0.25, "iou": 0.7, "match_iou": 0.5, "reference": "original", "images": {"scene": "a"}}


def entry(settings: dict | None = None, **metrics: float) -> dict:
    return {"checkpoint_sha256": "0" * 64, "settings": {**SETTINGS, **(settings or {})}, "metrics": metrics}


BASE = entry(
    params=1_000_000,
    gflops=3.0,
    file_size_mb=2.0,
    normalized_size_mb=1.9,
    total_channels=3000,
    zeroed_channels=0,
    channels_removed_pct=45.0,
    **{"detections[scene]": 10, "agreement_recall[scene]": 0.9, "agreement_precision[scene]": 0.95},
)


def status(rows: list[Row]) -> dict[str, str]:
    return {r.metric: r.status for r in rows}


# ---------------------------------------------------------------- tolerances and the config table


@pytest.mark.parametrize("value, tol", [(0, Tolerance(0.0)), (0.001, Tolerance(0.001)), ("2%", Tolerance(2.0, True))])
def test_tolerance_parsing(value, tol):
    assert parse_tolerance(value, "x") == tol


@pytest.mark.parametrize("value", [-1, "2", "%", "-2%", True, float("nan"), [1]])
def test_bad_tolerances_are_refused(value):
    with pytest.raises(SlimbenchError, match="^x: "):
        parse_tolerance(value, "x")


def test_relative_tolerance_scales_with_the_baseline():
    assert Tolerance(1.0, True).allowed(200.0) == pytest.approx(2.0)
    assert Tolerance(0.5).allowed(200.0) == 0.5


def write_toml(tmp_path: Path, extra: str) -> Path:
    p = tmp_path / "suite.toml"
    p.write_text(f'reference = "original"\n[variants.original]\npath = "o.pt"\n{extra}', encoding="utf-8")
    return p


def test_config_baseline_table(tmp_path):
    cfg = load_config(
        write_toml(tmp_path, '[baseline]\npath = "base/b.json"\ntolerances = {params = 5, gflops = "1%"}\n')
    )
    assert cfg.baseline.path == tmp_path / "base/b.json"
    assert cfg.baseline.tolerance("params") == Tolerance(5.0)
    assert cfg.baseline.tolerance("gflops") == Tolerance(1.0, True)
    assert cfg.baseline.tolerance("detections") == RULES["detections"].tolerance
    assert cfg.baseline.required is False
    assert load_config(write_toml(tmp_path, "[baseline]\nrequired = true\n")).baseline.required is True


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[baseline]\npaht = 'x'\n", "baseline.paht: unknown key (expected one of: path, required, tolerances)"),
        ("[baseline]\nrequired = 'yes'\n", "baseline.required: expected true or false, got 'yes'"),
        ("[baseline]\nrequired = 1\n", "baseline.required: expected true or false, got 1"),
        ("[baseline.tolerances]\nparms = 1\n", "baseline.tolerances.parms: unknown metric"),
        ("[baseline.tolerances]\nparams = -1\n", "baseline.tolerances.params: expected a tolerance >= 0"),
        ("[baseline.tolerances]\ngflops = 'lots'\n", "baseline.tolerances.gflops: expected a number or a percentage"),
    ],
)
def test_config_baseline_table_errors(tmp_path, text, expected):
    with pytest.raises(SlimbenchError) as e:
        load_config(write_toml(tmp_path, text))
    assert str(e.value).startswith(f"{tmp_path / 'suite.toml'}: ") and expected in str(e.value)


def test_default_path_is_next_to_the_config(tmp_path):
    assert default_path(tmp_path / "fixtures/slimbench.toml", None, tmp_path) == tmp_path / "fixtures/baseline.json"
    assert default_path(None, None, tmp_path) == tmp_path / "fixtures/baseline.json"
    assert default_path(tmp_path / "s.toml", tmp_path / "x.json", tmp_path) == tmp_path / "x.json"


# ---------------------------------------------------------------- reading the file


def test_missing_file_reads_as_none(tmp_path):
    assert read_baseline(tmp_path / "nope.json") is None


def test_render_and_read_round_trip(tmp_path):
    p = tmp_path / "b.json"
    p.write_bytes(render({"original": BASE}))
    data = read_baseline(p)
    assert data["schema"] == SCHEMA and data["schema_version"] == SCHEMA_VERSION
    assert data["variants"]["original"]["metrics"] == BASE["metrics"]
    assert {"slimbench", "torch", "ultralytics", "written"} <= data["created_by"].keys()
    assert list(data["variants"]["original"]["metrics"]) == sorted(BASE["metrics"]), "stable order for reviews"


def doc(**variant) -> str:
    return json.dumps({"schema": SCHEMA, "schema_version": 1, "variants": {"pruned": variant}})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{", "malformed baseline JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
        ("[]", "baseline expected a JSON object, got list"),
        ('{"schema": "slimbench-baseline", "schema_version": 2, "variants": {}}', "schema_version: 2 is not supported"),
        ('{"schema": "slimbench-baseline", "schema_version": 1}', "baseline variants: expected an object"),
        ('{"schema": "slimbench-baseline", "schema_version": 1, "variants": {}, "x": 1}', "baseline x: unknown key"),
        (doc(metrics={"params": True}), "variants.pruned.metrics.params: expected a finite number"),
        (doc(metrics={"detections": 3}), "variants.pruned.metrics.detections: unknown metric"),
        (doc(metrics={"params[scene]": 3}), "variants.pruned.metrics.params[scene]: unknown metric"),
        (doc(metrics={}, settings={"imgsize": 3}), "variants.pruned.settings.imgsize: unknown key"),
        (doc(metrics={}, checkpoint_sha256="abc"), "variants.pruned.checkpoint_sha256: expected 64"),
        (doc(metric={}), "variants.pruned.metric: unknown key"),
    ],
)
def test_malformed_baselines_name_the_file_and_key(tmp_path, text, expected):
    p = tmp_path / "b.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(SlimbenchError) as e:
        read_baseline(p)
    assert str(e.value).startswith(f"{p}: ") and expected in str(e.value)


def test_not_utf8_and_directory(tmp_path):
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SlimbenchError, match="not UTF-8"):
        read_baseline(tmp_path / "b.json")
    with pytest.raises(SlimbenchError, match="is not a file"):
        read_baseline(tmp_path)


# ---------------------------------------------------------------- comparing


def test_same_figures_are_ok():
    assert set(status(compare(BASE, BASE)).values()) == {"ok"}


def test_regressions_improvements_and_tolerances():
    now = entry(
        **{
            **BASE["metrics"],
            "params": 1_000_001,  # one more: tolerance 0
            "gflops": 3.002,  # +0.07%: within the default 0.1%
            "file_size_mb": 1.5,  # smaller: improved
            "channels_removed_pct": 40.0,  # fewer removed: regressed ("min")
            "detections[scene]": 8,  # two fewer: regressed ("both", tolerance 1)
            "agreement_recall[scene]": 0.86,  # within 0.05
            "agreement_precision[scene]": 0.5,  # regressed
        }
    )
    st = status(compare(BASE, now))
    assert st == {
        "params": "regressed",
        "gflops": "ok",
        "file_size_mb": "improved",
        "normalized_size_mb": "ok",
        "total_channels": "ok",
        "zeroed_channels": "ok",
        "channels_removed_pct": "regressed",
        "detections[scene]": "regressed",
        "agreement_recall[scene]": "ok",
        "agreement_precision[scene]": "regressed",
    }
    cfg = BaselineConfig(tolerances={"params": Tolerance(1), "detections": Tolerance(20, True)})
    st = status(compare(BASE, now, cfg))
    assert st["params"] == "ok" and st["detections[scene]"] == "ok"


def test_rows_come_in_report_order_with_limits():
    rows = compare(BASE, entry(**{**BASE["metrics"], "params": 2_000_000}))
    assert [r.metric for r in rows][:3] == ["params", "gflops", "file_size_mb"]
    params = rows[0]
    assert (params.baseline, params.now, params.limit) == (1_000_000, 2_000_000, "<= 1,000,000")
    assert rows[1].limit == "<= 3.003 (+0.1%)"
    assert next(r for r in rows if r.metric == "detections[scene]").limit == "10 ± 1"


def test_settings_that_differ_make_dependent_metrics_not_compared():
    now = entry({"imgsz": 320, "images": {"scene": "b"}}, **{**BASE["metrics"], "gflops": 0.75, "params": 2})
    st = status(compare(BASE, now))
    assert st["gflops"] == "not compared" and st["detections[scene]"] == "not compared"
    assert st["params"] == "improved", "params do not depend on imgsz: still compared"
    why = {r.metric: r.note for r in compare(BASE, now)}
    assert why["gflops"] == "baseline imgsz 640, now 320"


def test_new_and_unmeasured_metrics_do_not_fail():
    base = entry(**{**BASE["metrics"], "map50": 0.8})
    now = entry(**{k: v for k, v in BASE["metrics"].items() if k != "zeroed_channels"})
    now["metrics"]["detections[other]"] = 3
    st = status(compare(base, now))
    assert st["map50"] == "not measured" and st["zeroed_channels"] == "not measured"
    assert st["detections[other]"] == "new"


def test_a_figure_undefined_on_one_side_compares_by_what_it_means():
    """n/a on both sides is ok; a figure lost is a regression and one gained an improvement, except at 0.0: older
    baselines stored a blind candidate's recall as n/a where it now reads 0 of 4 = 0.0, the same model either way."""
    na_det, na_ref = "n/a (0 detections)", "n/a (0 reference detections)"
    base = entry(map50=0.8, **{"agreement_recall[scene]": na_det, "agreement_precision[scene]": na_det})
    base["metrics"].update({"agreement_recall[other]": 0.9, "agreement_precision[other]": 0.0, "agreement_map50": 0.7})
    now = entry(map50=na_det, **{"agreement_recall[scene]": 0.0, "agreement_precision[scene]": na_det})
    now["metrics"].update({"agreement_recall[other]": na_ref, "agreement_precision[other]": na_det})
    now["metrics"]["agreement_map50"] = 0.0
    rows = {r.metric: r for r in compare(base, now)}
    assert {m: r.status for m, r in rows.items()} == {
        "agreement_recall[other]": "regressed",  # 0.9 -> undefined: the figure was lost
        "agreement_recall[scene]": "not compared",  # n/a -> 0.0: not an improvement
        "agreement_precision[other]": "not compared",  # 0.0 -> n/a: nothing lower to lose
        "agreement_precision[scene]": "ok",  # n/a -> n/a
        "map50": "regressed",
        "agreement_map50": "regressed",  # a defined 0.0 against 0.7 regresses as a number
    }
    assert rows["agreement_recall[scene]"].note == "undefined in the baseline, 0 now; --update-baseline stores it"
    assert rows["agreement_recall[other]"].limit == "0.900, defined"
    assert diff_table([rows["agreement_recall[scene]"], rows["agreement_precision[other]"]]) == []
    gained = entry(**{"agreement_precision[scene]": 0.5})
    assert status(compare(base, gained))["agreement_precision[scene]"] == "improved"


def test_diff_table_is_aligned_and_only_lists_regressions():
    rows = compare(BASE, entry(**{**BASE["metrics"], "params": 3_011_238, "file_size_mb": 6.2, "gflops": 1.0}))
    lines = diff_table(rows)
    assert lines[0].split() == ["metric", "baseline", "now", "limit"]
    assert lines[1].split()[:4] == ["params", "1,000,000", "3,011,238", "<="]
    assert lines[2].split()[:3] == ["file_size_mb", "2.00", "6.20"] and "(+1%)" in lines[2]
    assert len(lines) == 3, "gflops improved: not in the failure table"


# ---------------------------------------------------------------- the gate of one run


def test_no_baseline_yet_is_not_run_with_how_to_create_it(tmp_path):
    gate = BaselineGate(tmp_path / "b.json", suite="bench")
    out = gate.check("pruned", BASE)
    assert out.failure is None and out.status == NOT_RUN == "not run (no baseline yet)"
    how = f"create it with `pytest bench --update-baseline`, review {tmp_path / 'b.json'} and commit it"
    assert out.not_run == f"no baseline yet: {how}" and gate.how_to_create() == how
    assert gate.write() == [] and not (tmp_path / "b.json").exists(), "never written without --update-baseline"


def test_a_required_baseline_that_is_missing_fails_with_the_same_line(tmp_path):
    gate = BaselineGate(tmp_path / "b.json", required="CI=true", suite="bench")
    out = gate.check("pruned", BASE)
    assert out.not_run is None and out.status == "missing (required)"
    assert out.failure == BaselineGate(tmp_path / "b.json", suite="bench").no_baseline_yet() + " (required: CI=true)"
    assert len(out.failure.splitlines()) == 1
    update = BaselineGate(tmp_path / "b.json", update=True, required="CI=true").check("pruned", BASE)
    assert update.failure is None and update.status == "will be added", "--update-baseline creates it, required or not"


@pytest.mark.parametrize(
    "ci, required",
    [("true", "CI=true"), ("1", "CI=1"), ("TRUE", "CI=TRUE"), ("false", None), ("0", None), ("", None), (None, None)],
)
def test_ci_requires_the_baseline(ci, required):
    env = {} if ci is None else {"CI": ci}
    assert required_by(BaselineConfig(), None, env) == required


def test_the_config_requires_the_baseline_and_says_where(tmp_path):
    source = tmp_path / "slimbench.toml"
    assert required_by(BaselineConfig(required=True), source, {}) == f"[baseline] required = true in {source}"
    gate = open_gate(None, False, source, BaselineConfig(required=True), tmp_path, tmp_path, env={}, suite="b")
    assert gate.path == tmp_path / "baseline.json" and gate.required and gate.check("v", BASE).failure
    gate = open_gate(None, False, source, BaselineConfig(), tmp_path, tmp_path, env={"CI": "no"}, suite="b")
    assert gate.required is None and gate.check("v", BASE).failure is None


def test_update_creates_then_reports_changes_atomically(tmp_path):
    p = tmp_path / "sub/b.json"
    gate = BaselineGate(p, update=True)
    assert gate.check("original", BASE).failure is None
    assert gate.write() == [f"baseline {p}: created", "  original: added"]
    assert gate.statuses() == {"original": "written to the baseline"}
    assert [f.name for f in p.parent.iterdir()] == ["b.json"], "no temp file left behind"
    stamp = p.stat().st_mtime_ns

    again = BaselineGate(p, update=True)
    again.check("original", BASE)
    assert again.write() == [f"baseline {p}: unchanged (1 variant(s) checked)"]
    assert p.stat().st_mtime_ns == stamp and again.statuses() == {"original": "unchanged"}

    changed = BaselineGate(p, update=True)
    out = changed.check("original", entry(**{**BASE["metrics"], "params": 1_200_000}))
    assert out.failure is None and out.status == "will be updated"
    assert changed.write() == [f"baseline {p}: updated", "  original: params 1,000,000 -> 1,200,000"]
    assert read_baseline(p)["variants"]["original"]["metrics"]["params"] == 1_200_000


def test_check_fails_with_the_diff_table(tmp_path):
    p = tmp_path / "b.json"
    p.write_bytes(render({"pruned": BASE}))
    gate = BaselineGate(p)
    out = gate.check("pruned", entry(**{**BASE["metrics"], "params": 3_011_238}))
    assert out.status == "1 regressed"
    lines = out.failure.splitlines()
    assert lines[0] == f"pruned: 1 metric(s) outside the baseline {p}"
    assert lines[1].split() == ["metric", "baseline", "now", "limit"]
    assert lines[2].split() == ["params", "1,000,000", "3,011,238", "<=", "1,000,000"]
    assert "--update-baseline" in lines[-1]
    assert out.as_dict()["regressed"] == ["params"]
    assert gate.check("other", BASE).failure.startswith("other: not in the baseline")


def test_update_keeps_metrics_this_run_did_not_measure():
    old = entry({"accuracy_data": "d; 250 images at 256px"}, **{**BASE["metrics"], "map50": 0.8, "detections[gone]": 4})
    now = entry(**{**BASE["metrics"], "params": 5})
    merged = merge_entry(old, now)
    assert merged["metrics"]["map50"] == 0.8 and merged["settings"]["accuracy_data"] == "d; 250 images at 256px"
    assert merged["metrics"]["params"] == 5
    assert "detections[gone]" not in merged["metrics"], "an image no longer in the suite"
    moved = merge_entry(old, entry({"imgsz": 320}, params=5))
    assert "gflops" not in moved["metrics"] and "map50" in moved["metrics"], "gflops depends on imgsz, mAP does not"


def test_int8_and_matrix_cell_figures_are_kept_and_compared(tmp_path):
    """The deployment matrix's deterministic figures: the INT8 file's weights (exact) and each cell's agreement and
    mAP (within their tolerances); all depend on the calibration set, and a default run (no matrix) keeps them."""
    figures = {
        "int8": {"int8_weights_mb": 0.75, "int8_convs": 62, "calibration_sha256": "c1"},
        "matrix_accuracy": {"ort-int8": {"agreement_map50": 0.97, "map50_95": 0.80}, "ov-fp32": {"map50_95": None}},
    }
    settings: dict = dict(SETTINGS)
    matrix = _matrix_metrics(VariantFigures("pruned", "candidate", "p.pt", None, **figures), settings)
    assert matrix == {
        "int8_weights_mb": 0.75,
        "int8_convs": 62.0,
        "cell_agreement_map50[ort-int8]": 0.97,
        "cell_map50_95[ort-int8]": 0.80,
    }  # an undefined figure (None) is not stored as a number
    assert settings["calibration"] == "c1"
    base = entry({"calibration": "c1"}, **BASE["metrics"], **matrix)
    path = tmp_path / "baseline.json"
    path.write_bytes(render({"pruned": base}))
    assert read_baseline(path)["variants"]["pruned"]["metrics"]["cell_map50_95[ort-int8]"] == 0.80
    worse = {**matrix, "int8_weights_mb": 0.76, "cell_map50_95[ort-int8]": 0.78, "cell_agreement_map50[ort-int8]": 0.96}
    st = status(compare(base, entry({"calibration": "c1"}, **BASE["metrics"], **worse)))
    assert st["int8_weights_mb"] == "regressed" and st["cell_map50_95[ort-int8]"] == "regressed"
    assert st["cell_agreement_map50[ort-int8]"] == "ok" and st["int8_convs"] == "ok"  # within 0.02; exact
    st = status(compare(base, entry({"calibration": "c2"}, **BASE["metrics"], **worse)))
    assert st["int8_weights_mb"] == "not compared" and st["params"] == "ok"  # other calibration images
    kept = merge_entry(base, entry(**BASE["metrics"]))  # a run without the matrix
    assert kept["metrics"]["int8_convs"] == 62 and kept["settings"]["calibration"] == "c1"
