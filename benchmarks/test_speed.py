"""Forward latency per variant x device x batch at the suite's imgsz (pytest-benchmark).

One group per device/batch/imgsz, so pytest-benchmark prints one table with the variants side by side. The timed
call is a fused FP32 copy in eval mode under torch.inference_mode on a fixed seeded input, synchronised on CUDA.
Nothing is asserted here (absolute times depend on the machine): the speed gate is test_speed_ratio.py.
"""


def test_forward(benchmark, slimbench, variant, device, batch):
    s = slimbench.settings
    st = slimbench.static(variant.name)
    fn = slimbench.forward_callable(variant.name, device, batch)  # warmed up
    benchmark.group = f"forward-{device}-b{batch}-{s.imgsz}"
    benchmark.extra_info.update(
        variant=variant.name,
        role=variant.role,
        device=device,
        batch=batch,
        imgsz=s.imgsz,
        params=st["params"],
        gflops=st["gflops"],
        gflops_unit=st["gflops_unit"],
        dtype=slimbench.timing_dtype(device),
        stored_dtype=st["stored_dtype"],
        fused=True,
    )
    benchmark(fn)

    stats = getattr(benchmark, "stats", None)  # None with --benchmark-disable
    if stats is None:
        return
    key = f"{device}-b{batch}-{s.imgsz}"
    timed = {"median_s": stats.stats.median, "mean_s": stats.stats.mean, "rounds": stats.stats.rounds}
    ref = slimbench.figures[slimbench.reference.name].get("forward", {}).get(key)
    if variant.is_reference:
        timed["speedup_vs_reference"] = 1.0
    elif ref and timed["median_s"] > 0:  # the reference is parametrised first, so it has been timed by now
        timed["speedup_vs_reference"] = ref["median_s"] / timed["median_s"]
    benchmark.extra_info["speedup_vs_reference"] = timed.get("speedup_vs_reference")
    slimbench.record(variant.name, "forward", key, timed)
