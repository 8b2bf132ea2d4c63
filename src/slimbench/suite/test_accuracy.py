"""Accuracy per variant: mAP on a labelled dataset, and agreement with the reference on unlabeled images.

mAP50, mAP50-95, precision and recall come from ultralytics' validator on the val split of ``--data`` (default: the
bundled synthetic val split), once per variant; a candidate is gated on its mAP50-95 drop versus the reference
(``max_map50_95_drop``, absolute: 0.02 is 2 points). Agreement treats the reference's detections (at the suite's
conf) on ``--images`` (default: the sample images) as ground truth and scores each candidate's detections, ranked
down to conf 0.001, as mAP50 (``min_agreement_map50``); recall and precision at the suite's conf are reported.

Deselect with ``-m "not accuracy"``.
"""

import pytest

from slimbench.bench.checks import dataset_agreement, dataset_map

pytestmark = pytest.mark.accuracy


def test_map(slimbench, variant):
    slimbench.gate(dataset_map(slimbench, variant.name))


def test_agreement(slimbench, candidate):
    slimbench.gate(dataset_agreement(slimbench, candidate.name))
