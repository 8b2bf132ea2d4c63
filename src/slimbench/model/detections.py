"""Detections on sample images and their agreement with the reference variant's detections.

A pruned model that keeps its size promises but stops detecting what the original detects is a regression that
static metrics cannot see. The check here needs no labels: the reference's own detections on the same image, at
the same conf/iou, are the yardstick. Matching is greedy by candidate confidence, same class, IoU >= a threshold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimbench.core.errors import SlimbenchError
from slimbench.core.undefined import NA_NO_DETECTIONS, NA_NO_REFERENCE

if TYPE_CHECKING:
    from ultralytics import YOLO


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to a BGR ``HxWx3`` uint8 array (what ultralytics' predictor expects of an array).

    A missing file or one that does not decode is one :class:`SlimbenchError` line naming it.
    """
    import cv2

    p = Path(path)
    if not p.exists():
        raise SlimbenchError(f"{p}: image not found")
    if not p.is_file():
        raise SlimbenchError(f"{p}: image is not a file")
    data = np.fromfile(p, dtype=np.uint8)  # cv2.imread cannot open non-ASCII paths on every platform
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None or img.size == 0:
        raise SlimbenchError(f"{p}: image does not decode ({data.size} bytes; expected JPEG, PNG, BMP, ...)")
    return img


@dataclass(frozen=True)
class Detections:
    """Boxes (``N x 4`` xyxy pixels of the original image), class ids and confidences, by decreasing confidence."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    confs: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.float32))

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if np.shape(self.boxes) != (n, 4) or len(self.classes) != n or len(self.confs) != n:
            raise ValueError("boxes must be N x 4 with N classes and N confidences")

    @classmethod
    def from_lists(cls, boxes: Any, classes: Any, confs: Any) -> Detections:
        return cls(
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(classes, dtype=np.int64).reshape(-1),
            np.asarray(confs, dtype=np.float32).reshape(-1),
        )

    @property
    def count(self) -> int:
        return len(self.boxes)

    def class_counts(self, names: dict[int, str] | None = None) -> dict[str, int]:
        """Detections per class, keyed by class name when ``names`` is given (else the id as a string)."""
        out: dict[str, int] = {}
        for c in self.classes.tolist():
            key = (names or {}).get(int(c), str(int(c)))
            out[key] = out.get(key, 0) + 1
        return out

    def as_dict(self, names: dict[int, str] | None = None) -> dict[str, Any]:
        """Plain JSON-ready record for reports."""
        return {
            "count": self.count,
            "classes": self.class_counts(names),
            "confidences": [round(float(c), 4) for c in self.confs],
            "boxes": [[round(float(v), 1) for v in b] for b in self.boxes],
            "class_ids": [int(c) for c in self.classes],
        }


def detect(
    model: YOLO,
    image: np.ndarray | str | os.PathLike[str],
    imgsz: int = 640,
    conf: float = 0.25,
    iou: float = 0.7,
    device: str = "cpu",
    max_det: int = 300,
) -> Detections:
    """Run ultralytics' predictor (letterbox, inference, NMS or YOLO26's NMS-free head) at a fixed conf/iou.

    ultralytics fuses the model and converts its dtype in place on the first predict: pass a copy when the model
    is also measured statically.
    """
    source = read_image(image) if isinstance(image, (str, os.PathLike)) else image
    # A YOLO26 checkpoint in end-to-end mode is measured NMS-free, as it exports (runtimes.export); ultralytics'
    # predictor would otherwise switch it to the one-to-many head with NMS (nms=None means "external NMS").
    nms = False if getattr(getattr(model, "model", None), "end2end", False) is True else None
    results = model.predict(
        source, imgsz=imgsz, conf=conf, iou=iou, device=device, max_det=max_det, verbose=False, nms=nms
    )
    b = results[0].boxes
    if b is None or len(b) == 0:
        return Detections()
    confs = b.conf.detach().float().cpu().numpy()
    order = np.argsort(-confs, kind="stable")
    return Detections(
        b.xyxy.detach().float().cpu().numpy()[order],
        b.cls.detach().cpu().numpy().astype(np.int64)[order],
        confs[order],
    )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: ``len(a) x len(b)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def undefined_reason(key: str, reference_count: int, candidate_count: int) -> str | None:
    """Why an agreement figure has no value, or None: each is undefined only when its own denominator is zero.

    Precision divides by the candidate's boxes; recall, the count ratio and agreement mAP by the reference's. So a
    candidate that finds nothing against a reference that found 4 boxes has recall 0.0 (it missed them all) and an
    undefined precision."""
    if key == "precision":
        return None if candidate_count else NA_NO_DETECTIONS
    return None if reference_count else NA_NO_REFERENCE


@dataclass(frozen=True)
class Agreement:
    """How far a candidate's detections agree with the reference's on one image.

    ``recall``: share of reference boxes the candidate also finds; ``precision``: share of candidate boxes the
    reference also has; ``count_ratio``: candidate count / reference count. A figure whose denominator is zero is
    undefined (None, :meth:`undefined` says why), never a perfect 1.0; a candidate with no box has recall 0.0.
    """

    matched: int
    reference_count: int
    candidate_count: int
    iou_threshold: float

    def undefined(self, key: str) -> str | None:
        """Why ``key`` ("recall", "precision", "count_ratio") has no value (``"n/a (0 detections)"``), or None."""
        return undefined_reason(key, self.reference_count, self.candidate_count)

    @property
    def recall(self) -> float | None:
        return self.matched / self.reference_count if self.reference_count else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.candidate_count if self.candidate_count else None

    @property
    def count_ratio(self) -> float | None:
        return self.candidate_count / self.reference_count if self.reference_count else None

    @property
    def identical(self) -> bool:
        """Every box of each side matched (both empty counts as identical): what parity asks of an export."""
        return self.matched == self.reference_count == self.candidate_count

    def shown(self, key: str) -> float | str:
        """The figure, or the reason it is undefined: what reports and the baseline hold."""
        value = getattr(self, key)
        return value if value is not None else str(self.undefined(key))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; an undefined figure is the string that says why (``"n/a (0 detections)"``)."""
        return {
            "matched": self.matched,
            "reference_count": self.reference_count,
            "candidate_count": self.candidate_count,
            "iou_threshold": self.iou_threshold,
            "recall": self.shown("recall"),
            "precision": self.shown("precision"),
            "count_ratio": self.shown("count_ratio"),
            "identical": self.identical,
        }


def match_flags(reference: Detections, candidate: Detections, iou_threshold: float = 0.5) -> np.ndarray:
    """For each candidate box (in the order given): does it match a reference box? Greedy by decreasing candidate
    confidence, each takes the unmatched reference box of its class with the highest IoU, if >= the threshold
    (COCO's rule). The one matcher: :func:`agreement` counts its hits, agreement mAP ranks them."""
    flags = np.zeros(candidate.count, dtype=bool)
    if candidate.count == 0 or reference.count == 0:
        return flags
    ious = box_iou(candidate.boxes, reference.boxes)
    ious = np.where(candidate.classes[:, None] == reference.classes[None, :], ious, -1.0)
    taken = np.zeros(reference.count, dtype=bool)
    for i in np.argsort(-candidate.confs, kind="stable"):
        row = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] >= iou_threshold:
            taken[j] = True
            flags[i] = True
    return flags


def agreement(reference: Detections, candidate: Detections, iou_threshold: float = 0.5) -> Agreement:
    """How many candidate boxes :func:`match_flags` matches to reference boxes, with both counts."""
    matched = int(match_flags(reference, candidate, iou_threshold).sum())
    return Agreement(matched, reference.count, candidate.count, iou_threshold)
