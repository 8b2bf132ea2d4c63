"""The stored baseline: every figure that is not a timing (params, GFLOPs, sizes, channels, detection counts and
agreement on the sample images, mAP when measured) compared with the baseline file, per variant, within the
tolerances of the config's [baseline] table. A regression fails with a table: metric, baseline, now, limit.

``--update-baseline`` records this run's figures instead (the file is written after the run, atomically); without
it the file is never written. No baseline file yet: each check is not run (skipped) with how to create it, and the
summary says "not run (no baseline yet)"; with ``[baseline] required = true`` or CI=true (or 1) it fails instead.
"""

from slimbench.bench.checks import baseline


def test_baseline(slimbench, variant):
    slimbench.gate(baseline(slimbench, variant.name))
