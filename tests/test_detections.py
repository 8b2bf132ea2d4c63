"""Detection agreement on hand-made boxes, image decoding, and predict on a tiny detector."""

from __future__ import annotations

import numpy as np
import pytest

from slimbench.core.errors import SlimbenchError
from slimbench.core.undefined import NA_NO_DETECTIONS, NA_NO_REFERENCE
from slimbench.model.checkpoint import load_detector
from slimbench.model.detections import (
    Detections,
    agreement,
    box_iou,
    detect,
    match_flags,
    read_image,
)


def dets(*rows):
    """rows of (x1, y1, x2, y2, cls, conf)."""
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return Detections.from_lists(a[:, :4], a[:, 4], a[:, 5])


REF_ROWS = ((0, 0, 10, 10, 0, 0.9), (20, 20, 30, 30, 1, 0.8), (50, 50, 60, 60, 0, 0.7))
REF = dets(*REF_ROWS)


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_self_agreement_is_perfect():
    a = agreement(REF, REF)
    assert (a.matched, a.recall, a.precision, a.count_ratio) == (3, 1.0, 1.0, 1.0)


def test_class_and_iou_must_both_agree():
    cand = dets(
        (0, 0, 10, 10, 1, 0.9),  # right place, wrong class
        (20, 20, 30, 30, 1, 0.8),  # agrees
        (55, 50, 65, 60, 0, 0.7),  # right class, IoU 1/3 < 0.5
    )
    a = agreement(REF, cand, iou_threshold=0.5)
    assert (a.matched, a.recall, a.precision) == (1, 1 / 3, 1 / 3)
    assert agreement(REF, cand, iou_threshold=0.3).matched == 2


def test_greedy_by_confidence_each_reference_box_once():
    ref = dets((0, 0, 10, 10, 0, 0.9))
    cand = dets((0, 0, 10, 9, 0, 0.6), (0, 0, 10, 10, 0, 0.95))  # duplicates: only one can agree
    a = agreement(ref, cand)
    assert (a.matched, a.recall, a.precision, a.count_ratio) == (1, 1.0, 0.5, 2.0)


def test_one_matcher_for_agreement_and_agreement_map():
    """match_flags flags boxes in the order given, ranked by confidence; agreement counts exactly its hits."""
    ref = dets((0, 0, 10, 10, 0, 0.9), (20, 20, 30, 30, 1, 0.9))
    cand = dets(
        (0, 0, 10, 9, 0, 0.6),  # loses its reference box to the more confident duplicate below
        (0, 0, 10, 10, 0, 0.95),
        (20, 20, 30, 30, 0, 0.7),  # wrong class
        (40, 40, 50, 50, 1, 0.5),  # nowhere near
    )
    assert match_flags(ref, cand).tolist() == [False, True, False, False]
    assert agreement(ref, cand).matched == 1
    shifted = dets((5, 0, 15, 10, 0, 0.9))  # IoU 1/3
    assert match_flags(ref, shifted, 0.3).tolist() == [True] and agreement(ref, shifted, 0.3).matched == 1
    assert match_flags(ref, shifted, 0.5).tolist() == [False] and agreement(ref, shifted, 0.5).matched == 0
    assert match_flags(Detections(), cand).tolist() == [False] * 4


def test_greedy_prefers_the_best_iou_among_free_reference_boxes():
    ref = dets((0, 0, 10, 10, 0, 0.9), (2, 0, 12, 10, 0, 0.9))
    cand = dets((2, 0, 12, 10, 0, 0.9), (0, 0, 10, 10, 0, 0.8))
    assert agreement(ref, cand).matched == 2


def test_a_candidate_that_finds_nothing_has_recall_zero_and_precision_undefined():
    """Issue #22: the reference finds 4 boxes, the pruned copy 0. Recall is 0 of 4 = 0.0 (it missed everything),
    precision 0 of 0 is undefined: each figure is undefined only when its own denominator is zero."""
    four = dets(*REF_ROWS, (70, 70, 80, 80, 1, 0.6))
    a = agreement(four, Detections())
    assert (a.recall, a.precision, a.count_ratio) == (0.0, None, 0.0)
    assert [a.undefined(k) for k in ("recall", "precision", "count_ratio")] == [None, NA_NO_DETECTIONS, None]
    d = a.as_dict()
    assert (d["recall"], d["precision"], d["count_ratio"]) == (0.0, "n/a (0 detections)", 0.0) and not a.identical


def test_no_reference_box_leaves_recall_undefined_and_precision_zero():
    a = agreement(Detections(), REF)  # the candidate's 3 boxes, none of which the reference has
    assert (a.recall, a.precision, a.count_ratio) == (None, 0.0, None)
    assert (a.undefined("recall"), a.undefined("precision")) == (NA_NO_REFERENCE, None)
    d = a.as_dict()
    assert (d["recall"], d["precision"], d["count_ratio"]) == ("n/a (0 reference detections)", 0.0, NA_NO_REFERENCE)


def test_both_sides_empty_leave_both_undefined_never_perfect():
    a = agreement(Detections(), Detections())
    assert (a.recall, a.precision, a.count_ratio) == (None, None, None)
    d = a.as_dict()
    assert (d["recall"], d["precision"], d["count_ratio"]) == (NA_NO_REFERENCE, NA_NO_DETECTIONS, NA_NO_REFERENCE)
    assert a.identical  # parity: nothing on both sides is the same output


def test_detections_record():
    d = REF.as_dict({0: "square", 1: "circle"})
    assert d["count"] == 3 and d["classes"] == {"square": 2, "circle": 1}
    assert d["class_ids"] == [0, 1, 0] and len(d["boxes"]) == 3
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


def test_read_image(tiny, tmp_path):
    img = read_image(tiny.scene)
    assert img.shape == (160, 160, 3) and img.dtype == np.uint8
    with pytest.raises(SlimbenchError, match="image not found"):
        read_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(SlimbenchError, match=r"bad.jpg: image does not decode"):
        read_image(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(SlimbenchError, match="does not decode"):
        read_image(empty)


def test_detect_is_deterministic_and_agrees_with_itself(tiny):
    model = load_detector(tiny.original)
    d1 = detect(model, tiny.scene, imgsz=96, conf=0.25, iou=0.7)
    d2 = detect(model, read_image(tiny.scene), imgsz=96, conf=0.25, iou=0.7)
    assert d1.count > 0, "the tiny original's biased class logits give detections"
    assert np.all(np.diff(d1.confs) <= 0), "sorted by confidence"
    assert set(d1.classes.tolist()) <= {0, 1}
    np.testing.assert_array_equal(d1.boxes, d2.boxes)
    assert agreement(d1, d2).recall == 1.0
    assert detect(model, tiny.scene, imgsz=96, conf=0.999).count <= d1.count
