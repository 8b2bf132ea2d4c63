"""Agreement of a candidate with the reference on unlabeled images, scored as a detector is scored against labels.

Why: a pruned model can find as many boxes as the original and still be wrong, and no labels are needed to see it.
The reference's detections at the suite's ``conf`` are the ground truth, and each candidate's detections down to
``conf=0.001``, ranked by confidence, are scored against them (AP at IoU 0.5, per class, averaged over the classes
the reference found). A candidate that finds exactly the reference's boxes scores 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from slimbench.model.detections import Detections

CANDIDATE_CONF = 0.001
"""Candidates are ranked down to this confidence for agreement AP (what ultralytics' validator uses for mAP)."""
AGREEMENT_IOU = 0.5
"""IoU for a candidate box to match a reference box (same class): agreement is an mAP50."""


def coco_ap(tp: np.ndarray, conf: np.ndarray, n_true: int) -> float:
    """Average precision as pycocotools computes it: detections ranked by confidence, precision made monotone
    (the best precision at any higher recall), read at the 101 recall points 0, 0.01, ..., 1 (0 beyond the recall
    reached) and averaged.

    Why not ultralytics' ``ap_per_class``: its trapezoid over a curve that drops to 0 at recall 1 caps a perfect
    match at 0.995, and "agrees with itself" should read 1.0.
    """
    if n_true <= 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(conf), kind="stable")
    hits = np.asarray(tp, dtype=np.float64)[order]
    tpc = np.cumsum(hits)
    recall = tpc / n_true
    precision = tpc / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    return float(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean())


@dataclass(frozen=True)
class AgreementScore:
    """A candidate scored against the reference's boxes on unlabeled images.

    ``map50``: mean over the reference's classes of AP at IoU 0.5, candidates ranked down to conf 0.001;
    ``recall`` / ``precision``: at the suite's conf, the share of reference boxes found / of candidate boxes that
    the reference has. A figure is undefined only when its own denominator is zero (precision: no candidate box at
    conf; recall and mAP50: no reference box): None, and :meth:`shown` gives the reason (``"n/a (0 detections)"``)
    that the summary, report and baseline show instead of a number. A candidate that finds nothing scores 0.0.
    """

    map50: float | None
    recall: float | None
    precision: float | None
    matched: int
    reference_boxes: int
    candidate_boxes: int  # at conf >= the reference's conf
    images: int
    conf: float
    iou_threshold: float
    per_class: dict[int, float] = field(default_factory=dict)
    candidate_boxes_ranked: int = 0  # down to CANDIDATE_CONF: what mAP50 ranks

    def undefined(self, key: str) -> str | None:
        """Why ``key`` ("map50", "recall", "precision") has no value, or None."""
        from slimbench.model.detections import undefined_reason

        return undefined_reason(key, self.reference_boxes, self.candidate_boxes)

    def shown(self, key: str) -> float | str:
        """The figure, or the reason it is undefined: what reports and the baseline hold."""
        value = getattr(self, key)
        return value if value is not None else str(self.undefined(key))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), **{k: self.shown(k) for k in ("map50", "recall", "precision")}}


def agreement_score(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    conf: float,
    iou_threshold: float = AGREEMENT_IOU,
) -> AgreementScore:
    """Score ``candidate`` (detections per image, low conf) against ``reference``'s boxes with conf >= ``conf``."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference images vs {len(candidate)} candidate images")
    from slimbench.model.detections import Detections, match_flags

    tps, confs, classes, truth = [], [], [], []
    for ref, cand in zip(reference, candidate, strict=True):
        keep = ref.confs >= conf
        gt = Detections(ref.boxes[keep], ref.classes[keep], ref.confs[keep])
        tps.append(match_flags(gt, cand, iou_threshold))
        confs.append(cand.confs)
        classes.append(cand.classes)
        truth.append(gt.classes)
    tp, cf, cl, gt_cls = (np.concatenate(x) if x else np.zeros(0) for x in (tps, confs, classes, truth))
    per_class = {
        int(c): coco_ap(tp[cl == c], cf[cl == c], int((gt_cls == c).sum())) for c in np.unique(gt_cls.astype(int))
    }
    at_conf = cf >= conf
    matched, n_ref, n_cand = int(tp[at_conf].sum()), len(gt_cls), int(at_conf.sum())
    return AgreementScore(  # each figure undefined only when its own denominator is zero, never a perfect 1.0
        map50=float(np.mean(list(per_class.values()))) if per_class else None,
        recall=matched / n_ref if n_ref else None,
        precision=matched / n_cand if n_cand else None,
        candidate_boxes_ranked=len(cf),
        matched=matched,
        reference_boxes=n_ref,
        candidate_boxes=n_cand,
        images=len(reference),
        conf=conf,
        iou_threshold=iou_threshold,
        per_class=per_class,
    )
