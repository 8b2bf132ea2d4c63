"""Sample images annotated with a variant's detections, drawn with OpenCV from the boxes the tests recorded.

ultralytics' ``Results.plot()`` draws labels with PIL and may fetch a font (Arial.ttf) from the internet; the suite
runs offline, so boxes and labels are drawn here with cv2's built-in Hershey font. The boxes drawn are exactly
those in ``figures[variant].detections[image]``, the record the detection test made.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# BGR, distinct and readable on photos
_CLASS_COLORS = (
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (211, 188, 0),
    (255, 149, 0),
)


def annotate(image: np.ndarray, record: Mapping[str, Any], names: Mapping[Any, str] | None = None) -> np.ndarray:
    """A copy of a BGR image with the recorded boxes, class names and confidences drawn on it."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 320))
    scale = max(0.35, min(h, w) / 900)
    names = {str(k): v for k, v in (names or {}).items()}
    boxes = record.get("boxes", [])
    classes = record.get("class_ids", [])
    confs = record.get("confidences", [])
    for box, cls, conf in zip(boxes, classes, confs, strict=False):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = _CLASS_COLORS[int(cls) % len(_CLASS_COLORS)]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        label = f"{names.get(str(int(cls)), str(int(cls)))} {float(conf):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        cv2.putText(
            out, label, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if h == height:
        return image
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=interp)


def with_caption(image: np.ndarray, caption: str, height: int = 28) -> np.ndarray:
    """The image under a white strip holding ``caption``."""
    import cv2

    strip = np.full((height, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(strip, caption, (6, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, image])


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], height: int = 320, gap: int = 8) -> np.ndarray:
    """Captioned panels of one height in a row, separated by white gaps."""
    parts: list[np.ndarray] = []
    for i, (caption, img) in enumerate(panels):
        if i:
            parts.append(np.full((height + 28, gap, 3), 255, dtype=np.uint8))
        parts.append(with_caption(_fit(img, height), caption))
    return np.hstack(parts)


def jpeg_b64(image: np.ndarray, quality: int = 85) -> str:
    """Base64 JPEG (what pytest-html's image extras and ``<img src="data:...">`` take)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("cannot encode the annotated image as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")
