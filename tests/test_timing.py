"""Timing helpers: inputs, the timed callable and the interleaved ratio (logic only; no time is asserted)."""

from __future__ import annotations

import pytest
import tiny_models
import torch

from slimbench.measure import timing


class FakeClock:
    """A timer that only moves when a fake workload says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def work(self, name: str, durations: list[float]):
        it = iter(durations)

        def fn() -> None:
            self.calls.append(name)
            self.now += next(it)

        return fn


def test_interleaved_ratio_is_the_median_of_pair_ratios():
    clock = FakeClock()
    ref = clock.work("ref", [10, 10, 10, 10, 10])
    cand = clock.work("cand", [5, 6, 50, 4, 5])  # one disturbed pair must not move the median
    r = timing.interleaved_ratio(ref, cand, pairs=5, timer=clock)
    assert r.ratios == [0.5, 0.6, 5.0, 0.4, 0.5]
    assert r.median == 0.5 and r.speedup == 2.0
    assert r.reference_s == [10] * 5 and r.candidate_s == [5, 6, 50, 4, 5]
    d = r.as_dict()
    assert d["pairs"] == 5 and d["median_ratio"] == 0.5 and d["max_ratio"] == 5.0


def test_interleaved_ratio_alternates_the_order_inside_pairs():
    clock = FakeClock()
    timing.interleaved_ratio(clock.work("ref", [1] * 4), clock.work("cand", [1] * 4), pairs=4, timer=clock)
    assert clock.calls == ["ref", "cand", "cand", "ref", "ref", "cand", "cand", "ref"]


def test_interleaved_ratio_edge_cases():
    clock = FakeClock()
    r = timing.interleaved_ratio(clock.work("ref", [0]), clock.work("cand", [1]), pairs=1, timer=clock)
    assert r.median == float("inf")
    with pytest.raises(ValueError):
        timing.interleaved_ratio(lambda: None, lambda: None, pairs=0)
    real = timing.interleaved_ratio(lambda: None, lambda: None, pairs=3)  # default perf_counter timer runs
    assert len(real.ratios) == 3


def test_interleaved_ratio_pauses_the_garbage_collector_and_restores_it():
    """No collection pause inside a timed call (as timeit); the collector's state is given back, even on error."""
    import gc

    seen: list[bool] = []
    timing.interleaved_ratio(lambda: seen.append(gc.isenabled()), lambda: seen.append(gc.isenabled()), pairs=2)
    assert seen == [False] * 4 and gc.isenabled()

    def boom() -> None:
        raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError):
        timing.interleaved_ratio(boom, lambda: None, pairs=1)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that had it off keeps it off
        timing.interleaved_ratio(lambda: None, lambda: None, pairs=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_seeded_input_is_fixed():
    a = timing.seeded_input(2, 64, seed=0)
    assert a.shape == (2, 3, 64, 64) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, timing.seeded_input(2, 64, seed=0))
    assert not torch.equal(a, timing.seeded_input(2, 64, seed=1))
    assert float(a.min()) >= 0 and float(a.max()) < 1
    assert torch.equal(a[:1], timing.seeded_input(1, 64, seed=0)), "batch 1 is the first image of batch 2"


def test_timing_model_is_a_fused_eval_copy():
    net = tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.125).half().train()
    t = timing.timing_model(net, "cpu")
    assert t is not net and not t.training and t.is_fused()
    assert next(t.parameters()).dtype == torch.float32 and not any(p.requires_grad for p in t.parameters())
    assert net.training and not net.is_fused() and next(net.parameters()).dtype == torch.float16
    x = timing.seeded_input(1, 64)
    ref = timing.timing_model(net, "cpu", fuse=False)
    with torch.inference_mode():
        torch.testing.assert_close(t(x)[0], ref(x)[0], rtol=1e-3, atol=1e-3)


def test_forward_fn_runs_in_inference_mode():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.is_inference_mode_enabled())
            return x * 2

    fn = timing.forward_fn(Probe().eval(), timing.seeded_input(1, 32))
    timing.warm_up(fn, 2)
    fn()
    assert seen == [True, True, True]
    timing.warm_up(fn, 0)
    assert len(seen) == 3


def test_devices():
    assert timing.device_available("cpu")
    assert timing.device_available("cuda") == torch.cuda.is_available()
    assert not timing.device_available("cuda:99")
    assert not timing.device_available("tpu")
    timing.synchronize("cpu")  # a no-op, never an error
    assert timing.is_cuda("cuda:0") and not timing.is_cuda("cpu")


def test_a_continued_series_keeps_alternating_and_extends_with_its_interval():
    clock = FakeClock()
    ref, cand = clock.work("ref", [10] * 9), clock.work("cand", [3, 3, 3, 4, 3, 3, 3, 3, 9])
    first = timing.interleaved_ratio(ref, cand, pairs=5, timer=clock)
    more = timing.interleaved_ratio(ref, cand, pairs=4, timer=clock, start=5)  # pair 5 is an odd one: cand first
    assert clock.calls[10:12] == ["cand", "ref"], "the order carries on across batches"
    both = first.extended(more)
    assert both.pairs == 9 and both.median == 0.3 and both.reference_s == [10] * 9
    d = both.as_dict()
    assert (d["ci_low"], d["ci_high"], d["ci_ranks"], d["pairs"]) == (0.3, 0.4, [2, 8], 9), "9.0/10 left out"
    assert d["ci_coverage"] >= 0.95 and d["ci_confidence"] == 0.95 and "decision" not in d
    assert both.text() == "0.30 [0.30, 0.40], 9 pairs"
    few = timing.SpeedRatio.from_ratios([0.3, 0.4])
    assert few.as_dict()["ci_low"] is None and few.text() == "0.35 (no interval), 2 pairs"
