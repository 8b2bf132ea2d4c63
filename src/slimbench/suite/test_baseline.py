"""The stored baseline: every figure that is not a timing (params, GFLOPs, sizes, channels, detection counts and
agreement on the sample images, mAP when measured) compared with the baseline file, per variant, within the
tolerances of the config's [baseline] table. A regression fails with a table: metric, baseline, now, limit.

``--update-baseline`` records this run's figures instead (the file is written after the run, atomically); without
it the file is never written. No baseline file: each check fails saying how to create one.
"""

import pytest

from slimbench.baseline import check_variant


def test_baseline(slimbench, variant):
    outcome = check_variant(slimbench, variant.name)
    if outcome.failure:
        pytest.fail(outcome.failure, pytrace=False)
