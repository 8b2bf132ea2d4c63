"""Drawing the synthetic scenes: coloured geometric shapes on textured, noisy backgrounds, with their tight boxes.

Pure drawing, no files (:mod:`slimbench.data.synthetic` writes them). Classes differ by *shape* only (colours are
random per object), so a model has to learn geometry, and pruning damage shows up as lost or confused shapes. Label
boxes are the tight boxes of the rendered pixels (aliased, so each pixel is in or out), and every draw comes from the
``rng`` the caller passes, so a scene is a function of its seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
"""Class id -> name. Every class is told apart by its outline (the ring by its hole), never by colour."""

REFERENCE_IMGSZ = 320
"""Training image side the scene's object pixel sizes are matched to."""
MIN_REL_SIZE, MAX_REL_SIZE = 0.06, 0.45
"""Object size range as a fraction of the image side (size ~ the shape's diameter)."""
MAX_OCCLUSION = 0.25
"""Most of an object's area that later objects may cover, so every labelled object stays recognisable."""
MIN_CONTRAST = 45.0
"""Wanted luminance gap between an object and the background under it, so its outline is learnable."""

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


def outline(cls: int, size: float, angle: float) -> list[np.ndarray]:
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


def background(rng: np.random.Generator, n: int) -> np.ndarray:
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


class Canvas:
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


def add_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Add sensor-like gaussian (luminance) noise and quantise to uint8."""
    sigma = float(rng.uniform(2.0, 9.0))
    img += rng.standard_normal((*img.shape[:2], 1), dtype=np.float32) * sigma  # luminance noise: 3x cheaper
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_sample(
    rng: np.random.Generator, imgsz: int, n_objects: int | None = None, plain: bool = False
) -> tuple[np.ndarray, list[Label]]:
    """One training image (uint8 BGR) and its labels; ``plain``: flat grey, no texture, no noise (tests)."""
    img = np.full((imgsz, imgsz, 3), 127.0, np.float32) if plain else background(rng, imgsz)
    canvas = Canvas(img)
    if n_objects is None:
        n_objects = int(rng.integers(1, 7))
    lo, hi = math.log(MIN_REL_SIZE * imgsz), math.log(MAX_REL_SIZE * imgsz)
    for _ in range(n_objects):
        for _attempt in range(25):
            cls = int(rng.integers(len(CLASS_NAMES)))
            polys = outline(cls, math.exp(rng.uniform(lo, hi)), rng.uniform(0, 2 * math.pi))
            pmin, pmax = polys[0].min(axis=0), polys[0].max(axis=0)
            cx = rng.uniform(-pmin[0], imgsz - 1 - pmax[0])
            cy = rng.uniform(-pmin[1], imgsz - 1 - pmax[1])
            if canvas.try_place(rng, cls, [p + (cx, cy) for p in polys]):
                break
    return (canvas.img.clip(0, 255).astype(np.uint8) if plain else add_noise(rng, canvas.img)), canvas.labels()
