"""The accuracy part of the suite end to end, run by pytester on tiny variants and a tiny labelled dataset: figures
and gates with --data and --agreement-images, deselection with -m "not accuracy", and one line for each bad input,
before any test runs and with nothing written."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import tiny_models
from test_accuracy import write_dataset

from slimbench.model.checkpoint import save_detector

SETTINGS = {**tiny_models.SUITE_SETTINGS}
LABELS = {"a": "0 0.3 0.3 0.3 0.3\n1 0.7 0.7 0.2 0.2\n", "b": "1 0.5 0.5 0.4 0.4\n", "c": ""}


@pytest.fixture(scope="module")
def imported_once(imported_once, tiny, tmp_path_factory) -> None:
    """Validate and predict once in this process before any in-process pytester run (see conftest.imported_once,
    which this overrides)."""
    from slimbench.measure.datasets import read_dataset
    from slimbench.measure.validator import run_validator, write_val_yaml
    from slimbench.model.checkpoint import load_detector
    from slimbench.model.detections import detect

    root = tmp_path_factory.mktemp("warm")
    model = load_detector(tiny.original)
    data = write_val_yaml(read_dataset(write_dataset(root / "ds", LABELS)), dict(model.names), root)
    run_validator(model, data, 64, workdir=root / "runs")
    detect(model, tiny.scene, imgsz=64)


@pytest.fixture
def suite(bench_dir: pytest.Pytester, tiny) -> pytest.Pytester:
    """bench_dir with tiny checkpoints (original, copy, blind, other-names), a labelled dataset and a suite.toml."""
    p = bench_dir.path
    tiny_models.copy_into(p, tiny.original, tiny.copy, tiny.blind, tiny.scene)
    other = tiny_models.build_detector("yolov8n.yaml", nc=2)
    other.names = {0: "square", 1: "dog"}
    save_detector(other, p / "other-names.pt")
    write_dataset(p / "ds", LABELS)
    (p / "unlabeled").mkdir()
    for name in ("x.jpg", "y.jpg"):
        tiny_models.write_scene(p / "unlabeled" / name, 96)
    write_toml(p / "suite.toml")
    return bench_dir


def write_toml(path: Path, thresholds: dict | None = None, **settings) -> Path:
    return tiny_models.write_suite(
        path,
        {"original": "original.pt", "copy": "copy.pt", "blind": "blind.pt"},
        "original",
        {**SETTINGS, "data": "ds/data.yaml", "val_imgsz": 64, **settings},
        thresholds
        if thresholds is not None
        else {
            "copy": {"max_map50_95_drop": 0.0, "min_agreement_map50": 0.999},
            "blind": {"min_agreement_map50": 0.5},  # detects nothing
        },
    )


def write_pair(path: Path, settings: dict, copy_limits: dict) -> Path:
    """A suite of the original and its copy, with limits on the copy only."""
    variants = {"original": "original.pt", "copy": "copy.pt"}
    return tiny_models.write_suite(path, variants, "original", settings, {"copy": copy_limits})


run = functools.partial(tiny_models.run_suite, target="benchmarks/test_accuracy.py")


def test_accuracy_measures_and_gates(suite):
    result = run(suite, "--agreement-images", "unlabeled")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "blind: agreement mAP50 0.000 < min 0.500 (original's " in out  # finds none of its boxes: 0, never 1.0
    blind_row = next(line for line in result.stdout.lines if line.startswith("blind "))
    assert blind_row.split()[-3:] == ["0.000", "0.000", "n/a"], blind_row  # precision: 0 of 0 boxes, undefined
    assert "boxes at conf 0.25 as truth, 2 images at 64px; recall " in out
    assert "accuracy: mAP on " in out and "data.yaml, 3 images at 64px (cpu)" in out
    assert "on 2 image(s)" in out
    copy_row = next(line for line in result.stdout.lines if line.startswith("copy "))
    assert copy_row.split()[6:9] == ["1.000", "1.000", "1.000"], copy_row  # agreement with itself
    assert copy_row.split()[5] == "0.000", copy_row  # no mAP drop
    assert not (suite.path / "runs").exists(), "the validator wrote into the working directory"


def test_accuracy_can_be_deselected(suite):
    result = run(suite, "-m", "not accuracy")
    result.assert_outcomes(deselected=5)
    assert "accuracy: mAP" not in result.stdout.str()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "nope.yaml: dataset YAML not found"),
        ("no-val", "noval.yaml: no val split"),
        ("class-id", "b.txt:1: class id 2 is outside 0-1, the 2 classes of original ("),
        ("dataset-names", "data.yaml: class names differ from original ("),
        ("variant-names", "other-names.pt: class names differ from reference 'original' ("),
        ("images", "nowhere: agreement images not found"),
        ("renamed", "--images was renamed --agreement-images (agreement folder; --image stays the sample images)"),
        ("toml", "suite.toml: settings.data: expected a non-empty path"),
        ("no-labels", "thresholds.copy.max_map50_95_drop is set but cannot be measured in this run: "),
        ("no-dataset", "thresholds.copy.max_map50_95_drop is set but cannot be measured in this run: the default "),
        ("no-images", "thresholds.copy.min_agreement_map50 is set but cannot be measured in this run: no agreement"),
        (
            "no-one-to-one",
            "thresholds.copy.max_map50_95_nms_free_drop is set but cannot be measured in this run: no one-to-one "
            "(NMS-free) head in original (",
        ),
    ],
)
def test_bad_accuracy_input_stops_with_one_line(suite, case, expected):
    p = suite.path
    args: list[str] = []
    if case == "missing":
        args = ["--data", "nope.yaml"]
    elif case == "no-val":
        (p / "noval.yaml").write_text("path: ds\ntrain: images/val\nnames: [square, circle]\n")
        args = ["--data", "noval.yaml"]
    elif case == "class-id":
        (p / "ds" / "labels" / "val" / "b.txt").write_text("2 0.5 0.5 0.4 0.4\n")
    elif case == "dataset-names":
        (p / "ds" / "data.yaml").write_text("val: images/val\nnames: [square, cat]\n")
    elif case == "variant-names":
        args = ["--variant", "blind=other-names.pt"]
    elif case == "images":
        args = ["--agreement-images", "nowhere"]
    elif case == "renamed":  # the old spelling: one line saying so, not a silent alias
        args = ["--images", "unlabeled"]
    elif case == "toml":
        write_toml(p / "suite.toml", data=5)
    elif case == "no-labels":  # labels removed: mAP is undefined, and a configured mAP limit cannot pass silently
        for f in (p / "ds" / "labels").rglob("*.txt"):
            f.write_text("")
    elif case == "no-dataset":  # the tiny models' classes are not the bundled dataset's and no --data is given
        write_pair(p / "suite.toml", {**SETTINGS, "val_imgsz": 64}, {"max_map50_95_drop": 0.02})
    elif case == "no-images":
        settings = {**{k: v for k, v in SETTINGS.items() if k != "images"}, "data": "ds/data.yaml"}
        write_pair(p / "suite.toml", settings, {"min_agreement_map50": 0.5})
    elif case == "no-one-to-one":  # YOLOv8 heads: an NMS-free limit cannot pass silently
        write_pair(p / "suite.toml", {**SETTINGS, "data": "ds/data.yaml"}, {"max_map50_95_nms_free_drop": 0.02})
    before = {f for f in p.rglob("*") if "__pycache__" not in f.parts}
    result = run(suite, *args, "--junitxml=out/junit.xml", cache=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.lines
    assert errors[0].startswith("ERROR: slimbench: ") and expected in errors[0], errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert {f for f in p.rglob("*") if "__pycache__" not in f.parts} == before, "nothing written"


YOLO26N = Path(__file__).resolve().parents[1] / "fixtures" / "yolo26n" / "models" / "original.pt"


def test_nms_free_map_is_measured_and_gated_beside_nms(bench_dir: pytest.Pytester):
    """A YOLO26 checkpoint is validated through both heads: a copy whose one-to-one class towers are blinded keeps
    its mAP with NMS (one-to-many) and loses all of it without NMS; the NMS-free limit judges the second."""
    import torch

    from slimbench.data.synthetic import make_dataset
    from slimbench.model.checkpoint import load_detector

    assert YOLO26N.is_file(), f"bundled fixture missing: {YOLO26N}"
    p = bench_dir.path
    make_dataset(p / "ds", train=1, val=12, imgsz=256, seed=3, splits=("val",))
    blind = load_detector(YOLO26N)
    head = blind.model.model[-1]
    with torch.no_grad():
        for tower in head.one2one_cv3:  # one-to-one class logits -> sigmoid ~ 0: no box without NMS
            tower[-1].bias.fill_(-50.0)
    save_detector(blind.model, p / "blind26.pt")
    variants = {"original": str(YOLO26N), "copy": str(YOLO26N), "blind": "blind26.pt"}
    limits = {"max_map50_95_drop": 0.0, "max_map50_95_nms_free_drop": 0.05}
    settings = {**{k: v for k, v in SETTINGS.items() if k != "images"}, "data": "ds/data.yaml", "val_imgsz": 256}
    tiny_models.write_suite(p / "suite.toml", variants, "original", settings, {"copy": limits, "blind": limits})
    result = run(bench_dir, "-k", "test_map", "--slimbench-reports", "out")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "blind: NMS-free mAP50-95 drop " in out and "> max 0.050 (0.000 vs " in out, out
    assert "mAP50-95 drop" not in out.replace("NMS-free mAP50-95 drop", ""), "the NMS (one-to-many) gate passed"
    head_row = next(line for line in result.stdout.lines if line.startswith("variant ") and "mAP50" in line)
    assert head_row.split()[1:7] == ["mAP50", "mAP50-95", "NF", "mAP50", "NF", "50-95"], head_row
    assert "NF: NMS-free, the one-to-one head's boxes without NMS" in out
    rows = {line.split()[0]: line.split() for line in result.stdout.lines if line.split()[:1] in (["copy"], ["blind"])}
    original = next(line.split() for line in result.stdout.lines if line.startswith("original ") and "0." in line)
    # cells: mAP50, mAP50-95, NMS-free mAP50, NMS-free mAP50-95
    assert rows["blind"][1:3] == original[1:3] and rows["blind"][3:5] == ["0.000", "0.000"], (original, rows["blind"])
    assert rows["copy"][1:5] == original[1:5] and float(original[4]) > 0.3, (original, rows["copy"])
    assert float(original[3]) >= float(original[4]), original
    summary = json.loads((p / "out" / "summary.json").read_text())
    acc = {r["variant"]: r for r in summary["rows"]}
    assert (
        acc["blind"]["map50_95_nms_free"] == 0.0
        and acc["copy"]["map50_95_nms_free"] == acc["original"]["map50_95_nms_free"]
    )
    assert "map50_95_nms_free" in summary["tables"]["accuracy"]
    # its mAP50 too: a column of its own, kept like the one-to-many head's
    assert acc["blind"]["map50_nms_free"] == 0.0 and acc["copy"]["map50_nms_free"] == acc["original"]["map50_nms_free"]
    assert acc["original"]["map50_nms_free"] >= acc["original"]["map50_95_nms_free"] > 0.3
    assert "map50_nms_free" in summary["tables"]["accuracy"]
    verdict = next(v for v in summary["verdicts"] if v["variant"] == "blind")
    assert verdict["map50_95_nms_free_change"] == -acc["original"]["map50_95_nms_free"]
    assert ", NMS-free -" in verdict["line"]
