"""Forward latency per variant x device x batch x threads x runtime at the suite's imgsz (pytest-benchmark).

One group per device/batch/threads/imgsz, so pytest-benchmark prints one table with the variants and the runtimes
side by side (``test_forward[pruned-cpu-b1-t2-torch]`` next to ``test_forward[pruned-cpu-b1-t2-ort]``). torch times
a fused FP32 copy in eval mode under torch.inference_mode; ONNX Runtime times the variant's ONNX export
(ultralytics' exporter, cached); both with the stated thread count, on the same seeded input, synchronised on
CUDA. Nothing is asserted here (absolute times depend on the machine): the speed gate is test_speed_ratio.py.
extra_info holds the thread count, the round percentiles (p50/p90/p99), FPS and ``speedup_from_medians`` (the
reference's median / this one's: two benchmarks, not paired; the report's speedup is 1 / the paired speed ratio).
"""

from slimbench.bench.checks import forward_info, measured, record_forward


def test_forward(benchmark, slimbench, variant, device, batch, threads, runtime):
    fn = measured(lambda: slimbench.runtime_callable(variant.name, runtime, device, batch, threads))  # warmed up
    benchmark.group = f"forward-{device}-b{batch}-t{threads}-{slimbench.settings.imgsz}"
    benchmark.extra_info.update(forward_info(slimbench, variant.name, runtime, device, batch, threads))
    benchmark(fn)
    stats = getattr(benchmark, "stats", None)  # None with --benchmark-disable
    if stats is not None:
        key = slimbench.timing_key(device, batch, runtime, threads)
        timed = record_forward(slimbench, variant.name, key, stats.stats.data, batch, runtime)
        keys = ("p50_s", "p90_s", "p99_s", "fps", "speedup_from_medians")
        benchmark.extra_info.update({k: timed.get(k) for k in keys})
