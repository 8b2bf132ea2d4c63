"""Static figures per variant: file size, FP16-normalised size, params, GFLOPs, channels, zeroed channels.

Deterministic, so compared exactly with the limits in the suite config. A variant without a limit is measured and
reported (terminal summary, figures) but not gated.
"""

from slimbench.config import violation


def test_size(slimbench, variant):
    st, lim = slimbench.static(variant.name), slimbench.limits(variant.name)
    ref = slimbench.static(slimbench.reference.name)
    slimbench.gate(
        [
            violation(
                variant.name,
                "file size",
                st["file_size_mb"],
                lim.max_size_mb,
                "max",
                "{:,.2f} MB",
                note=f"as stored, {st['stored_dtype']}",
            ),
            violation(
                variant.name,
                "size ratio",
                st["size_ratio"],
                lim.max_size_ratio,
                "max",
                "{:.3f}",
                note=f"FP16-normalised {st['normalized_size_mb']:.2f} MB vs {ref['normalized_size_mb']:.2f} MB "
                f"of {slimbench.reference.name}",
            ),
        ]
    )


def test_params(slimbench, variant):
    st, lim = slimbench.static(variant.name), slimbench.limits(variant.name)
    ref = slimbench.static(slimbench.reference.name)
    slimbench.gate(
        [
            violation(variant.name, "params", st["params"], lim.max_params, "max", "{:,.0f}"),
            violation(
                variant.name,
                "params ratio",
                st["params_ratio"],
                lim.max_params_ratio,
                "max",
                "{:.3f}",
                note=f"{st['params']:,} vs {ref['params']:,} of {slimbench.reference.name}",
            ),
        ]
    )


def test_gflops(slimbench, variant):
    st, lim = slimbench.static(variant.name), slimbench.limits(variant.name)
    ref = slimbench.static(slimbench.reference.name)
    unit = f"at {st['imgsz']}x{st['imgsz']}, batch 1"
    slimbench.gate(
        [
            violation(variant.name, "GFLOPs", st["gflops"], lim.max_gflops, "max", "{:.3f}", note=unit),
            violation(
                variant.name,
                "GFLOPs ratio",
                st["gflops_ratio"],
                lim.max_gflops_ratio,
                "max",
                "{:.3f}",
                note=f"{st['gflops']:.3f} vs {ref['gflops']:.3f} GFLOPs of {slimbench.reference.name}, {unit}",
            ),
        ]
    )


def test_channels_removed(slimbench, variant):
    st, lim = slimbench.static(variant.name), slimbench.limits(variant.name)
    ref = slimbench.static(slimbench.reference.name)
    slimbench.gate(
        [
            violation(
                variant.name,
                "channels removed",
                st["channels_removed_pct"],
                lim.min_channels_removed_pct,
                "min",
                "{:.1f}%",
                note=f"{st['prunable_channels']:,} prunable conv output channels vs {ref['prunable_channels']:,} "
                f"of {slimbench.reference.name}",
            )
        ]
    )


def test_zeroed_channels(slimbench, variant):
    st, lim = slimbench.static(variant.name), slimbench.limits(variant.name)
    worst = sorted(st["zeroed_channels"].items(), key=lambda kv: -kv[1])[:3]
    layers = ", ".join(f"{name} {n}" for name, n in worst)
    slimbench.gate(
        [
            violation(
                variant.name,
                "zeroed channels",
                st["total_zeroed_channels"],
                lim.max_zeroed_channels,
                "max",
                "{:,.0f}",
                note=f"all-zero output channels: mask-only pruning, nothing removed; e.g. {layers}",
            )
        ]
    )
