"""Detections per variant and image at a fixed conf/iou, compared with the reference's on the same image.

Agreement needs no labels: a candidate box agrees when the reference has an unmatched box of the same class with
IoU >= settings.match_iou (greedy by confidence). Recall: share of the reference's boxes found; precision: share of
the candidate's boxes the reference has; count ratio: candidate count / reference count. With no boxes on either
side recall and precision are undefined, shown as "n/a (0 detections)", and a min_* limit on them fails.
"""

from slimbench.checks import detections


def test_detections(slimbench, variant, image):
    slimbench.gate(detections(slimbench, variant.name, image))
