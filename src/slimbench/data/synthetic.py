"""Deterministic synthetic detection data: coloured geometric shapes on textured, noisy backgrounds.

Why synthetic: the benchmarks need a detector that reaches a high mAP after a short CPU training, and a
dataset that anyone can rebuild bit for bit from a seed, with no download. Classes differ by *shape* only
(colours are random per object), so a model has to learn geometry, and pruning damage shows up as lost or
confused shapes. Label boxes are the tight boxes of the rendered pixels, so box precision (mAP50-95) is
limited by the model, not by the labels.

Here: writing the dataset and the scene image; the drawing itself is :mod:`slimbench.data.scenes`.

Determinism: every image draws from its own ``np.random.default_rng([seed, split, index])``, so its bytes do
not depend on generation order; JPEGs are encoded with fixed settings and no metadata. Files are written
atomically and ``data.yaml`` last, so a dataset without ``data.yaml`` is known to be incomplete.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes
from slimbench.data.scenes import (
    CLASS_NAMES,
    MIN_REL_SIZE,
    REFERENCE_IMGSZ,
    Canvas,
    Label,
    add_noise,
    background,
    outline,
    render_sample,
)

__all__ = ["CLASS_NAMES", "load_labels", "make_dataset", "make_scene"]

GENERATOR_VERSION = 1
"""Bump when the rendering (:mod:`slimbench.data.scenes`) changes, so a cached dataset made by older code is not
mistaken for a fresh one."""

JPEG_QUALITY = 92
_SPLITS = {"train": 0, "val": 1}
_SCENE_STREAM = 2


# ----------------------------------------------------------------------------------------------- files


def _encode_jpeg(img: np.ndarray, where: Path) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SlimbenchError(f"{where}: JPEG encoding failed")
    return buf.tobytes()


def _label_text(labels: Iterable[Label]) -> bytes:
    return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels).encode()


def _check_int(name: str, value: object, minimum: int, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SlimbenchError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def load_labels(path: str | Path) -> list[Label]:
    """Read a YOLO label file into (cls, cx, cy, w, h) tuples; a malformed line is a SlimbenchError."""
    p = Path(path)
    out: list[Label] = []
    try:
        text = p.read_text()
    except OSError as e:
        raise SlimbenchError(f"{p}: cannot read labels ({e.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError
            out.append((int(parts[0]), *(float(v) for v in parts[1:])))  # type: ignore[arg-type]
        except ValueError:
            raise SlimbenchError(f"{p}:{n}: not a YOLO box line 'cls cx cy w h': {line.strip()!r}") from None
    return out


def _data_yaml(out: Path) -> bytes:
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    return (
        "# Synthetic shapes dataset written by slimbench.data.synthetic.make_dataset (see meta.json).\n"
        f"path: {json.dumps(str(out))}\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(CLASS_NAMES)}\n"
        f"names:\n{names}"
    ).encode()


def _is_complete(out: Path, counts: dict[str, int]) -> bool:
    if not (out / "data.yaml").is_file():
        return False
    for split, n in counts.items():
        for sub, ext in (("images", ".jpg"), ("labels", ".txt")):
            d = out / sub / split
            if not d.is_dir() or sum(1 for f in d.iterdir() if f.suffix == ext) != n:
                return False
    return True


def make_dataset(
    out: str | Path,
    train: int,
    val: int,
    imgsz: int = 320,
    seed: int = 0,
    splits: Iterable[str] = ("train", "val"),
) -> Path:
    """Write a YOLO-format shapes dataset to ``out`` and return its ``data.yaml``.

    If ``out`` already holds a complete dataset made with the same parameters, nothing is written (a cache);
    an incomplete one with the same parameters is regenerated in place (same bytes). Any other non-empty
    ``out`` is refused rather than mixing two datasets.

    ``splits=("val",)`` writes only the val split (what measuring mAP needs), with the same bytes as the full
    dataset's val split: every image is seeded by (seed, split, index), so no split depends on another.
    """
    out = Path(out).absolute()
    train = _check_int("train", train, 1, out)
    val = _check_int("val", val, 1, out)
    imgsz = _check_int("imgsz", imgsz, 32, out)
    seed = _check_int("seed", seed, 0, out)
    asked = [str(s) for s in splits]
    wanted = tuple(s for s in _SPLITS if s in asked)
    if not wanted or set(asked) - set(_SPLITS):
        raise SlimbenchError(f"{out}: splits must be a non-empty subset of {list(_SPLITS)}, got {asked}")
    meta = {
        "generator": f"slimbench.data.synthetic/{GENERATOR_VERSION}",
        "names": list(CLASS_NAMES),
        "train": train,
        "val": val,
        "imgsz": imgsz,
        "seed": seed,
        "jpeg_quality": JPEG_QUALITY,
    }
    if wanted != tuple(_SPLITS):  # a full dataset's meta stays as it was, so existing caches stay valid
        meta["splits"] = list(wanted)
        for split in set(_SPLITS) - set(wanted):
            del meta[split]  # the count of a split not written changes no byte: a val-only cache fits any train
    meta_bytes = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    counts = {s: n for s, n in (("train", train), ("val", val)) if s in wanted}
    data_yaml = out / "data.yaml"

    if out.exists() and not out.is_dir():
        raise SlimbenchError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        meta_path = out / "meta.json"
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != meta:
            why = "holds a different synthetic dataset" if isinstance(old, dict) else "is not a synthetic dataset"
            raise SlimbenchError(
                f"{out}: directory is not empty and {why} (wanted {meta}); use an empty or missing directory"
            )
        if _is_complete(out, counts):
            return data_yaml
        data_yaml.unlink(missing_ok=True)  # incomplete: regenerate, data.yaml comes back last

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "meta.json", meta_bytes)
    for split, split_id in _SPLITS.items():
        if split not in counts:
            continue
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(counts[split]):
            rng = np.random.default_rng([seed, split_id, i])
            img, labels = render_sample(rng, imgsz)
            image_path = out / "images" / split / f"{i:06d}.jpg"
            atomic_write_bytes(image_path, _encode_jpeg(img, image_path))
            atomic_write_bytes(out / "labels" / split / f"{i:06d}.txt", _label_text(labels))
    atomic_write_bytes(data_yaml, _data_yaml(out))
    return data_yaml


def make_scene(
    out_image: str | Path,
    out_labels: str | Path | None = None,
    size: int = 640,
    n_objects: int = 24,
    seed: int = 1234,
) -> Path:
    """Write one large image with ``n_objects`` non-overlapping shapes and its YOLO labels; return the image.

    For comparing the detections of an original and a pruned model on one busy picture. Objects keep the
    pixel sizes of training images at 320 px (about 19 to 96 px), however large the scene, so a model run at
    the scene's own size sees familiar objects. Each object sits in its own cell of a jittered grid, so all
    ``n_objects`` fit without overlap. ``out_labels`` defaults to the image path with a ``.txt`` suffix.
    """
    image_path = Path(out_image)
    label_path = Path(out_labels) if out_labels is not None else image_path.with_suffix(".txt")
    size = _check_int("size", size, 64, image_path)
    n_objects = _check_int("n_objects", n_objects, 1, image_path)
    seed = _check_int("seed", seed, 0, image_path)
    if image_path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise SlimbenchError(f"{image_path}: scene image must end in .jpg, .jpeg or .png")

    grid = math.ceil(math.sqrt(n_objects))
    cell = size / grid
    min_px = MIN_REL_SIZE * REFERENCE_IMGSZ
    max_px = min(0.3 * REFERENCE_IMGSZ, cell / 1.35)  # /1.35: rotated outline extent plus a gap
    if max_px < min_px:
        raise SlimbenchError(
            f"{image_path}: {n_objects} objects do not fit in a {size}px scene at >= {min_px:.0f}px each"
        )

    rng = np.random.default_rng([seed, _SCENE_STREAM, size, n_objects])
    canvas = Canvas(background(rng, size))
    for c in sorted(rng.permutation(grid * grid)[:n_objects].tolist()):
        gx, gy = c % grid, c // grid
        cls = int(rng.integers(len(CLASS_NAMES)))
        polys = outline(cls, math.exp(rng.uniform(math.log(min_px), math.log(max_px))), rng.uniform(0, 2 * math.pi))
        pmin, pmax = polys[0].min(axis=0), polys[0].max(axis=0)
        # keep the outline (plus 1px) inside its cell: cells do not overlap, so neither do objects
        cx = rng.uniform(gx * cell - pmin[0] + 1, (gx + 1) * cell - pmax[0] - 2)
        cy = rng.uniform(gy * cell - pmin[1] + 1, (gy + 1) * cell - pmax[1] - 2)
        if not canvas.try_place(rng, cls, [p + (cx, cy) for p in polys]):
            raise SlimbenchError(f"{image_path}: internal error placing scene object {len(canvas.objects)}")
    img = add_noise(rng, canvas.img)

    ext = ".png" if image_path.suffix.lower() == ".png" else ".jpg"
    if ext == ".png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        if not ok:
            raise SlimbenchError(f"{image_path}: PNG encoding failed")
        data = buf.tobytes()
    else:
        data = _encode_jpeg(img, image_path)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(label_path, _label_text(canvas.labels()))
    atomic_write_bytes(image_path, data)
    return image_path
