"""Static figures per variant: file size, FP16-normalised size, params, GFLOPs, channels, zeroed channels.

Deterministic, so compared exactly with the limits in the suite config. A variant without a limit is measured and
reported (terminal summary, figures) but not gated.
"""

from slimbench.bench.checks import static


def test_size(slimbench, variant):
    slimbench.gate(static(slimbench, variant.name, ("file_size_mb", "size_ratio")))


def test_params(slimbench, variant):
    slimbench.gate(static(slimbench, variant.name, ("params", "params_ratio")))


def test_gflops(slimbench, variant):
    slimbench.gate(static(slimbench, variant.name, ("gflops", "gflops_ratio")))


def test_channels_removed(slimbench, variant):
    slimbench.gate(static(slimbench, variant.name, ("channels_removed_pct",)))


def test_zeroed_channels(slimbench, variant):
    slimbench.gate(static(slimbench, variant.name, ("zeroed_channels",)))
