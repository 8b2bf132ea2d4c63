"""Accuracy: the validator's mAP equals ultralytics' own, agreement scoring (1.0 with itself, lower when damaged),
the val-only synthetic split, and one clear error line for each bad dataset.

The bundled-variant tests read fixtures/models/original.pt and fixtures/manifest.json (``slimbench make-fixtures``);
point ``SLIMBENCH_FIXTURES`` at another build's output folder to run them against it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_models
import torch

from slimbench.bench.session import SuiteSession
from slimbench.config.suite import load_config
from slimbench.core.errors import SlimbenchError
from slimbench.core.files import image_files
from slimbench.data.synthetic import make_dataset
from slimbench.measure.agreement import agreement_score, coco_ap
from slimbench.measure.datasets import (
    bundled_dataset,
    bundled_params,
    check_dataset_names,
    check_labels,
    read_dataset,
)
from slimbench.model.checkpoint import load_detector
from slimbench.model.detections import Detections, detect, read_image

FIXTURES = Path(os.environ.get("SLIMBENCH_FIXTURES") or Path(__file__).resolve().parents[1] / "fixtures")


# --------------------------------------------------------------------------------------------- scoring


def dets(boxes, classes, confs) -> Detections:
    return Detections.from_lists(boxes, classes, confs)


def test_coco_ap_reads_101_recall_points():
    assert coco_ap(np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]), 3) == 1.0  # perfect: 1.0, not 0.995
    assert coco_ap(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.7]), 3) == pytest.approx(67 / 101)  # recall 2/3
    # a false positive ranked first: precision 1/2 at recall 1/2, 2/3 at recall 1
    assert coco_ap(np.array([0, 1, 1]), np.array([0.9, 0.8, 0.7]), 2) == pytest.approx(2 / 3)
    assert coco_ap(np.array([], dtype=bool), np.array([]), 2) == 0.0
    assert np.isnan(coco_ap(np.array([1]), np.array([0.5]), 0))


def test_agreement_score_of_identical_detections_is_one():
    a = dets([[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 8, 8]], [0, 1, 1], [0.9, 0.6, 0.1])
    b = dets([[50, 50, 60, 60]], [2], [0.3])
    score = agreement_score([a, b, Detections()], [a, b, Detections()], conf=0.25)
    assert (score.map50, score.recall, score.precision) == (1.0, 1.0, 1.0)
    assert score.reference_boxes == 3 and score.candidate_boxes == 3 and score.images == 3  # conf >= 0.25 only
    assert score.per_class == {0: 1.0, 1: 1.0, 2: 1.0}


def test_agreement_score_counts_misses_and_extras():
    ref = dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [0.9, 0.9])
    cand = dets([[0, 0, 10, 10], [40, 40, 50, 50]], [0, 0], [0.9, 0.8])
    score = agreement_score([ref], [cand], conf=0.25)
    assert score.recall == 0.5 and score.precision == 0.5 and score.matched == 1
    assert score.map50 == pytest.approx(51 / 101)  # precision 1 up to recall 0.5, nothing beyond


def test_agreement_score_is_undefined_only_where_its_own_denominator_is_zero():
    ref = dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [0.9, 0.9])
    cand = dets([[0, 0, 10, 10], [40, 40, 50, 50]], [0, 0], [0.9, 0.8])
    blind = agreement_score([ref], [Detections()], conf=0.25)  # finds nothing: mAP and recall 0.0, not undefined
    assert (blind.map50, blind.recall, blind.precision) == (0.0, 0.0, None)
    assert blind.per_class == {0: 0.0, 1: 0.0}
    assert blind.as_dict()["precision"] == blind.shown("precision") == "n/a (0 detections)"
    assert blind.undefined("map50") is None and blind.undefined("recall") is None
    faint = agreement_score([ref], [dets([[0, 0, 10, 10]], [0], [0.1])], conf=0.25)  # ranked, but below conf
    assert faint.map50 == pytest.approx(0.5) and (faint.recall, faint.precision) == (0.0, None)
    nothing = agreement_score([Detections()], [cand], conf=0.25)  # no reference box: nothing to find
    assert (nothing.map50, nothing.recall, nothing.precision) == (None, None, 0.0)
    assert nothing.shown("map50") == nothing.shown("recall") == "n/a (0 reference detections)"
    empty = agreement_score([Detections()], [Detections()], conf=0.25)
    assert [empty.shown(k) for k in ("map50", "recall", "precision")] == [
        "n/a (0 reference detections)",
        "n/a (0 reference detections)",
        "n/a (0 detections)",
    ]


# --------------------------------------------------------------------------------------------- synthetic data


def test_val_only_split_has_the_full_datasets_val_bytes(tmp_path):
    full = make_dataset(tmp_path / "full", train=2, val=3, imgsz=64, seed=5).parent
    val = make_dataset(tmp_path / "val", train=2, val=3, imgsz=64, seed=5, splits=("val",)).parent
    assert not (val / "images" / "train").exists()
    assert json.loads((val / "meta.json").read_text())["splits"] == ["val"]
    assert "splits" not in json.loads((full / "meta.json").read_text())
    for sub in ("images", "labels"):
        names = sorted(f.name for f in (full / sub / "val").iterdir())
        assert names == sorted(f.name for f in (val / sub / "val").iterdir()) and len(names) == 3
        for n in names:
            assert (full / sub / "val" / n).read_bytes() == (val / sub / "val" / n).read_bytes()
    # a cache: found complete, whatever the train count (no train image was written)
    assert make_dataset(tmp_path / "val", train=9, val=3, imgsz=64, seed=5, splits=["val"]) == val / "data.yaml"
    with pytest.raises(SlimbenchError, match="splits must be a non-empty subset"):
        make_dataset(tmp_path / "bad", train=2, val=3, splits=("test",))


def test_bundled_params_come_from_the_manifest(tmp_path):
    assert bundled_params(None) == {"seed": 0, "train": 1000, "val": 250, "imgsz": 256}
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps({"dataset": {"seed": 3, "train": 10, "val": 4, "imgsz": 64}}))
    assert bundled_params(m) == {"seed": 3, "train": 10, "val": 4, "imgsz": 64}
    yaml_path = bundled_dataset(tmp_path / "cache", bundled_params(m))
    ds = read_dataset(yaml_path)
    assert len(ds.images) == 4 and ds.names is not None and ds.names[0] == "circle"


# --------------------------------------------------------------------------------------------- bad datasets


def write_dataset(root: Path, labels: dict[str, str], yaml_text: str | None = None, names=("square", "circle")) -> Path:
    """A tiny YOLO dataset: one image per label file, under root/images/val and root/labels/val."""
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
    for stem, text in labels.items():
        tiny_models.write_scene(root / "images" / "val" / f"{stem}.jpg", 64)
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    y = root / "data.yaml"
    y.write_text(yaml_text if yaml_text is not None else f"train: images/val\nval: images/val\nnames: {list(names)}\n")
    return y


def test_read_dataset_resolves_val_and_lists_images(tmp_path):
    y = write_dataset(tmp_path / "ds", {"a": "0 0.5 0.5 0.2 0.2\n", "b": ""})
    (tmp_path / "ds" / "images" / "val" / "notes.txt").write_text("not an image")
    ds = read_dataset(y)
    assert [p.name for p in ds.images] == ["a.jpg", "b.jpg"] and ds.names == {0: "square", 1: "circle"}
    assert check_labels(ds, 2, "m") == 1
    listing = tmp_path / "ds" / "list.txt"
    listing.write_text("./images/val/b.jpg\n")
    y2 = tmp_path / "ds" / "list.yaml"
    y2.write_text("val: list.txt\nnc: 2\n")  # no path (the YAML's folder), no train, no names
    ds2 = read_dataset(y2)
    assert [p.name for p in ds2.images] == ["b.jpg"] and ds2.names is None and ds2.nc == 2


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "nope.yaml: dataset YAML not found"),
        ("no-val", "data.yaml: no val split"),
        ("val-missing", "data.yaml: val split not found: "),
        ("no-images", "data.yaml: no images in the val split"),
        ("malformed", "data.yaml: malformed dataset YAML"),
        ("class-id", "b.txt:2: class id 2 is outside 0-1, the 2 classes of m; dataset "),
        ("dataset-classes", "a.txt:1: class id 1 is outside 0-0, the 1 classes of the dataset; dataset "),
        ("names", "data.yaml: class names differ from m's: id 1 'dog' vs 'circle'"),
    ],
)
def test_bad_dataset_is_one_error_naming_the_file(tmp_path, case, expected):
    root = tmp_path / "ds"
    y = write_dataset(root, {"a": "1 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.1 0.1\n"})
    if case == "missing":
        y = root / "nope.yaml"
    elif case == "no-val":
        y.write_text("train: images/val\nnames: [square, circle]\n")
    elif case == "val-missing":
        y.write_text("train: images/val\nval: images/elsewhere\nnames: [square, circle]\n")
    elif case == "no-images":
        (root / "images" / "empty").mkdir()
        y.write_text("val: images/empty\nnames: [square, circle]\n")
    elif case == "malformed":
        y.write_text("val: [images/val\n")
    elif case == "dataset-classes":
        y.write_text("val: images/val\nnames: [square]\n")
    elif case == "names":
        y.write_text("val: images/val\nnames: [square, dog]\n")
    with pytest.raises(SlimbenchError) as e:
        ds = read_dataset(y)
        check_dataset_names(ds, {0: "square", 1: "circle"}, "m")
        check_labels(ds, 2, "m")
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg


def test_agreement_images_folder(tmp_path):
    with pytest.raises(SlimbenchError, match="agreement images not found"):
        image_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlimbenchError, match="empty: no images in the folder"):
        image_files(tmp_path / "empty")
    tiny_models.write_scene(tmp_path / "imgs" / "b.jpg", 32)
    tiny_models.write_scene(tmp_path / "imgs" / "sub" / "a.png", 32)
    (tmp_path / "imgs" / "b.txt").write_text("labels are not images")
    assert [p.name for p in image_files(tmp_path / "imgs")] == ["b.jpg", "a.png"]


# --------------------------------------------------------------------------------------------- bundled variants


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled original, its manifest and a suite config naming it, in a temp folder."""
    original, manifest = FIXTURES / "models" / "original.pt", FIXTURES / "manifest.json"
    missing = [str(p) for p in (original, manifest) if not p.is_file()]
    assert not missing, f"bundled fixtures missing: {missing} (build them: slimbench make-fixtures)"
    root = tmp_path_factory.mktemp("bundled")
    shutil.copy(manifest, root / "manifest.json")  # the suite finds its dataset parameters next to its config
    toml = tiny_models.write_suite(root / "suite.toml", {"original": original}, "original", {"device": ["cpu"]})
    return {"original": original, "manifest": manifest, "toml": toml, "root": root}


def test_map_of_bundled_original_matches_ultralytics_val(bundled, tmp_path):
    from ultralytics import YOLO

    session = SuiteSession(load_config(bundled["toml"]), cache_dir=bundled["root"] / "cache")
    session.load()
    acc = session.accuracy
    assert session.map_unsupported() is None
    ours = session.map_metrics("original")
    ds = acc.dataset()
    params = json.loads(bundled["manifest"].read_text())["dataset"]
    assert ds.bundled and len(ds.images) == params["val"] and ours["val_imgsz"] == params["imgsz"]
    assert session.map_metrics("original") is ours, "validated once per session"

    direct = YOLO(str(bundled["original"])).val(
        data=str(ds.yaml), imgsz=params["imgsz"], plots=False, verbose=False, project=str(tmp_path), name="v"
    )
    assert ours["map50"] == pytest.approx(float(direct.box.map50), abs=1e-9)
    assert ours["map50_95"] == pytest.approx(float(direct.box.map), abs=1e-9)
    assert ours["precision"] == pytest.approx(float(direct.box.mp), abs=1e-9)
    assert ours["recall"] == pytest.approx(float(direct.box.mr), abs=1e-9)
    assert ours["predictions"] > 0
    recorded = json.loads(bundled["manifest"].read_text())["variants"]["original"]
    assert ours["map50_95"] == pytest.approx(recorded["map50_95"], abs=0.005), "the build measured the same"
    assert not list((bundled["root"] / "cache" / "val-runs").iterdir()), "validator scratch removed"


def test_nms_free_validation_is_ultralytics_own_on_the_one_to_one_head(bundled, tmp_path):
    """YOLO26's one-to-one head is validated as ultralytics does with ``nms=False``; a YOLOv8 head has none."""
    from ultralytics import YOLO

    from slimbench.measure.validator import has_nms_free_head, run_validator

    yolo26 = FIXTURES / "yolo26n" / "models" / "original.pt"
    assert yolo26.is_file(), f"bundled fixture missing: {yolo26}"
    assert not has_nms_free_head(load_detector(bundled["original"]))
    model = load_detector(yolo26)
    assert has_nms_free_head(model)
    data = make_dataset(tmp_path / "ds", train=1, val=16, imgsz=256, seed=4, splits=("val",))
    free = run_validator(model, data, 256, workdir=tmp_path / "runs", nms_free=True)
    nms = run_validator(model, data, 256, workdir=tmp_path / "runs")
    direct = YOLO(str(yolo26)).val(
        data=str(data), imgsz=256, batch=16, nms=False, plots=False, verbose=False, project=str(tmp_path), name="v"
    )
    assert free["map50_95"] == pytest.approx(float(direct.box.map), abs=1e-9)
    assert free["map50"] == pytest.approx(float(direct.box.map50), abs=1e-9)
    assert free["map50_95"] > 0.3 and nms["map50_95"] > 0.3
    assert free["map50_95"] != nms["map50_95"], "two heads, two figures"
    assert not getattr(model.model.model[-1], "_end2end", False), "the caller's model keeps its mode"


def test_precision_is_undefined_when_the_validator_scores_no_box(bundled, tmp_path):
    """ultralytics reports precision 0.0 for a model that predicts nothing; 0 of 0 is undefined, never 0 or 1."""
    from ultralytics import YOLO
    from ultralytics.nn.modules.head import Detect

    from slimbench.measure.validator import run_validator, write_val_yaml

    ds = read_dataset(bundled_dataset(bundled["root"] / "cache", bundled_params(bundled["manifest"])))
    blind = YOLO(str(bundled["original"]))
    yaml = write_val_yaml(ds, dict(blind.names), tmp_path / "data", limit=8)
    seeing = run_validator(blind, yaml, 256, workdir=tmp_path / "runs")
    assert seeing["predictions"] > 0 and 0 < seeing["precision"] <= 1 and seeing["labels"] > 0
    head = next(m for m in blind.model.modules() if isinstance(m, Detect))
    with torch.no_grad():
        for branch in head.cv3:  # class logits -> sigmoid ~ 0: no box passes conf 0.001
            branch[-1].bias.fill_(-50.0)
    figs = run_validator(blind, yaml, 256, workdir=tmp_path / "runs")
    assert figs["predictions"] == 0 and figs["precision"] is None
    assert figs["map50_95"] == 0.0 and figs["recall"] == 0.0  # labelled boxes, none found: defined, and zero
    assert figs["labels"] == seeing["labels"]


def test_recall_is_undefined_when_the_val_split_has_no_labelled_box(bundled, tmp_path):
    """Recall divides by the labelled boxes: with none it is 0 of 0, undefined; the boxes the model predicts there
    are all false, so precision is a defined 0.0."""
    import yaml
    from ultralytics import YOLO

    from slimbench.measure.validator import run_validator

    ds = read_dataset(bundled_dataset(bundled["root"] / "cache", bundled_params(bundled["manifest"])))
    model = YOLO(str(bundled["original"]))
    folder = tmp_path / "unlabelled" / "images" / "val"
    folder.mkdir(parents=True)
    for image in ds.images[:4]:
        shutil.copy(image, folder / Path(image).name)
    data = tmp_path / "unlabelled" / "data.yaml"
    spec = {"path": str(tmp_path / "unlabelled"), "train": "images/val", "val": "images/val", "names": model.names}
    data.write_text(yaml.safe_dump(spec))
    figs = run_validator(model, data, 256, workdir=tmp_path / "runs")
    assert figs["labels"] == 0 and figs["recall"] is None
    assert figs["predictions"] > 0 and figs["precision"] == 0.0


def test_agreement_is_one_with_itself_and_drops_when_damaged(bundled):
    data = bundled_dataset(bundled["root"] / "cache", bundled_params(bundled["manifest"]))
    images = [read_image(p) for p in read_dataset(data).images[:16]]

    def detections(model) -> list[Detections]:
        return [detect(model, img, 256, conf=0.001, iou=0.7) for img in images]

    reference = detections(load_detector(bundled["original"]))
    itself = agreement_score(reference, detections(load_detector(bundled["original"])), conf=0.25)
    assert itself.reference_boxes > 30
    assert (itself.map50, itself.recall, itself.precision) == (1.0, 1.0, 1.0)

    damaged = load_detector(bundled["original"])
    assert tiny_models.mask_channels(damaged.model, fraction=0.5, every=16) > 0  # half the channels of 1 conv in 16
    score = agreement_score(reference, detections(damaged), conf=0.25)
    assert score.map50 < 0.9 and score.recall < 0.9, score


# --------------------------------------------------------------------------------------------- config


def test_config_keys_and_command_line(tmp_path):
    from slimbench.config.overrides import Overrides, apply_overrides

    toml = tiny_models.write_suite(
        tmp_path / "suite.toml",
        {"original": "o.pt", "pruned": "p.pt"},
        "original",
        {"data": "ds/data.yaml", "agreement_images": "imgs", "val_imgsz": 320},
        {"pruned": {"max_map50_95_drop": 0.02, "min_agreement_map50": 0.8}},
    )
    cfg = load_config(toml)
    s = cfg.settings
    assert (s.data, s.agreement_images, s.val_imgsz) == (tmp_path / "ds/data.yaml", tmp_path / "imgs", 320)
    assert cfg.limits("pruned").max_map50_95_drop == 0.02 and cfg.limits("pruned").min_agreement_map50 == 0.8
    cwd = tmp_path / "elsewhere"
    s2 = apply_overrides(cfg, Overrides(data="d.yaml", agreement_images="unlabeled"), cwd).settings
    assert (s2.data, s2.agreement_images) == (cwd / "d.yaml", cwd / "unlabeled")
    for key, value, what in (("data", 5, "expected a non-empty path"), ("val_imgsz", 100, "multiple of 32")):
        tiny_models.write_suite(toml, {"original": "o.pt"}, "original", {key: value})
        with pytest.raises(SlimbenchError, match=f"suite.toml: settings.{key}: .*{what}|{what}"):
            load_config(toml)
