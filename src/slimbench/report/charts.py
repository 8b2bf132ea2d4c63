"""The report's charts as PNG bytes (matplotlib, Agg, no display): drawn from the summary, embedded in the HTML.

The notebook this suite replaces drew its bar charts inline and lost them; here every run writes them into its
report. A chart whose data this run did not measure (latency with benchmarks disabled, say) is still drawn, saying
so, so the report always has the same charts in the same places.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

REFERENCE_COLOR = "#7f7f7f"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_SIZE = (4.3, 3.0)
_DPI = 100


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def colors(names: Sequence[str], reference: str) -> dict[str, str]:
    """One colour per variant, the reference grey, stable across charts."""
    out, i = {}, 0
    for n in names:
        if n == reference:
            out[n] = REFERENCE_COLOR
        else:
            out[n] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI)
    plt.close(fig)
    return buf.getvalue()


def _empty(title: str, why: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True, fontsize=9, color="#555555", transform=ax.transAxes)
    ax.set_axis_off()
    return _png(fig)


def bars(
    title: str,
    ylabel: str,
    series: Mapping[str, Mapping[str, float | None]],
    variants: Sequence[str],
    reference: str,
    fmt: str = "{:.2f}",
    hline: float | None = None,
    why_empty: str = "not measured in this run",
) -> bytes:
    """Grouped bars: one group per series label (e.g. "cpu-b1"), one bar per variant, value printed on the bar."""
    plt = _plt()
    series = {k: v for k, v in series.items() if any(x is not None for x in v.values())}
    if not series:
        return _empty(title, why_empty)
    col = colors(variants, reference)
    fig, ax = plt.subplots(figsize=(max(_SIZE[0], 1.6 + 1.2 * len(series) * max(1, len(variants)) * 0.45), _SIZE[1]))
    n = len(variants)
    width = 0.8 / max(n, 1)
    for j, name in enumerate(variants):
        xs, ys = [], []
        for i, values in enumerate(series.values()):
            y = values.get(name)
            if y is not None:
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(y)
        if not xs:
            continue
        rects = ax.bar(xs, ys, width * 0.92, label=name, color=col[name])
        ax.bar_label(rects, labels=[fmt.format(y) for y in ys], fontsize=7, padding=1)
    ax.set_xticks(range(len(series)), list(series), fontsize=8)
    if len(series) == 1 and next(iter(series)) == "":
        ax.set_xticks([])
    if hline is not None:
        ax.axhline(hline, color="#333333", lw=0.8, ls="--")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(y=0.15)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return _png(fig)


def boxes(
    title: str,
    rounds: Mapping[str, Mapping[str, Sequence[float]]],
    variants: Sequence[str],
    reference: str,
    why_empty: str,
) -> bytes:
    """Latency distribution per variant: one panel per timing group, one box per variant, in milliseconds."""
    plt = _plt()
    groups = {g: {n: r for n, r in per.items() if r} for g, per in rounds.items()}
    groups = {g: per for g, per in groups.items() if per}
    if not groups:
        return _empty(title, why_empty)
    col = colors(variants, reference)
    fig, axes = plt.subplots(1, len(groups), figsize=(max(_SIZE[0], 2.6 * len(groups) + 0.8), _SIZE[1]), squeeze=False)
    for ax, (group, per) in zip(axes[0], groups.items(), strict=True):
        names = [n for n in variants if n in per]
        data = [[s * 1e3 for s in per[n]] for n in names]
        bp = ax.boxplot(data, patch_artist=True, showfliers=True, widths=0.6)
        for patch, n in zip(bp["boxes"], names, strict=True):
            patch.set_facecolor(col[n])
            patch.set_alpha(0.75)
        for median in bp["medians"]:
            median.set_color("black")
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=7, rotation=20)
        ax.set_title(group, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("ms per call (benchmark rounds)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def lines(
    title: str,
    ticks: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    reference: str,
    steps: Mapping[str, int] | None = None,
) -> bytes:
    """One line per variant over runs (``ticks`` name them, oldest first; None: not measured in that run), a dashed
    vertical line in the variant's colour at each flagged step's first run."""
    plt = _plt()
    col = colors(list(series), reference)
    fig, ax = plt.subplots(figsize=(max(_SIZE[0], 1.2 + 0.32 * len(ticks)), _SIZE[1]))
    for name, values in series.items():
        xs = [i for i, v in enumerate(values) if v is not None]
        ax.plot(xs, [values[i] for i in xs], marker="o", ms=3, lw=1.2, label=name, color=col[name])
    for name, at in (steps or {}).items():
        ax.axvline(at - 0.5, color=col.get(name, "#333333"), lw=1.0, ls="--")
    ax.set_xticks(range(len(ticks)), list(ticks), fontsize=6)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(y=0.15)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return _png(fig)


def render_all(summary: Mapping[str, Any], rounds: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, bytes]:
    """Every chart of :data:`slimbench.report.summary.CHARTS`, by name, from the summary's rows."""
    rows = summary["rows"]
    variants = [r["variant"] for r in rows]
    ref = summary["reference"]
    by = {r["variant"]: r for r in rows}

    def series(prefix: str) -> dict[str, dict[str, float | None]]:
        keys = [c["key"] for c in summary["columns"] if c["key"].startswith(prefix + "[")]
        return {k[len(prefix) + 1 : -1]: {n: by[n].get(k) for n in variants} for k in keys}

    def one(key: str, scale: float = 1.0) -> dict[str, dict[str, float | None]]:
        return {"": {n: (by[n].get(key) * scale if by[n].get(key) is not None else None) for n in variants}}

    no_rounds = (  # test_forward deselected (-m matrix, -k) or pytest-benchmark disabled: say both, not one guess
        "no forward benchmark rounds in this run\n(not selected, or --benchmark-disable / --slimbench-smoke)"
    )
    size = {
        "file as stored": {n: by[n].get("file_size_mb") for n in variants},
        "FP16-normalised": {n: by[n].get("normalized_size_mb") for n in variants},
    }
    imgsz = summary["environment"].get("imgsz")
    return {
        "size": bars("Size (MB, 1e6 bytes)", "MB", size, variants, ref),
        "params": bars("Parameters (millions)", "M params", one("params", 1e-6), variants, ref, "{:.3f}"),
        "gflops": bars(f"GFLOPs ({imgsz}x{imgsz}, batch 1)", "GFLOPs", one("gflops"), variants, ref),
        "latency": boxes("Forward latency per variant", rounds, variants, ref, no_rounds),
        "fps": bars(
            "Throughput (images/s, benchmark medians)",
            "FPS",
            series("fps"),
            variants,
            ref,
            "{:.1f}",
            why_empty=no_rounds,
        ),
        "speedup": bars(
            "Speedup vs reference (x; >1 is faster)",
            "x",
            speedup_series(summary.get("deployment", []), ref),
            variants,
            ref,
            "{:.2f}",
            hline=1.0,
            why_empty="no timings in this run",
        ),
    }


def speedup_series(deployment: Sequence[Mapping[str, Any]], reference: str) -> dict[str, dict[str, float | None]]:
    """The one speedup chart's groups: per cell, its label over "paired" (1 / the paired speed ratio, the gated figure)
    or "medians" (two benchmarks' medians, where no pair was timed), so each bar says which it is; a cell whose
    candidates differ in that gets both groups. The reference stands at 1.0 in each."""
    from slimbench.report.verdicts import cell_speedups

    out: dict[str, dict[str, float | None]] = {}
    for label, per in cell_speedups(deployment, reference).items():
        for source in ("paired", "medians"):
            values = {n: s.value for n, s in per.items() if s.source == source}
            if values:
                out[f"{label}\n{source}"] = {reference: 1.0, **values}
    return out
