"""Detections per variant and image at a fixed conf/iou, compared with the reference's on the same image.

Agreement needs no labels: a candidate box agrees when the reference has an unmatched box of the same class with
IoU >= settings.match_iou (greedy by confidence). Recall: share of the reference's boxes found; precision: share of
the candidate's boxes the reference has; count ratio: candidate count / reference count. With no boxes on either
side recall and precision are undefined, shown as "n/a (0 detections)", and a min_* limit on them fails.
"""

from slimbench.config import violation
from slimbench.detections import NA_NO_REFERENCE, agreement


def test_detections(slimbench, variant, image):
    s = slimbench.settings
    ref_name = slimbench.reference.name
    names = dict(slimbench.model(variant.name).names)
    dets = slimbench.detections(variant.name, image)
    slimbench.record(variant.name, "detections", image, {**dets.as_dict(names), "conf": s.conf, "iou": s.iou})
    if variant.is_reference:
        return

    ref_names = dict(slimbench.model(ref_name).names)
    if names != ref_names:
        slimbench.gate([f"{variant.name}: class names {names} differ from {ref_name}'s {ref_names}"])
    ref = slimbench.detections(ref_name, image)
    agr = agreement(ref, dets, s.match_iou)
    slimbench.record(variant.name, "agreement", image, agr.as_dict())
    lim = slimbench.limits(variant.name)
    who = f"{variant.name} on {image}"
    found = f"{agr.matched} of {agr.reference_count} {ref_name} boxes found, same class, IoU >= {s.match_iou}"
    kept = f"{agr.matched} of {agr.candidate_count} boxes also in {ref_name}"
    counts = f"{agr.candidate_count} vs {agr.reference_count} detections of {ref_name}, conf {s.conf}"
    ratio_na = None if agr.reference_count else NA_NO_REFERENCE
    na = agr.undefined  # either side without boxes: recall and precision are undefined, and a min_* limit fails
    slimbench.gate(
        [
            violation(
                who, "detection count ratio", agr.count_ratio, lim.min_count_ratio, "min", "{:.3f}", counts, ratio_na
            ),
            violation(
                who, "detection count ratio", agr.count_ratio, lim.max_count_ratio, "max", "{:.3f}", counts, ratio_na
            ),
            violation(who, "agreement recall", agr.recall, lim.min_agreement_recall, "min", "{:.3f}", found, na),
            violation(
                who, "agreement precision", agr.precision, lim.min_agreement_precision, "min", "{:.3f}", kept, na
            ),
        ]
    )
