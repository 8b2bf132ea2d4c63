"""Synthetic shapes dataset: deterministic bytes, valid YOLO layout, tight boxes, safe reuse of a folder."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from slimbench.core.errors import SlimbenchError
from slimbench.data import scenes
from slimbench.data.synthetic import CLASS_NAMES, load_labels, make_dataset, make_scene

SMALL = {"train": 6, "val": 3, "imgsz": 128}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _pixel_box(label: tuple[int, float, float, float, float], w: int, h: int) -> tuple[float, ...]:
    """Label -> (x0, y0, x1, y1) in pixel-edge coordinates."""
    _, cx, cy, bw, bh = label
    return ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", seed=3, **SMALL).parent
    b = make_dataset(tmp_path / "b", seed=3, **SMALL).parent
    c = make_dataset(tmp_path / "c", seed=4, **SMALL).parent
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    # data.yaml holds the absolute folder path, so it is the one file that legitimately differs
    yaml_a, yaml_b = ha.pop("data.yaml"), hb.pop("data.yaml")
    assert yaml_a != yaml_b
    assert (a / "data.yaml").read_text().replace(str(a), "X") == (b / "data.yaml").read_text().replace(str(b), "X")
    assert len(ha) == 2 * (SMALL["train"] + SMALL["val"]) + 1  # images, labels, meta.json
    assert ha == hb
    images = [k for k in ha if k.endswith(".jpg")]
    assert all(ha[k] != hc[k] for k in images)


def test_images_do_not_depend_on_generation_order(tmp_path: Path) -> None:
    small = make_dataset(tmp_path / "small", train=2, val=1, imgsz=128, seed=5).parent
    big = make_dataset(tmp_path / "big", train=4, val=2, imgsz=128, seed=5).parent
    for rel in ("images/train/000001.jpg", "labels/train/000001.txt", "images/val/000000.jpg"):
        assert (small / rel).read_bytes() == (big / rel).read_bytes()


def test_data_yaml_layout_and_counts(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    data_yaml = make_dataset(out, **SMALL)
    assert data_yaml == out.absolute() / "data.yaml"
    data = yaml.safe_load(data_yaml.read_text())
    assert data["nc"] == len(CLASS_NAMES) >= 5
    assert data["names"] == dict(enumerate(CLASS_NAMES))
    assert Path(data["path"]) == out.absolute()
    for split in ("train", "val"):
        n = SMALL[split]
        assert data[split] == f"images/{split}"
        images = sorted((Path(data["path"]) / data[split]).glob("*.jpg"))
        labels = sorted((out / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == n
        assert [p.stem for p in images] == [p.stem for p in labels]
        for p in images:
            img = cv2.imread(str(p))
            assert img is not None and img.shape == (SMALL["imgsz"], SMALL["imgsz"], 3)


def test_label_lines_are_valid_yolo(tmp_path: Path) -> None:
    out = make_dataset(tmp_path / "ds", train=12, val=3, imgsz=160, seed=1).parent
    files = sorted((out / "labels").rglob("*.txt"))
    counts, classes = [], set()
    for f in files:
        labels = load_labels(f)
        counts.append(len(labels))
        for cls, cx, cy, w, h in labels:
            classes.add(cls)
            assert 0 <= cls < len(CLASS_NAMES)
            assert 0 < w <= 1 and 0 < h <= 1
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6
            assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6
    assert min(counts) >= 1 and max(counts) <= 6
    assert len(classes) >= 4  # a random mix, not one class


@pytest.mark.parametrize("cls", range(len(CLASS_NAMES)))
def test_rasterized_shape_matches_its_polygon(cls: int) -> None:
    rng = np.random.default_rng(cls)
    for _ in range(20):
        size = rng.uniform(8, 120)
        polys = [p + (100.3, 90.7) for p in scenes.outline(cls, size, rng.uniform(0, 2 * math.pi))]
        x0, y0, mask = scenes._rasterize(polys, 256, 256)
        bx0, by0, bx1, by1 = scenes._mask_box(mask)
        vmin, vmax = polys[0].min(axis=0), polys[0].max(axis=0)
        # pixel i covers [i, i+1); polygon vertices are in pixel-centre coordinates (pixel i centre = i)
        assert abs((bx0 + x0) - vmin[0]) <= 1.0 and abs((bx1 + x0) - vmax[0]) <= 1.0
        assert abs((by0 + y0) - vmin[1]) <= 1.0 and abs((by1 + y0) - vmax[1]) <= 1.0


def test_label_box_is_tight_box_of_drawn_object() -> None:
    sizes = []
    for i in range(40):
        img, labels = scenes.render_sample(np.random.default_rng([9, i]), 128, n_objects=1, plain=True)
        assert len(labels) == 1
        drawn = np.any(img != 127, axis=2)
        ys, xs = np.nonzero(drawn)
        truth = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        box = _pixel_box(labels[0], 128, 128)
        assert np.allclose(box, truth, atol=1.0), (i, box, truth)
        sizes.append(max(truth[2] - truth[0], truth[3] - truth[1]))
    assert min(sizes) < 0.15 * 128 and max(sizes) > 0.3 * 128  # small and large objects both occur


def test_overlapping_objects_are_boxed_by_their_visible_part() -> None:
    rng = np.random.default_rng(0)
    canvas = scenes.Canvas(np.full((100, 100, 3), 127.0, np.float32))
    square = [np.array([[10.0, 10.0], [59.0, 10.0], [59.0, 59.0], [10.0, 59.0]])]
    cover = [np.array([[50.0, 0.0], [99.0, 0.0], [99.0, 99.0], [50.0, 99.0]])]  # hides 10 of 50 columns
    assert canvas.try_place(rng, 1, square, np.array([0.0, 0.0, 0.0]))
    assert canvas.try_place(rng, 1, cover, np.array([255.0, 255.0, 255.0]))
    first, second = canvas.labels()
    assert np.allclose(_pixel_box(first, 100, 100), (10, 10, 50, 60), atol=1.0)
    assert np.allclose(_pixel_box(second, 100, 100), (50, 0, 100, 100), atol=1.0)
    # an object that would hide most of another is refused
    assert not canvas.try_place(rng, 1, [np.array([[0.0, 0.0], [49.0, 0.0], [49.0, 99.0], [0.0, 99.0]])])


def test_make_scene_size_and_object_count(tmp_path: Path) -> None:
    image = make_scene(tmp_path / "scene.jpg", size=320, n_objects=9, seed=2)
    assert image == tmp_path / "scene.jpg"
    img = cv2.imread(str(image))
    assert img is not None and img.shape == (320, 320, 3)
    labels = load_labels(tmp_path / "scene.txt")
    assert len(labels) == 9
    boxes = [_pixel_box(lab, 320, 320) for lab in labels]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] < a[2] <= 320 and 0 <= a[1] < a[3] <= 320
        assert 0.05 * 320 <= max(a[2] - a[0], a[3] - a[1]) <= 0.4 * 320  # training-like pixel sizes
        for b in boxes[i + 1 :]:  # objects do not overlap
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    again = make_scene(tmp_path / "again.jpg", tmp_path / "lab" / "again.txt", size=320, n_objects=9, seed=2)
    assert again.read_bytes() == image.read_bytes()
    assert (tmp_path / "lab" / "again.txt").read_bytes() == (tmp_path / "scene.txt").read_bytes()


def test_scene_that_cannot_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SlimbenchError, match="do not fit"):
        make_scene(tmp_path / "scene.jpg", size=128, n_objects=100)


def test_regenerating_same_dataset_is_a_noop(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    make_dataset(out, seed=7, **SMALL)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert make_dataset(out, seed=7, **SMALL) == out.absolute() / "data.yaml"
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_incomplete_dataset_is_completed_with_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    make_dataset(out, seed=7, **SMALL)
    reference = _hashes(out)
    (out / "data.yaml").unlink()
    (out / "images" / "train" / "000002.jpg").unlink()
    make_dataset(out, seed=7, **SMALL)
    assert _hashes(out) == reference


@pytest.mark.parametrize("change", [{"seed": 8}, {"train": 5}, {"imgsz": 96}])
def test_different_parameters_into_existing_dataset_raise(tmp_path: Path, change: dict) -> None:
    out = tmp_path / "ds"
    make_dataset(out, seed=7, **SMALL)
    before = _hashes(out)
    with pytest.raises(SlimbenchError, match=re.escape(str(out))):
        make_dataset(out, **{**SMALL, "seed": 7, **change})
    assert _hashes(out) == before


def test_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SlimbenchError, match=re.escape(f"{out}: ") + ".*not a synthetic dataset"):
        make_dataset(out, **SMALL)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(SlimbenchError, match="train"):
        make_dataset(tmp_path / "x", train=0, val=1)
    with pytest.raises(SlimbenchError, match="imgsz"):
        make_dataset(tmp_path / "x", train=1, val=1, imgsz=8)


def test_load_labels_rejects_malformed_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("0 0.5 0.5 0.1 0.1\n1 0.5 0.5\n")
    with pytest.raises(SlimbenchError, match=re.escape(f"{f}:2")):
        load_labels(f)
