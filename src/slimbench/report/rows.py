"""The summary's table: its columns, one flat row per variant, the deployment rows (one per variant and timed cell),
and what failed: the failed checks by metric and the cells a failure or regression flags.

Built from what the tests recorded in the session (``SuiteSession.figures``); nothing is measured here. Columns take
their label, unit, format and direction from ``slimbench.core.metric_specs``; a figure not measured is None, an
undefined one its reason (``"n/a (0 detections)"``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slimbench.core.timing_key import TimingKey
from slimbench.core.undefined import NA_NO_DETECTIONS, NA_NO_REFERENCE, is_undefined
from slimbench.report.facts import Failure, RunFacts

if TYPE_CHECKING:
    from slimbench.bench.figures import Check, VariantFigures
    from slimbench.bench.session import SuiteSession
    from slimbench.measure.timing import SpeedRatio

ACCURACY_COLUMNS = {  # key in the session's "accuracy" figures -> (label, unit)
    "map50": ("mAP50", "dataset"),
    "map50_95": ("mAP50-95", "dataset"),
    "map50_nms_free": ("NMS-free mAP50", "dataset, one-to-one head"),
    "map50_95_nms_free": ("NMS-free mAP50-95", "dataset, one-to-one head"),
    "precision": ("P", "dataset"),
    "recall": ("R", "dataset"),
    "agreement_map50": ("agreement mAP50", "agreement images"),
    "agreement_recall": ("agreement R", "agreement images"),
    "agreement_precision": ("agreement P", "agreement images"),
}


@dataclass(frozen=True)
class Column:
    """A column of the summary table: CSV/JSON key, HTML label, unit, and which way is better."""

    key: str
    label: str
    unit: str = ""
    better: str = ""  # "lower", "higher" or "" (neither)
    fmt: str = "{}"

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "better": self.better}


INTERVAL_COLUMNS = (  # key, label, unit, format: the paired ratio's interval and pair count, per cell
    ("speed_ratio_ci_low", "speed ratio 95% low", "order statistics", "{:.3f}"),
    ("speed_ratio_ci_high", "speed ratio 95% high", "order statistics", "{:.3f}"),
    ("speed_pairs", "pairs", "interleaved", "{:d}"),
    ("speed_decision", "speed gate", "pass, fail or close", "{}"),
)


def interval_figures(ratio: SpeedRatio | None) -> dict[str, Any]:
    """A paired ratio's interval, pairs and gate decision under the row keys of :data:`INTERVAL_COLUMNS` (None
    where no pair was timed, or where the ratio was not gated)."""
    if ratio is None:
        return {k: None for k, *_ in INTERVAL_COLUMNS}
    iv = ratio.interval
    return {
        "speed_ratio_ci_low": iv.low,
        "speed_ratio_ci_high": iv.high,
        "speed_pairs": ratio.pairs,
        "speed_decision": ratio.decision,
    }


def interval_text(row: Mapping[str, Any], fmt: str = "{:.3f}") -> Any:
    """A paired speed ratio as the report shows it: ``"0.310 [0.290, 0.330], 13 pairs"`` (the median, its 95%
    interval, the pairs timed), or ``"close: median 0.490, interval [0.470, 0.520], 61 pairs"`` where the gate found
    it close; the row's bare ``speed_ratio`` where no pair was timed. ``row``: a deployment row or the same keys."""
    ratio, pairs = row.get("speed_ratio"), row.get("speed_pairs")
    low, high = row.get("speed_ratio_ci_low"), row.get("speed_ratio_ci_high")
    if as_number(ratio) is None or pairs is None:
        return ratio
    shown = f"[{fmt.format(low)}, {fmt.format(high)}]" if low is not None and high is not None else "(no interval)"
    if row.get("speed_decision") == "close":
        return f"close: median {fmt.format(ratio)}, interval {shown}, {pairs} pairs"
    return f"{fmt.format(ratio)} {shown}, {pairs} pairs"


def timing_label(key: str) -> str:
    """``"cpu-b1-t2-640"`` -> ``"cpu-b1-t2"`` (imgsz is the same for the whole run and named in the environment)."""
    return TimingKey.parse(key).label


def _mean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(vals) if vals else None


def _mean_or_na(values: Iterable[float | str | None]) -> float | str | None:
    """The mean of the defined figures; where none is defined, the reason (``"n/a (0 detections)"``), not 1.0."""
    values = list(values)
    numbers = [v for v in values if as_number(v) is not None]
    if numbers:
        return statistics.fmean(numbers)
    return next((v for v in values if isinstance(v, str)), None)


def _col(key: str, label: str | None = None, unit: str | None = None, fmt: str | None = None) -> Column:
    """A metric's column as ``slimbench.core.metric_specs`` declares it (label, unit, format and direction)."""
    from slimbench.core.metric_specs import spec_of_column

    spec = spec_of_column(key)
    if spec is None:
        return Column(key, label or key)
    return Column(key, label or spec.label, spec.unit if unit is None else unit, spec.better, fmt or spec.fmt)


def columns(session: SuiteSession) -> list[Column]:
    """The table's columns for this run: static, latency/FPS per timed cell, the speed ratio (with its 95% interval,
    pairs and gate decision) and its speedup per paired cell, detections, accuracy when any variant has it, and the
    checks. The speedup from two benchmarks' medians keeps its own plainly named column (``speedup_medians[...]``):
    it is not the paired figure."""
    s = session.settings
    figs = session.figures.values()
    cols = [
        Column("variant", "variant"),
        Column("role", "role"),
        _col("file_size_mb"),
        _col("normalized_size_mb"),
        Column("stored_dtype", "stored as"),
        _col("params"),
        _col("gflops", unit=f"{s.imgsz}px b1"),
        _col("channels_removed_pct"),
        _col("zeroed_channels"),
    ]
    if any("onnx_size_mb" in f.deployment for f in figs):
        cols.append(_col("onnx_size_mb"))
    if any(f.parity is not None for f in figs):
        cols.append(_col("onnx_parity_max_abs_diff"))
    memory_keys = list(dict.fromkeys(k for f in figs for k in f.memory))
    for key in memory_keys:
        label = timing_label(key)
        cols.append(_col(f"peak_rss_mb[{label}]", f"peak RSS {label}"))
    forward_keys = list(dict.fromkeys(k for f in figs for k in f.forward))
    ratio_keys = list(dict.fromkeys(k for f in figs for k in f.speed_ratio))
    for key in forward_keys:
        label = timing_label(key)
        cols += [_col(f"{m}[{label}]", f"{lab} {label}") for m, lab in (("latency_ms", "latency"), ("fps", "FPS"))]
        cols.append(_col(f"speedup_medians[{label}]", f"speedup from medians (not paired) {label}"))
    for key in ratio_keys:
        label = timing_label(key)
        cols.append(_col(f"speed_ratio[{label}]", f"speed ratio {label}"))
        cols += [Column(f"{k}[{label}]", f"{lab} {label}", unit, "", fmt) for k, lab, unit, fmt in INTERVAL_COLUMNS]
        cols.append(_col(f"speedup[{label}]", f"speedup (paired) {label}"))
    cols += [
        _col("detections_per_image", "detections / image", f"conf {s.conf}", "{:.1f}"),  # a mean
        _col("agreement_recall_sample", "agreement R", "sample images"),
        _col("agreement_precision_sample", "agreement P", "sample images"),
    ]
    measured = {k for f in figs for k, v in f.accuracy.items() if as_number(v) is not None or is_undefined(v)}
    cols += [_col(k, lab, unit) for k, (lab, unit) in ACCURACY_COLUMNS.items() if k in measured]
    cols += [Column("baseline", "baseline"), Column("failed_checks", "failed checks")]
    return cols


def tables(cols: Iterable[Column]) -> dict[str, list[str]]:
    """The report's per-aspect tables (``core.metric_specs.TABLES``) -> the per-variant columns each shows, from
    the table each metric declares. Per-cell columns (``latency_ms[cpu-b1-t2]``) are shown one row per cell in the
    speed and deployment tables; the checks (baseline, failed checks) in the verdicts."""
    from slimbench.core.metric_specs import TABLES, spec_of_column

    out: dict[str, list[str]] = {t: ["variant"] for t in TABLES}
    for c in cols:
        spec = spec_of_column(c.key)
        table = spec.table if spec else "size" if c.key == "stored_dtype" else None
        if table and "[" not in c.key:
            out[table].append(c.key)
    return {t: keys for t, keys in out.items() if len(keys) > 1}


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def paired_speedup(ratio: Any) -> float | None:
    """1 / a paired median speed ratio: the speedup the speed gate's own figure gives (None: no ratio measured)."""
    r = as_number(ratio)
    return 1.0 / r if r is not None and r > 0 else None


def _paired_keys(session: SuiteSession) -> set[str]:
    """Timing keys in which some candidate was timed in interleaved pairs against the reference."""
    return {k for f in session.figures.values() for k in f.speed_ratio}


def rows(session: SuiteSession, facts: RunFacts) -> list[dict[str, Any]]:
    """One flat row per variant (reference first); a figure this run did not measure is None. The reference's paired
    speedup is 1.0 by definition in every cell a candidate was paired in (it is never paired with itself)."""
    out: list[dict[str, Any]] = []
    paired = _paired_keys(session)
    for v in session.variants:
        f = session.figures[v.name]
        st = f.static or {}
        row: dict[str, Any] = {
            "variant": v.name,
            "role": v.role,
            "file_size_mb": st.get("file_size_mb"),
            "normalized_size_mb": st.get("normalized_size_mb"),
            "stored_dtype": f.stored_dtype,
            "params": st.get("params"),
            "gflops": st.get("gflops"),
            "channels_removed_pct": st.get("channels_removed_pct"),
            "zeroed_channels": st.get("total_zeroed_channels"),
        }
        if "onnx_size_mb" in f.deployment:
            row["onnx_size_mb"] = f.deployment["onnx_size_mb"]
        if f.parity is not None:
            row["onnx_parity_max_abs_diff"] = f.parity.get("max_abs_diff")
        for key, m in f.memory.items():
            row[f"peak_rss_mb[{timing_label(key)}]"] = m.get("peak_rss_mb")
        for key, t in f.forward.items():
            label = timing_label(key)
            batch = TimingKey.parse(key).batch
            median = t.get("median_s")
            row[f"latency_ms[{label}]"] = median * 1e3 if median else None
            row[f"fps[{label}]"] = batch / median if median and batch else None
            row[f"speedup_medians[{label}]"] = t.get("speedup_from_medians")
        for key, r in f.speed_ratio.items():
            row[f"speed_ratio[{timing_label(key)}]"] = r.median
            row.update({f"{k}[{timing_label(key)}]": v for k, v in interval_figures(r).items()})
            row[f"speedup[{timing_label(key)}]"] = paired_speedup(r.median)
        if v.is_reference:
            row.update({f"speedup[{timing_label(key)}]": 1.0 for key in paired})
        dets = f.detections
        agr = f.agreement
        row["detections_per_image"] = _mean(d.get("count") for d in dets.values())
        if v.is_reference and dets:  # agreement with itself: 1.0 where it found boxes, else undefined (0 of 0)
            found = any(d.get("count") for d in dets.values())
            row["agreement_recall_sample"] = 1.0 if found else NA_NO_REFERENCE
            row["agreement_precision_sample"] = 1.0 if found else NA_NO_DETECTIONS
        else:
            row["agreement_recall_sample"] = _mean_or_na(a.shown("recall") for a in agr.values())
            row["agreement_precision_sample"] = _mean_or_na(a.shown("precision") for a in agr.values())
        for key in ACCURACY_COLUMNS:
            raw = f.accuracy.get(key)
            value = as_number(raw) if not is_undefined(raw) else raw
            if value is not None:
                row[key] = value
        row["baseline"] = f.baseline.get("status", "not checked")
        row["failed_checks"] = "; ".join(failed_checks(f, facts.failures, v.name))
        out.append(row)
    return out


DEPLOYMENT_COLUMNS = (
    Column("variant", "variant"),
    Column("runtime", "runtime"),
    Column("device", "device"),
    Column("batch", "batch"),
    Column("threads", "threads"),
    Column("median_ms", "latency", "ms, p50", "lower", "{:.2f}"),
    Column("p90_ms", "p90", "ms", "lower", "{:.2f}"),
    Column("p99_ms", "p99", "ms", "lower", "{:.2f}"),
    Column("rounds", "rounds", "", "", "{:,}"),
    Column("fps", "FPS", "images/s", "higher", "{:.1f}"),
    Column("speed_ratio", "speed ratio", "paired median", "lower", "{:.3f}"),
    *(Column(k, lab, unit, "", fmt) for k, lab, unit, fmt in INTERVAL_COLUMNS),
    Column("speedup", "speedup", "x, 1 / paired ratio", "higher", "{:.2f}"),
    Column("speedup_medians", "speedup from medians (not paired)", "x, two benchmarks' medians", "higher", "{:.2f}"),
    Column("peak_rss_mb", "peak RSS", "MB, fresh process", "lower", "{:.0f}"),
    Column("inference_mb", "inference memory", "MB over loaded", "lower", "{:.0f}"),
    Column("memory_ratio", "memory ratio", "vs reference, same run", "lower", "{:.3f}"),
    Column("cuda_max_allocated_mb", "CUDA max allocated", "MB", "lower", "{:.0f}"),
    Column("onnx_size_mb", "model file", "MB (ONNX for ort)", "lower", "{:.2f}"),
)
"""The deployment table: one row per variant x runtime x device x batch, runtimes side by side. ``speedup`` is the
paired figure (undefined where no pair was timed), its ratio's 95% interval, pairs and gate decision beside it;
``speedup_medians`` the reference median / variant median."""


def deployment_rows(session: SuiteSession) -> list[dict[str, Any]]:
    """Rows of the deployment table from the forward, speed-ratio and memory figures (None: not measured)."""
    out: list[dict[str, Any]] = []
    paired = _paired_keys(session)
    cells = sorted(
        {TimingKey.parse(k) for f in session.figures.values() for k in (*f.forward, *f.speed_ratio, *f.memory)}
    )
    for cell in cells:
        key, runtime = str(cell), cell.runtime
        for v in session.variants:
            f = session.figures[v.name]
            t, m = f.forward.get(key) or {}, f.memory.get(key) or {}
            r = f.speed_ratio.get(key)
            ratio = r.median if r is not None else None
            if not (t or r is not None or m):
                continue
            file_mb = (f.static or {}).get("file_size_mb")
            size = f.deployment.get("onnx_size_mb") if runtime == "onnxruntime" else file_mb
            speedup = 1.0 if v.is_reference and key in paired else paired_speedup(ratio)
            out.append(
                {
                    "variant": v.name,
                    "runtime": runtime,
                    "device": cell.device,
                    "batch": cell.batch,
                    "threads": cell.threads,
                    "median_ms": _ms(t.get("median_s")),
                    "p90_ms": _ms(t.get("p90_s")),
                    "p99_ms": _ms(t.get("p99_s")),
                    "rounds": t.get("rounds"),
                    "fps": t.get("fps"),
                    "speed_ratio": ratio,
                    **interval_figures(r),
                    "speedup": speedup,
                    "speedup_medians": t.get("speedup_from_medians"),
                    "peak_rss_mb": m.get("peak_rss_mb"),
                    "inference_mb": m.get("inference_mb"),
                    "memory_ratio": (f.memory_ratio.get(key) or {}).get("ratio"),
                    "cuda_max_allocated_mb": m.get("cuda_max_allocated_mb"),
                    "onnx_size_mb": size,
                }
            )
    return out


def _ms(seconds: Any) -> float | None:
    return seconds * 1e3 if isinstance(seconds, (int, float)) and math.isfinite(seconds) else None


def _label_or_image(key: str) -> str:
    """A check's cell: a timing key's label, or an image id / matrix cell as it is."""
    try:
        return timing_label(key)
    except ValueError:
        return key


def check_name(check: Check) -> str:
    """``speed ratio [cpu-b1-t2]``: the metric's label and the cell it was judged in."""
    from slimbench.core.metric_specs import SPECS

    spec = SPECS.get(str(check.metric))
    label = spec.label if spec else str(check.metric)
    return f"{label} [{_label_or_image(check.cell)}]" if check.cell else label


def other_failures(figures: VariantFigures, failures: Iterable[Failure], name: str) -> list[Failure]:
    """Failures of a variant that no recorded check explains (a failed export, an error in a test)."""
    said = {line for c in figures.checks if c.message for line in str(c.message).splitlines()}
    return [x for x in failures if x.variant == name and x.message not in said]


def failed_checks(figures: VariantFigures, failures: Iterable[Failure], name: str) -> list[str]:
    """What failed for a variant: the failed checks by metric, then failures no check explains (first line)."""
    checks = [check_name(c) for c in figures.failed()]
    return list(dict.fromkeys([*checks, *(x.message for x in other_failures(figures, failures, name))]))


def flagged_cells(session: SuiteSession, facts: RunFacts) -> dict[str, set[str]]:
    """Variant -> the table columns a failed check, a baseline regression or a timing regression points at (the
    columns each metric declares in ``slimbench.core.metric_specs``)."""
    from slimbench.core.metric_specs import SPECS

    out: dict[str, set[str]] = {v.name: set() for v in session.variants}
    for v in session.variants:
        figures = session.figures[v.name]
        for check in figures.failed():
            if str(check.metric) not in SPECS:
                continue
            label = _label_or_image(check.cell) if check.cell else ""
            out[v.name].update(c.format(key=label) for c in SPECS[check.metric].columns)
        if other_failures(figures, facts.failures, v.name):
            out[v.name].add("failed_checks")
        for metric in figures.baseline.get("regressed", []):
            family, _, rest = metric.partition("[")
            spec = SPECS.get(family)
            cols = spec.columns if spec else (family,)
            out[v.name].update(c.format(key=rest.rstrip("]")) for c in cols if "{key}" not in c or rest)
            out[v.name].add("baseline")
    for reg in facts.benchmark_regressions:
        if reg.get("variant") in out and reg.get("key"):
            out[reg["variant"]].add(f"latency_ms[{timing_label(reg['key'])}]")
    for cells in out.values():
        if cells:
            cells.add("variant")
    return out
