"""Detections per variant and image at a fixed conf/iou, compared with the reference's on the same image.

Agreement needs no labels: a candidate box agrees when the reference has an unmatched box of the same class with
IoU >= settings.match_iou (greedy by confidence). Recall: share of the reference's boxes found; precision: share of
the candidate's boxes the reference has; count ratio: candidate count / reference count. A figure is undefined only
when its own denominator is zero: precision when the candidate found no box ("n/a (0 detections)"), recall and the
count ratio when the reference found none ("n/a (0 reference detections)"); a min_* limit on it fails. A candidate
that finds nothing has recall 0.0.
"""

from slimbench.bench.checks import detections


def test_detections(slimbench, variant, image):
    slimbench.gate(detections(slimbench, variant.name, image))
