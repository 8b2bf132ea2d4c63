"""Accuracy per variant: mAP on a labelled dataset, and agreement with the reference on unlabeled images.

mAP50, mAP50-95, precision and recall come from ultralytics' validator on the val split of ``--data`` (default: the
bundled synthetic val split), once per variant; a candidate is gated on its mAP50-95 drop versus the reference
(``max_map50_95_drop``, absolute: 0.02 is 2 points). Agreement treats the reference's detections (at the suite's
conf) on ``--agreement-images`` (default: the sample images) as ground truth and scores each candidate's detections,
ranked down to conf 0.001, as mAP50 (``min_agreement_map50``); recall and precision at the suite's conf are reported.

Deselect with ``-m "not accuracy"``.
"""

import pytest

from slimbench.config import violation
from slimbench.errors import SlimbenchError
from slimbench.session import shown

pytestmark = pytest.mark.accuracy


def test_map(slimbench, variant):
    reason = slimbench.map_unsupported()
    if reason:
        pytest.skip(reason)
    try:
        figs = slimbench.map_metrics(variant.name)
        ref = slimbench.map_metrics(slimbench.reference.name)
    except SlimbenchError as e:  # the default dataset could not be generated, say: one line, no traceback
        pytest.fail(str(e), pytrace=False)
    for key in ("map50", "map50_95", "precision", "recall", "data", "val_images", "val_imgsz", "device", "seconds"):
        slimbench.record(variant.name, "accuracy", key, figs[key])
    if variant.is_reference:
        return
    ref_name = slimbench.reference.name
    drop = ref["map50_95"] - figs["map50_95"]
    slimbench.record(variant.name, "accuracy", "map50_95_drop", drop)
    where = f"{figs['data']}, {figs['val_images']} images at {figs['val_imgsz']}px"
    if slimbench.smoke:
        pytest.skip(f"smoke mode: mAP50-95 {figs['map50_95']:.3f} on {where}, not gated")
    slimbench.gate(
        [
            violation(
                variant.name,
                "mAP50-95 drop",
                drop,
                slimbench.limits(variant.name).max_map50_95_drop,
                "max",
                "{:.3f}",
                note=f"{figs['map50_95']:.3f} vs {ref['map50_95']:.3f} of {ref_name} on {where}",
            )
        ]
    )


def test_agreement(slimbench, candidate):
    acc = slimbench.accuracy
    images = acc.agreement_images()
    if not images:
        pytest.skip("no agreement images (--agreement-images DIR, settings.agreement_images or settings.images)")
    try:
        score = slimbench.agreement_score(candidate.name)
    except SlimbenchError as e:  # an image in the folder does not decode, say
        pytest.fail(str(e), pytrace=False)
    for key in ("map50", "recall", "precision"):  # an undefined figure is recorded as its reason, "n/a (...)"
        slimbench.record(candidate.name, "accuracy", f"agreement_{key}", score.shown(key))
    slimbench.record(candidate.name, "accuracy", "agreement_images", score.images)
    slimbench.record(candidate.name, "accuracy", "agreement_reference_boxes", score.reference_boxes)
    ref_name = slimbench.reference.name
    s = slimbench.settings
    slimbench.gate(
        [
            violation(
                candidate.name,
                "agreement mAP50",
                score.map50,
                slimbench.limits(candidate.name).min_agreement_map50,
                "min",
                "{:.3f}",
                note=f"{ref_name}'s {score.reference_boxes} boxes at conf {s.conf} as truth, {score.images} images "
                f"at {s.imgsz}px; recall {shown(score.shown('recall'), '{:.3f}')}, "
                f"precision {shown(score.shown('precision'), '{:.3f}')}",
                undefined=score.undefined("map50"),
            )
        ]
    )
