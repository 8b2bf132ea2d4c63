"""Deterministic synthetic detection data: coloured geometric shapes on textured, noisy backgrounds.

Why synthetic: the benchmarks need a detector that reaches a high mAP after a short CPU training, and a
dataset that anyone can rebuild bit for bit from a seed, with no download. Classes differ by *shape* only
(colours are random per object), so a model has to learn geometry, and pruning damage shows up as lost or
confused shapes. Label boxes are the tight boxes of the rendered pixels, so box precision (mAP50-95) is
limited by the model, not by the labels.

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

__all__ = ["CLASS_NAMES", "load_labels", "make_dataset", "make_scene"]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
"""Class id -> name. Every class is told apart by its outline (the ring by its hole), never by colour."""

GENERATOR_VERSION = 1
"""Bump when the rendering changes, so a cached dataset made by older code is not mistaken for a fresh one."""

JPEG_QUALITY = 92
REFERENCE_IMGSZ = 320
"""Training image side the scene's object pixel sizes are matched to."""
MIN_REL_SIZE, MAX_REL_SIZE = 0.06, 0.45
"""Object size range as a fraction of the image side (size ~ the shape's diameter)."""
MAX_OCCLUSION = 0.25
"""Most of an object's area that later objects may cover, so every labelled object stays recognisable."""
MIN_CONTRAST = 45.0
"""Wanted luminance gap between an object and the background under it, so its outline is learnable."""

_SPLITS = {"train": 0, "val": 1}
_SCENE_STREAM = 2
_LUMA_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)

Label = tuple[int, float, float, float, float]


# --------------------------------------------------------------------------------------------- geometry


def _regular(n: int, radius: float, phase: float = math.pi / 2) -> np.ndarray:
    a = phase + np.arange(n) * (2 * math.pi / n)
    return np.stack([radius * np.cos(a), -radius * np.sin(a)], axis=1)


def _star(points: int, outer: float, inner: float) -> np.ndarray:
    a = math.pi / 2 + np.arange(2 * points) * (math.pi / points)
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(a), -r * np.sin(a)], axis=1)


def _cross(arm: float, half_width: float) -> np.ndarray:
    a, w = arm, half_width
    return np.array(
        [
            [w, -a],
            [w, -w],
            [a, -w],
            [a, w],
            [w, w],
            [w, a],
            [-w, a],
            [-w, w],
            [-a, w],
            [-a, -w],
            [-w, -w],
            [-w, -a],
        ]
    )


# Unit outlines (roughly radius 1) per class: the first polygon is filled, later ones are cut out as holes.
_UNIT_SHAPES: tuple[tuple[np.ndarray, ...], ...] = (
    (_regular(96, 1.0),),
    (np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]]),),
    (_regular(3, 1.1),),
    (_star(5, 1.1, 0.45),),
    (_cross(1.0, 0.32),),
    (_regular(96, 1.0), _regular(96, 0.55)),
)
assert len(_UNIT_SHAPES) == len(CLASS_NAMES)


def _outline(cls: int, size: float, angle: float) -> list[np.ndarray]:
    """Polygons of class ``cls`` with diameter ~``size`` px, rotated by ``angle``, centred on the origin."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]]) * (size / 2)
    return [p @ rot.T for p in _UNIT_SHAPES[cls]]


def _rasterize(polys: list[np.ndarray], h: int, w: int) -> tuple[int, int, np.ndarray] | None:
    """Aliased (LINE_8) mask of the polygons, in a region of interest: (x0, y0, bool mask) or None if empty.

    No antialiasing, so each pixel either belongs to the shape or not and the tight box is unambiguous.
    """
    pts = polys[0]
    x0 = max(int(math.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(pts[:, 0].max())) + 2, w)
    y1 = min(int(math.ceil(pts[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for i, p in enumerate(polys):
        fixed = np.round((p - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits (shift=4)
        cv2.fillPoly(mask, [fixed], 0 if i else 1, cv2.LINE_8, 4)
    if not mask.any():
        return None
    return x0, y0, mask.astype(bool)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive pixel box (x0, y0, x1, y1) of a bool mask, or None if it is empty."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


# ------------------------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Float32 BGR background: a colour gradient, low-frequency mottling, soft blobs and faint lines.

    The texture has only soft or thin, low-contrast structure, so the model learns that hard-edged filled
    outlines are objects and that background edges are not. The smooth part is built at a quarter of the
    resolution and scaled up, which is what keeps generation fast.
    """
    m = max(n // 4, 8)
    c0 = rng.uniform(25, 230, 3)
    c1 = np.clip(c0 + rng.uniform(-70, 70, 3), 0, 255)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
    t = (math.cos(theta) * ramp)[None, :] + (math.sin(theta) * ramp)[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    low = c0.astype(np.float32) + t[..., None] * (c1 - c0).astype(np.float32)

    g = max(2, n // 48)
    mottle = rng.normal(0.0, 14.0, (g, g, 3)).astype(np.float32)
    low += cv2.resize(mottle, (m, m), interpolation=cv2.INTER_CUBIC)

    scale = (n / REFERENCE_IMGSZ) ** 2
    blobs = np.zeros((m, m, 3), np.float32)
    for _ in range(int(rng.integers(0, 1 + round(5 * scale)))):
        center = (int(rng.integers(0, m)), int(rng.integers(0, m)))
        axes = (int(rng.integers(m // 20 + 1, m // 5 + 2)), int(rng.integers(m // 20 + 1, m // 5 + 2)))
        color = tuple(float(v) for v in rng.uniform(-30, 30, 3))
        cv2.ellipse(blobs, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    low += cv2.GaussianBlur(blobs, (0, 0), max(m / 48, 1.0))
    img = cv2.resize(low, (n, n), interpolation=cv2.INTER_LINEAR)

    for _ in range(int(rng.integers(0, 1 + round(8 * scale)))):
        p1 = (int(rng.integers(-n // 4, n + n // 4)), int(rng.integers(-n // 4, n + n // 4)))
        p2 = (int(rng.integers(-n // 4, n + n // 4)), int(rng.integers(-n // 4, n + n // 4)))
        color = tuple(float(v) for v in img[n // 2, n // 2] + rng.uniform(-30, 30, 3))
        cv2.line(img, p1, p2, color, int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


class _Canvas:
    """An image being drawn plus an owner map (which object owns each pixel), to measure occlusion."""

    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        self.h, self.w = img.shape[:2]
        self.owner = np.zeros((self.h, self.w), np.int16)
        self.objects: list[tuple[int, int, int, int, int]] = []  # cls, roi x0, y0, x1, y1
        self.area: list[int] = []
        self.visible: list[int] = []

    def try_place(
        self, rng: np.random.Generator, cls: int, polys: list[np.ndarray], color: np.ndarray | None = None
    ) -> bool:
        """Draw the object on top unless it would hide more than MAX_OCCLUSION of an earlier one."""
        hit = _rasterize(polys, self.h, self.w)
        if hit is None:
            return False
        x0, y0, mask = hit
        y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
        owner = self.owner[y0:y1, x0:x1]
        covered = np.bincount(owner[mask], minlength=len(self.objects) + 1)[1:]
        for j in np.flatnonzero(covered):
            if self.visible[j] - covered[j] < (1.0 - MAX_OCCLUSION) * self.area[j]:
                return False
        for j in np.flatnonzero(covered):
            self.visible[j] -= int(covered[j])
        region = self.img[y0:y1, x0:x1]
        if color is None:
            color = _contrasting_color(rng, region[mask])
        region[mask] = color
        owner[mask] = len(self.objects) + 1
        self.objects.append((cls, x0, y0, x1, y1))
        n = int(mask.sum())
        self.area.append(n)
        self.visible.append(n)
        return True

    def labels(self) -> list[Label]:
        """Tight YOLO boxes (cls, cx, cy, w, h normalised) of what is visible of each object."""
        out: list[Label] = []
        for k, (cls, x0, y0, x1, y1) in enumerate(self.objects):
            box = _mask_box(self.owner[y0:y1, x0:x1] == k + 1)
            if box is None:  # cannot happen with MAX_OCCLUSION < 1, kept for safety
                continue
            bx0, by0, bx1, by1 = box[0] + x0, box[1] + y0, box[2] + x0 + 1, box[3] + y0 + 1  # pixel edges
            out.append(
                (
                    cls,
                    (bx0 + bx1) / 2 / self.w,
                    (by0 + by1) / 2 / self.h,
                    (bx1 - bx0) / self.w,
                    (by1 - by0) / self.h,
                )
            )
        return out


def _contrasting_color(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour whose luminance lies outside the 5-95% luminance range of the pixels it covers."""
    luma = under @ _LUMA_BGR
    lo, hi = np.percentile(luma, [5, 95])
    cand = rng.integers(0, 256, (24, 3)).astype(np.float32)
    y = cand @ _LUMA_BGR
    margin = np.maximum(lo - y, y - hi)
    ok = np.flatnonzero(margin >= MIN_CONTRAST)
    return cand[ok[0] if ok.size else int(np.argmax(margin))]


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Add sensor-like gaussian (luminance) noise and quantise to uint8."""
    sigma = float(rng.uniform(2.0, 9.0))
    img += rng.standard_normal((*img.shape[:2], 1), dtype=np.float32) * sigma  # luminance noise: 3x cheaper
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _render_sample(
    rng: np.random.Generator, imgsz: int, n_objects: int | None = None, plain: bool = False
) -> tuple[np.ndarray, list[Label]]:
    """One training image (uint8 BGR) and its labels; ``plain``: flat grey, no texture, no noise (tests)."""
    img = np.full((imgsz, imgsz, 3), 127.0, np.float32) if plain else _background(rng, imgsz)
    canvas = _Canvas(img)
    if n_objects is None:
        n_objects = int(rng.integers(1, 7))
    lo, hi = math.log(MIN_REL_SIZE * imgsz), math.log(MAX_REL_SIZE * imgsz)
    for _ in range(n_objects):
        for _attempt in range(25):
            cls = int(rng.integers(len(CLASS_NAMES)))
            polys = _outline(cls, math.exp(rng.uniform(lo, hi)), rng.uniform(0, 2 * math.pi))
            pmin, pmax = polys[0].min(axis=0), polys[0].max(axis=0)
            cx = rng.uniform(-pmin[0], imgsz - 1 - pmax[0])
            cy = rng.uniform(-pmin[1], imgsz - 1 - pmax[1])
            if canvas.try_place(rng, cls, [p + (cx, cy) for p in polys]):
                break
    return (canvas.img.clip(0, 255).astype(np.uint8) if plain else _finish(rng, canvas.img)), canvas.labels()


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
            img, labels = _render_sample(rng, imgsz)
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
    canvas = _Canvas(_background(rng, size))
    for c in sorted(rng.permutation(grid * grid)[:n_objects].tolist()):
        gx, gy = c % grid, c // grid
        cls = int(rng.integers(len(CLASS_NAMES)))
        polys = _outline(cls, math.exp(rng.uniform(math.log(min_px), math.log(max_px))), rng.uniform(0, 2 * math.pi))
        pmin, pmax = polys[0].min(axis=0), polys[0].max(axis=0)
        # keep the outline (plus 1px) inside its cell: cells do not overlap, so neither do objects
        cx = rng.uniform(gx * cell - pmin[0] + 1, (gx + 1) * cell - pmax[0] - 2)
        cy = rng.uniform(gy * cell - pmin[1] + 1, (gy + 1) * cell - pmax[1] - 2)
        if not canvas.try_place(rng, cls, [p + (cx, cy) for p in polys]):
            raise SlimbenchError(f"{image_path}: internal error placing scene object {len(canvas.objects)}")
    img = _finish(rng, canvas.img)

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
