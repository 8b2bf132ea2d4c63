"""Latency percentiles from raw benchmark rounds: the same numbers numpy gives, plus FPS from the median."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slimbench.measure.timing import latency_figures, percentiles

ROUNDS = [0.012, 0.010, 0.011, 0.030, 0.0105, 0.0101, 0.013, 0.0099, 0.050, 0.0102, 0.0111]


def test_percentiles_equal_numpys():
    got = percentiles(ROUNDS)
    assert list(got) == ["p50", "p90", "p99"]
    for q in (50, 90, 99):
        assert got[f"p{q}"] == pytest.approx(float(np.percentile(ROUNDS, q)), rel=0, abs=0)
    assert percentiles([1.0, 2.0, 3.0, 4.0, 10.0]) == {"p50": 3.0, "p90": 7.6000000000000005, "p99": 9.76}


def test_latency_figures_carry_percentiles_and_fps():
    figs = latency_figures(ROUNDS, batch=8)
    assert figs["median_s"] == float(np.median(ROUNDS)) and figs["p50_s"] == figs["median_s"]
    assert figs["p99_s"] == pytest.approx(float(np.percentile(ROUNDS, 99)))
    assert figs["rounds"] == len(ROUNDS)
    assert figs["fps"] == pytest.approx(8 / float(np.median(ROUNDS)))
    assert figs["mean_s"] == pytest.approx(float(np.mean(ROUNDS)))


def test_no_rounds_gives_nan_not_an_error():
    figs = latency_figures([], batch=1)
    assert figs["rounds"] == 0 and all(math.isnan(figs[k]) for k in ("median_s", "p50_s", "p90_s", "p99_s", "fps"))
