"""Forward latency per variant x device x batch x threads x runtime at the suite's imgsz (pytest-benchmark).

One group per device/batch/threads/imgsz, so pytest-benchmark prints one table with the variants and the runtimes
side by side (``test_forward[pruned-cpu-b1-t2-torch]`` next to ``test_forward[pruned-cpu-b1-t2-ort]``). torch times
a fused FP32 copy in eval mode under torch.inference_mode; ONNX Runtime times the variant's ONNX export
(ultralytics' exporter, cached); both with the stated thread count, on the same seeded input, synchronised on
CUDA. Nothing is asserted here (absolute times depend on the machine): the speed gate is test_speed_ratio.py.
extra_info holds the thread count, the round percentiles (p50/p90/p99) and FPS.
"""

import pytest

from slimbench.errors import SlimbenchError
from slimbench.ort_runtime import NoProvider
from slimbench.timing import latency_figures


def test_forward(benchmark, slimbench, variant, device, batch, threads, runtime):
    s = slimbench.settings
    st = slimbench.static(variant.name)
    try:
        fn = slimbench.runtime_callable(variant.name, runtime, device, batch, threads)  # warmed up
    except SlimbenchError as e:  # this variant's export failed: said once, in one line; the others still run
        pytest.fail(str(e), pytrace=False)
    except NoProvider as e:  # no ONNX Runtime provider for this device (CUDA without onnxruntime-gpu)
        pytest.skip(str(e))
    benchmark.group = f"forward-{device}-b{batch}-t{threads}-{s.imgsz}"
    benchmark.extra_info.update(
        variant=variant.name,
        role=variant.role,
        runtime=runtime,
        device=device,
        batch=batch,
        threads=threads,
        imgsz=s.imgsz,
        params=st["params"],
        gflops=st["gflops"],
        gflops_unit=st["gflops_unit"],
        dtype=slimbench.timing_dtype(device) if runtime == "torch" else "float32",
        stored_dtype=st["stored_dtype"],
        fused=True,
    )
    if runtime == "onnxruntime":
        from slimbench.ort_runtime import provider_for

        benchmark.extra_info.update(provider=provider_for(device)[1])
    benchmark(fn)

    stats = getattr(benchmark, "stats", None)  # None with --benchmark-disable
    if stats is None:
        return
    key = slimbench.timing_key(device, batch, runtime, threads)
    timed = latency_figures(stats.stats.data, batch)
    ref = slimbench.figures[slimbench.reference.name].get("forward", {}).get(key)
    if variant.is_reference:
        timed["speedup_vs_reference"] = 1.0
    elif ref and timed["median_s"] > 0:  # the reference is parametrised first, so it has been timed by now
        timed["speedup_vs_reference"] = ref["median_s"] / timed["median_s"]
    timed["runtime"] = runtime
    benchmark.extra_info.update({k: timed.get(k) for k in ("p50_s", "p90_s", "p99_s", "fps")})
    benchmark.extra_info["speedup_vs_reference"] = timed.get("speedup_vs_reference")
    slimbench.record(variant.name, "forward", key, timed)
