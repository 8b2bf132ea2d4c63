"""The run's summary: one row per variant holding every figure of the report's table, and its two writers.

Built from what the tests recorded in the session (``SuiteSession.figures``): static metrics, forward medians,
interleaved speed ratios, detections and agreement, accuracy when measured, the baseline check. Nothing is measured
here, so the summary can only repeat the tests' numbers. ``summary.json`` holds the rows with the environment,
the per-variant figures and a schema version; ``summary.csv`` (pandas) and the HTML table show the same rows.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.timing_key import RUNTIME_IDS, TimingKey
from slimbench.core.undefined import NA_NO_DETECTIONS, NA_NO_REFERENCE
from slimbench.core.undefined import is_undefined as _na

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession

SCHEMA = "slimbench-summary"
SCHEMA_VERSION = 3
"""3: ``failed_checks`` names the failed metrics (``params ratio; speed ratio [cpu-b1-t2]``), never test functions;
a variant's ``checks`` hold every verdict; ``verdicts`` (one per candidate) and ``tables`` (the report's per-aspect
tables) are new. 2: timing keys name the thread count (``latency_ms[cpu-b1-t2]``), the deployment table has a
threads and a memory-ratio column, and an undefined figure is its reason (``"n/a (0 detections)"``)."""
CHARTS = ("size", "params", "gflops", "latency", "fps", "speedup")
"""Every chart the HTML report embeds, in order (a chart without data says so in its image). One speedup chart:
1 / the paired speed ratio where measured, else from benchmark medians, each group labelled which."""

ACCURACY_COLUMNS = {  # key in the session's "accuracy" figures -> (label, unit)
    "map50": ("mAP50", "dataset"),
    "map50_95": ("mAP50-95", "dataset"),
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


@dataclass
class Failure:
    """A failed test of one variant, as the report plugin saw it (timed cell or image, first message line, phase).
    Which test it was is not kept: a user's renamed copy of the suite reports the same."""

    variant: str
    key: str | None
    message: str
    when: str = "call"


@dataclass
class RunFacts:
    """What the report plugin gathered besides the session figures: failures and raw benchmark rounds."""

    failures: list[Failure] = field(default_factory=list)
    rounds: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # "cpu-b1", "ort-cpu-b1" -> variant -> s
    predict: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> device -> median s
    benchmark_regressions: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, str | None] = field(default_factory=dict)


# ---------------------------------------------------------------- environment


def cpu_name() -> str:
    """The CPU model as the OS names it (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA)."""
    try:
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU" for a report
        pass
    return []


def versions() -> dict[str, str]:
    """Versions of the packages whose behaviour the figures depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("slimbench", "torch", "ultralytics", "torch-pruning", "pytest-benchmark", "pytest-html"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def environment(session: SuiteSession, baseline_path: Path | None = None) -> dict[str, Any]:
    """The environment table: package versions, machine, and the settings that shape every figure."""
    import torch

    from slimbench.measure.timing import available_cpus

    s = session.settings
    gpus = gpu_names()
    return {
        **versions(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "threads": list(s.threads),
        "threads_oversubscribed": session.oversubscribed(),  # counts above available_cpus: timings of contention
        "torch_interop_threads": torch.get_num_interop_threads(),
        "gpu": ", ".join(gpus) if gpus else "none",
        "devices": list(s.device),
        "imgsz": s.imgsz,
        "batches": list(s.batch),
        "conf": s.conf,
        "iou": s.iou,
        "match_iou": s.match_iou,
        "speed_pairs": s.speed_pairs,
        "images": [str(p) for p in session.image_paths.values()],
        "reference": session.config.reference,
        "thresholds_file": str(session.config.source) if session.config.source else "none (--variant only)",
        "limits_not_applied": dict(session.config.unlimited),
        "baseline_file": str(baseline_path) if baseline_path else "none",
        "smoke": session.smoke,
    }


# ---------------------------------------------------------------- rows


def timing_label(key: str) -> str:
    """``"cpu-b1-t2-640"`` -> ``"cpu-b1-t2"`` (imgsz is the same for the whole run and named in the environment)."""
    return TimingKey.parse(key).label


def _mean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(vals) if vals else None


def _mean_or_na(values: Iterable[float | str | None]) -> float | str | None:
    """The mean of the defined figures; where none is defined, the reason (``"n/a (0 detections)"``), not 1.0."""
    values = list(values)
    numbers = [v for v in values if _number(v) is not None]
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
    """The table's columns for this run: static, latency/FPS per timed cell, the speed ratio and its speedup per
    paired cell, detections, accuracy when any variant has it, and the checks. The speedup from two benchmarks'
    medians keeps its own plainly named column (``speedup_medians[...]``): it is not the paired figure."""
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
    if any("onnx_size_mb" in f.get("deployment", {}) for f in figs):
        cols.append(_col("onnx_size_mb"))
    if any("parity" in f for f in figs):
        cols.append(_col("onnx_parity_max_abs_diff"))
    memory_keys = list(dict.fromkeys(k for f in figs for k in f.get("memory", {})))
    for key in memory_keys:
        label = timing_label(key)
        cols.append(_col(f"peak_rss_mb[{label}]", f"peak RSS {label}"))
    forward_keys = list(dict.fromkeys(k for f in figs for k in f.get("forward", {})))
    ratio_keys = list(dict.fromkeys(k for f in figs for k in f.get("speed_ratio", {})))
    for key in forward_keys:
        label = timing_label(key)
        cols += [_col(f"{m}[{label}]", f"{lab} {label}") for m, lab in (("latency_ms", "latency"), ("fps", "FPS"))]
        cols.append(_col(f"speedup_medians[{label}]", f"speedup from medians (not paired) {label}"))
    for key in ratio_keys:
        label = timing_label(key)
        cols.append(_col(f"speed_ratio[{label}]", f"speed ratio {label}"))
        cols.append(_col(f"speedup[{label}]", f"speedup (paired) {label}"))
    cols += [
        _col("detections_per_image", "detections / image", f"conf {s.conf}", "{:.1f}"),  # a mean
        _col("agreement_recall_sample", "agreement R", "sample images"),
        _col("agreement_precision_sample", "agreement P", "sample images"),
    ]
    measured = {k for f in figs for k, v in f.get("accuracy", {}).items() if _number(v) is not None or _na(v)}
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def paired_speedup(ratio: Any) -> float | None:
    """1 / a paired median speed ratio: the speedup the speed gate's own figure gives (None: no ratio measured)."""
    r = _number(ratio)
    return 1.0 / r if r is not None and r > 0 else None


def _paired_keys(session: SuiteSession) -> set[str]:
    """Timing keys in which some candidate was timed in interleaved pairs against the reference."""
    return {k for f in session.figures.values() for k in f.get("speed_ratio", {})}


def rows(session: SuiteSession, facts: RunFacts) -> list[dict[str, Any]]:
    """One flat row per variant (reference first); a figure this run did not measure is None. The reference's paired
    speedup is 1.0 by definition in every cell a candidate was paired in (it is never paired with itself)."""
    out: list[dict[str, Any]] = []
    paired = _paired_keys(session)
    for v in session.variants:
        f = session.figures[v.name]
        st = f.get("static", {})
        row: dict[str, Any] = {
            "variant": v.name,
            "role": v.role,
            "file_size_mb": st.get("file_size_mb"),
            "normalized_size_mb": st.get("normalized_size_mb"),
            "stored_dtype": f.get("stored_dtype"),
            "params": st.get("params"),
            "gflops": st.get("gflops"),
            "channels_removed_pct": st.get("channels_removed_pct"),
            "zeroed_channels": st.get("total_zeroed_channels"),
        }
        if "onnx_size_mb" in f.get("deployment", {}):
            row["onnx_size_mb"] = f["deployment"]["onnx_size_mb"]
        if "parity" in f:
            row["onnx_parity_max_abs_diff"] = f["parity"].get("max_abs_diff")
        for key, m in f.get("memory", {}).items():
            row[f"peak_rss_mb[{timing_label(key)}]"] = m.get("peak_rss_mb")
        for key, t in f.get("forward", {}).items():
            label = timing_label(key)
            batch = TimingKey.parse(key).batch
            median = t.get("median_s")
            row[f"latency_ms[{label}]"] = median * 1e3 if median else None
            row[f"fps[{label}]"] = batch / median if median and batch else None
            row[f"speedup_medians[{label}]"] = t.get("speedup_from_medians")
        for key, r in f.get("speed_ratio", {}).items():
            row[f"speed_ratio[{timing_label(key)}]"] = r.get("median_ratio")
            row[f"speedup[{timing_label(key)}]"] = paired_speedup(r.get("median_ratio"))
        if v.is_reference:
            row.update({f"speedup[{timing_label(key)}]": 1.0 for key in paired})
        dets = f.get("detections", {})
        agr = f.get("agreement", {})
        row["detections_per_image"] = _mean(d.get("count") for d in dets.values())
        if v.is_reference and dets:  # agreement with itself: 1.0 where it found boxes, else undefined (0 of 0)
            found = any(d.get("count") for d in dets.values())
            row["agreement_recall_sample"] = 1.0 if found else NA_NO_REFERENCE
            row["agreement_precision_sample"] = 1.0 if found else NA_NO_DETECTIONS
        else:
            row["agreement_recall_sample"] = _mean_or_na(a.get("recall") for a in agr.values())
            row["agreement_precision_sample"] = _mean_or_na(a.get("precision") for a in agr.values())
        for key in ACCURACY_COLUMNS:
            raw = f.get("accuracy", {}).get(key)
            value = _number(raw) if not _na(raw) else raw
            if value is not None:
                row[key] = value
        base = f.get("baseline", {})
        row["baseline"] = base.get("status", "not checked")
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
    Column("speedup", "speedup", "x, 1 / paired ratio", "higher", "{:.2f}"),
    Column("speedup_medians", "speedup from medians (not paired)", "x, two benchmarks' medians", "higher", "{:.2f}"),
    Column("peak_rss_mb", "peak RSS", "MB, fresh process", "lower", "{:.0f}"),
    Column("inference_mb", "inference memory", "MB over loaded", "lower", "{:.0f}"),
    Column("memory_ratio", "memory ratio", "vs reference, same run", "lower", "{:.3f}"),
    Column("cuda_max_allocated_mb", "CUDA max allocated", "MB", "lower", "{:.0f}"),
    Column("onnx_size_mb", "model file", "MB (ONNX for ort)", "lower", "{:.2f}"),
)
"""The deployment table: one row per variant x runtime x device x batch, runtimes side by side. ``speedup`` is the
paired figure (undefined where no pair was timed); ``speedup_medians`` the reference median / variant median."""


def deployment_rows(session: SuiteSession) -> list[dict[str, Any]]:
    """Rows of the deployment table from the forward, speed-ratio and memory figures (None: not measured)."""
    out: list[dict[str, Any]] = []
    paired = _paired_keys(session)
    cells = sorted(
        {
            TimingKey.parse(k)
            for f in session.figures.values()
            for sec in ("forward", "speed_ratio", "memory")
            for k in f.get(sec, {})
        }
    )
    for cell in cells:
        key, runtime = str(cell), cell.runtime
        for v in session.variants:
            f = session.figures[v.name]
            t, r, m = (f.get(sec, {}).get(key) or {} for sec in ("forward", "speed_ratio", "memory"))
            if not (t or r or m):
                continue
            dep = f.get("deployment", {})
            size = dep.get("onnx_size_mb") if runtime == "onnxruntime" else f.get("static", {}).get("file_size_mb")
            speedup = 1.0 if v.is_reference and key in paired else paired_speedup(r.get("median_ratio"))
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
                    "speed_ratio": r.get("median_ratio"),
                    "speedup": speedup,
                    "speedup_medians": t.get("speedup_from_medians"),
                    "peak_rss_mb": m.get("peak_rss_mb"),
                    "inference_mb": m.get("inference_mb"),
                    "memory_ratio": (f.get("memory_ratio", {}).get(key) or {}).get("ratio"),
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


def check_name(check: Mapping[str, Any]) -> str:
    """``speed ratio [cpu-b1-t2]``: the metric's label and the cell it was judged in."""
    from slimbench.core.metric_specs import SPECS

    spec = SPECS.get(str(check.get("metric")))
    label = spec.label if spec else str(check.get("metric"))
    return f"{label} [{_label_or_image(check['cell'])}]" if check.get("cell") else label


def _other_failures(figures: Mapping[str, Any], failures: Iterable[Failure], name: str) -> list[Failure]:
    """Failures of a variant that no recorded check explains (a failed export, an error in a test)."""
    said = {line for c in figures.get("checks", []) if c.get("message") for line in str(c["message"]).splitlines()}
    return [x for x in failures if x.variant == name and x.message not in said]


def failed_checks(figures: Mapping[str, Any], failures: Iterable[Failure], name: str) -> list[str]:
    """What failed for a variant: the failed checks by metric, then failures no check explains (first line)."""
    checks = [check_name(c) for c in figures.get("checks", []) if not c.get("passed")]
    return list(dict.fromkeys([*checks, *(x.message for x in _other_failures(figures, failures, name))]))


def flagged_cells(session: SuiteSession, facts: RunFacts) -> dict[str, set[str]]:
    """Variant -> the table columns a failed check, a baseline regression or a timing regression points at (the
    columns each metric declares in ``slimbench.core.metric_specs``)."""
    from slimbench.core.metric_specs import SPECS

    out: dict[str, set[str]] = {v.name: set() for v in session.variants}
    for v in session.variants:
        figures = session.figures[v.name]
        for check in figures.get("checks", []):
            if check.get("passed") or str(check.get("metric")) not in SPECS:
                continue
            label = _label_or_image(check["cell"]) if check.get("cell") else ""
            out[v.name].update(c.format(key=label) for c in SPECS[check["metric"]].columns)
        if _other_failures(figures, facts.failures, v.name):
            out[v.name].add("failed_checks")
        for metric in figures.get("baseline", {}).get("regressed", []):
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


# ---------------------------------------------------------------- verdicts: one line per candidate


def _times(value: float | None, word: str, why: str = "n/a (not measured)") -> str:
    return f"{value:.2f}x {word}" if isinstance(value, (int, float)) and value > 0 else f"{why} {word}"


@dataclass(frozen=True)
class CellSpeedup:
    """A candidate's speedup over the reference in one cell, and whether it is the paired (gated) figure."""

    value: float
    paired: bool

    @property
    def source(self) -> str:
        return "paired" if self.paired else "medians"


def cell_label(row: Mapping[str, Any]) -> str:
    """A deployment row's cell as charts and verdicts name it: ``"torch b1 t2"``, ``"ort cuda:0 b8 t1"``."""
    rt = RUNTIME_IDS.get(str(row.get("runtime")), str(row.get("runtime")))
    dev = "" if row.get("device") == "cpu" else f" {row.get('device')}"
    return f"{rt}{dev} b{row.get('batch')} t{row.get('threads')}"


def cell_speedups(deployment: Iterable[Mapping[str, Any]], reference: str) -> dict[str, dict[str, CellSpeedup]]:
    """Cell label -> candidate -> its one speedup there: 1 / the paired speed ratio where it was measured (the gated
    figure), else the benchmark medians' (separate runs, minutes apart), marked as such. The reference is left out:
    it is 1.0 by definition."""
    out: dict[str, dict[str, CellSpeedup]] = {}
    for row in deployment:
        name = str(row.get("variant"))
        paired, medians = _number(row.get("speedup")), _number(row.get("speedup_medians"))
        value = paired if paired is not None else medians
        if name != reference and value is not None:
            out.setdefault(cell_label(row), {})[name] = CellSpeedup(value, paired is not None)
    return out


def _faster_text(label: str, speedup: CellSpeedup | None) -> str:
    if speedup is None:
        return _times(None, f"faster {label}")
    how = "paired" if speedup.paired else "from medians, not paired"
    return f"{_times(speedup.value, f'faster {label}')} ({how})"


def verdicts(session: SuiteSession, facts: RunFacts, deployment: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate: how many times smaller (file size), faster per runtime/device/batch/threads (1 / paired speed
    ratio where measured, else benchmark medians, ``faster_from`` says which), the mAP50-95 change, and its gates;
    ``line`` says it all."""
    ref = session.reference.name
    ref_figs = session.figures[ref]
    speedups = cell_speedups(deployment, ref)
    out = []
    for v in session.candidates:
        f = session.figures[v.name]
        size, ref_size = f.get("static", {}).get("file_size_mb"), ref_figs.get("static", {}).get("file_size_mb")
        smaller = ref_size / size if _number(size) and _number(ref_size) else None
        mine = {label: per.get(v.name) for label, per in speedups.items()}
        faster = {label: s.value if s else None for label, s in mine.items()}
        m, ref_m = f.get("accuracy", {}).get("map50_95"), ref_figs.get("accuracy", {}).get("map50_95")
        change = m - ref_m if _number(m) is not None and _number(ref_m) is not None else None
        why_map = m if _na(m) else "n/a (smoke mode)" if session.smoke and m is not None else "n/a (not measured)"
        checks = f.get("checks", [])
        others = _other_failures(f, facts.failures, v.name)
        failed = [c for c in checks if not c.get("passed")]
        first = (failed[0]["message"] if failed else others[0].message if others else "") or ""
        first = first.splitlines()[0] if first else None
        n_failed, n_passed = len(failed) + len(others), len(checks) - len(failed)
        size_text = (
            f"{_times(smaller, 'smaller')} ({ref_size:.2f} -> {size:.2f} MB file)"
            if smaller
            else _times(None, "smaller")
        )
        speed_text = ", ".join(_faster_text(label, s) for label, s in mine.items()) or "speed n/a (not timed)"
        map_text = f"mAP50-95 {change:+.4f} ({ref_m:.4f} -> {m:.4f})" if change is not None else f"mAP50-95 {why_map}"
        not_run = session.not_run(v.name)
        gates = f"gates {n_passed} passed, {n_failed} failed" + not_run_text(not_run)
        gates += f"; first failure: {first}" if first else ""
        unlimited = session.config.unlimited.get(v.name)
        gates += f"; {unlimited}" if unlimited else ""
        out.append(
            {
                "variant": v.name,
                "smaller": smaller,
                "faster": faster,
                "faster_from": {label: s.source if s else None for label, s in mine.items()},
                "map50_95_change": change,
                "gates_passed": n_passed,
                "gates_failed": n_failed,
                "gates_not_run": not_run,
                "limits_not_applied": unlimited,
                "first_failure": first,
                "line": f"{v.name}: {size_text}; {speed_text}; {map_text}; {gates}",
            }
        )
    return out


def not_run_text(not_run: list[dict[str, str]]) -> str:
    """``", 2 not run (deselected: max_map50_95_drop, min_agreement_map50)"``, grouped by reason; "" when none."""
    if not not_run:
        return ""
    by_reason: dict[str, list[str]] = {}
    for entry in not_run:
        by_reason.setdefault(entry["reason"], []).append(entry["limit"])
    parts = "; ".join(f"{why}: {', '.join(keys)}" for why, keys in by_reason.items())
    return f", {len(not_run)} not run ({parts})"


# ---------------------------------------------------------------- the document and its writers


def _plain(value: Any) -> Any:
    """JSON-ready: tuples to lists, paths to strings, non-finite floats to None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def build(session: SuiteSession, facts: RunFacts, env: Mapping[str, Any]) -> dict[str, Any]:
    """The whole summary document (what summary.json holds)."""
    cols = columns(session)
    table = rows(session, facts)
    keys = [c.key for c in cols]
    variants = {}
    for v in session.variants:
        f = dict(session.figures[v.name])
        f["predict_median_s"] = facts.predict.get(v.name, {})
        f["failed_checks"] = [x.__dict__ for x in facts.failures if x.variant == v.name]  # as pytest said it
        variants[v.name] = f
    images = {
        image: {
            v.name: session.figures[v.name].get("detections", {}).get(image, {}).get("count") for v in session.variants
        }
        for image in session.image_paths
    }
    flagged = flagged_cells(session, facts)
    deployment = deployment_rows(session)
    return _plain(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reference": session.config.reference,
            "environment": dict(env),
            "columns": [c.as_dict() for c in cols],
            "rows": [{k: r.get(k) for k in keys} for r in table],
            "regressions": {name: sorted(cells) for name, cells in flagged.items() if cells},
            "benchmark_regressions": facts.benchmark_regressions,
            "charts": list(CHARTS),
            "deployment_columns": [c.as_dict() for c in DEPLOYMENT_COLUMNS],
            "deployment": deployment,
            "verdicts": verdicts(session, facts, deployment),
            "tables": tables(cols),
            "images": images,
            "variants": variants,
            # the deployment matrix, one row per variant x cell (latency, speedups, agreement, mAP), when it ran
            "matrix": session.deploy.rows() if getattr(session, "_deploy", None) is not None else [],
            "outputs": facts.outputs,
        }
    )


def write_json(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.json, atomically."""
    from slimbench.model.checkpoint import atomic_write_bytes

    return atomic_write_bytes(path, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def write_csv(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.csv (pandas): the table's rows and columns, keys as headers, atomically."""
    import pandas as pd

    from slimbench.model.checkpoint import atomic_write_bytes

    keys = [c["key"] for c in summary["columns"]]
    frame = pd.DataFrame(summary["rows"], columns=keys)
    return atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))
