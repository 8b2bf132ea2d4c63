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

from slimbench.detections import NA_NO_DETECTIONS
from slimbench.timing_key import TimingKey

if TYPE_CHECKING:
    from slimbench.session import SuiteSession

SCHEMA = "slimbench-summary"
SCHEMA_VERSION = 2
"""2: timing keys name the thread count (``latency_ms[cpu-b1-t2]``), the deployment table has a threads and a
memory-ratio column, and an undefined figure is its reason (``"n/a (0 detections)"``) instead of a number."""
CHARTS = ("size", "params", "gflops", "latency", "fps", "speedup", "runtime_speedup")
"""Every chart the HTML report embeds, in order (a chart without data says so in its image)."""

ACCURACY_COLUMNS = {  # key in the session's "accuracy" figures -> (label, unit)
    "map50": ("mAP50", "dataset"),
    "map50_95": ("mAP50-95", "dataset"),
    "precision": ("P", "dataset"),
    "recall": ("R", "dataset"),
    "agreement_map50": ("agreement mAP50", "agreement images"),
    "agreement_recall": ("agreement R", "agreement images"),
    "agreement_precision": ("agreement P", "agreement images"),
}

# failing test (function name) -> the table columns it is about; a key with "{key}" takes the test's timing key
CHECK_COLUMNS: dict[str, tuple[str, ...]] = {
    "test_size": ("file_size_mb", "normalized_size_mb"),
    "test_params": ("params",),
    "test_gflops": ("gflops",),
    "test_channels_removed": ("channels_removed_pct",),
    "test_zeroed_channels": ("zeroed_channels",),
    "test_detections": ("detections_per_image", "agreement_recall_sample", "agreement_precision_sample"),
    "test_speed_ratio": ("speed_ratio[{key}]",),
    "test_forward": ("latency_ms[{key}]",),
    "test_accuracy": tuple(ACCURACY_COLUMNS),
    "test_onnx_parity": ("onnx_parity_max_abs_diff", "onnx_size_mb"),
    "test_peak_memory": ("peak_rss_mb[{key}]",),  # and the deployment table's memory ratio
}
# baseline metric family -> table column
BASELINE_COLUMNS = {
    "params": "params",
    "gflops": "gflops",
    "file_size_mb": "file_size_mb",
    "normalized_size_mb": "normalized_size_mb",
    "total_channels": "channels_removed_pct",
    "channels_removed_pct": "channels_removed_pct",
    "zeroed_channels": "zeroed_channels",
    "detections": "detections_per_image",
    "agreement_recall": "agreement_recall_sample",
    "agreement_precision": "agreement_precision_sample",
    "onnx_params": "onnx_size_mb",
    "onnx_weights_mb": "onnx_size_mb",
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
    """A failed check of one variant, as the report plugin saw it (test name, timing key, first message line)."""

    variant: str
    test: str
    key: str | None
    message: str


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

    from slimbench.timing import available_cpus

    s = session.settings
    gpus = gpu_names()
    return {
        **versions(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "threads": list(s.threads),
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


def columns(session: SuiteSession) -> list[Column]:
    """The table's columns for this run: static, one latency/FPS/speedup set per timed device and batch, detections,
    accuracy when any variant has it, and the checks."""
    s = session.settings
    figs = session.figures.values()
    cols = [
        Column("variant", "variant"),
        Column("role", "role"),
        Column("file_size_mb", "file size", "MB", "lower", "{:.2f}"),
        Column("normalized_size_mb", "FP16 size", "MB", "lower", "{:.2f}"),
        Column("stored_dtype", "stored as"),
        Column("params", "params", "", "lower", "{:,}"),
        Column("gflops", "GFLOPs", f"{s.imgsz}px b1", "lower", "{:.2f}"),
        Column("channels_removed_pct", "channels removed", "%", "higher", "{:.1f}"),
        Column("zeroed_channels", "zeroed channels", "", "lower", "{:,}"),
    ]
    if any("onnx_size_mb" in f.get("deployment", {}) for f in figs):
        cols.append(Column("onnx_size_mb", "ONNX size", "MB, FP32", "lower", "{:.2f}"))
    if any("parity" in f for f in figs):
        cols.append(Column("onnx_parity_max_abs_diff", "ONNX parity", "max abs diff", "lower", "{:.2g}"))
    memory_keys = list(dict.fromkeys(k for f in figs for k in f.get("memory", {})))
    for key in memory_keys:
        label = timing_label(key)
        cols.append(Column(f"peak_rss_mb[{label}]", f"peak RSS {label}", "MB, fresh process", "lower", "{:.0f}"))
    forward_keys = list(dict.fromkeys(k for f in figs for k in f.get("forward", {})))
    ratio_keys = list(dict.fromkeys(k for f in figs for k in f.get("speed_ratio", {})))
    for key in forward_keys:
        label = timing_label(key)
        cols += [
            Column(f"latency_ms[{label}]", f"latency {label}", "ms, median", "lower", "{:.2f}"),
            Column(f"fps[{label}]", f"FPS {label}", "images/s", "higher", "{:.1f}"),
            Column(f"speedup[{label}]", f"speedup {label}", "x, medians", "higher", "{:.2f}"),
        ]
    for key in ratio_keys:
        label = timing_label(key)
        cols.append(Column(f"speed_ratio[{label}]", f"speed ratio {label}", "paired median", "lower", "{:.3f}"))
    cols += [
        Column("detections_per_image", "detections / image", f"conf {s.conf}", "", "{:.1f}"),
        Column("agreement_recall_sample", "agreement R", "sample images", "higher", "{:.3f}"),
        Column("agreement_precision_sample", "agreement P", "sample images", "higher", "{:.3f}"),
    ]
    measured = {k for f in figs for k, v in f.get("accuracy", {}).items() if _number(v) is not None or _na(v)}
    cols += [Column(k, lab, unit, "higher", "{:.4f}") for k, (lab, unit) in ACCURACY_COLUMNS.items() if k in measured]
    cols += [Column("baseline", "baseline"), Column("failed_checks", "failed checks")]
    return cols


def _na(value: Any) -> bool:
    """An undefined figure as recorded: its reason, ``"n/a (...)"``."""
    return isinstance(value, str) and value.startswith("n/a")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def rows(session: SuiteSession, facts: RunFacts) -> list[dict[str, Any]]:
    """One flat row per variant (reference first); a figure this run did not measure is None."""
    out: list[dict[str, Any]] = []
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
            row[f"speedup[{label}]"] = t.get("speedup_vs_reference")
        for key, r in f.get("speed_ratio", {}).items():
            row[f"speed_ratio[{timing_label(key)}]"] = r.get("median_ratio")
        dets = f.get("detections", {})
        agr = f.get("agreement", {})
        row["detections_per_image"] = _mean(d.get("count") for d in dets.values())
        if v.is_reference and dets:  # agreement with itself: 1.0 where it found boxes, else undefined
            found = any(d.get("count") for d in dets.values())
            row["agreement_recall_sample"] = row["agreement_precision_sample"] = 1.0 if found else NA_NO_DETECTIONS
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
        row["failed_checks"] = "; ".join(dict.fromkeys(check_name(x) for x in facts.failures if x.variant == v.name))
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
    Column("speedup", "speedup", "x, medians", "higher", "{:.2f}"),
    Column("speed_ratio", "speed ratio", "paired median", "lower", "{:.3f}"),
    Column("peak_rss_mb", "peak RSS", "MB, fresh process", "lower", "{:.0f}"),
    Column("inference_mb", "inference memory", "MB over loaded", "lower", "{:.0f}"),
    Column("memory_ratio", "memory ratio", "vs reference, same run", "lower", "{:.3f}"),
    Column("cuda_max_allocated_mb", "CUDA max allocated", "MB", "lower", "{:.0f}"),
    Column("onnx_size_mb", "model file", "MB (ONNX for ort)", "lower", "{:.2f}"),
)
"""The deployment table: one row per variant x runtime x device x batch, runtimes side by side."""


def deployment_rows(session: SuiteSession) -> list[dict[str, Any]]:
    """Rows of the deployment table from the forward, speed-ratio and memory figures (None: not measured)."""
    out: list[dict[str, Any]] = []
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
                    "speedup": t.get("speedup_vs_reference"),
                    "speed_ratio": r.get("median_ratio"),
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
    """A failure's key: a timing key's label, or an image id as it is."""
    try:
        return timing_label(key)
    except ValueError:
        return key


def check_name(failure: Failure) -> str:
    """``test_speed_ratio[pruned-cpu-b1-t2]``: like the test's id, from the variant and the timed cell or image."""
    tail = f"-{_label_or_image(failure.key)}" if failure.key else ""
    return f"{failure.test}[{failure.variant}{tail}]"


def flagged_cells(session: SuiteSession, facts: RunFacts) -> dict[str, set[str]]:
    """Variant -> the table columns a failed check, a baseline regression or a timing regression points at."""
    out: dict[str, set[str]] = {v.name: set() for v in session.variants}
    for failure in facts.failures:
        cols = CHECK_COLUMNS.get(failure.test, ())
        label = _label_or_image(failure.key) if failure.key else ""
        out.setdefault(failure.variant, set()).update(c.format(key=label) for c in cols)
    for v in session.variants:
        for metric in session.figures[v.name].get("baseline", {}).get("regressed", []):
            family = metric.split("[", 1)[0]
            col = metric if family == "peak_rss_mb" else BASELINE_COLUMNS.get(family, family)
            out[v.name].add(col)
            out[v.name].add("baseline")
    for reg in facts.benchmark_regressions:
        if reg.get("variant") in out and reg.get("key"):
            out[reg["variant"]].add(f"latency_ms[{timing_label(reg['key'])}]")
    for cells in out.values():
        if cells:
            cells.add("variant")
    return out


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
        f["failed_checks"] = [x.__dict__ for x in facts.failures if x.variant == v.name]
        variants[v.name] = f
    images = {
        image: {
            v.name: session.figures[v.name].get("detections", {}).get(image, {}).get("count") for v in session.variants
        }
        for image in session.image_paths
    }
    flagged = flagged_cells(session, facts)
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
            "deployment": deployment_rows(session),
            "images": images,
            "variants": variants,
            "outputs": facts.outputs,
        }
    )


def write_json(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.json, atomically."""
    from slimbench.checkpoint import atomic_write_bytes

    return atomic_write_bytes(path, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def write_csv(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.csv (pandas): the table's rows and columns, keys as headers, atomically."""
    import pandas as pd

    from slimbench.checkpoint import atomic_write_bytes

    keys = [c["key"] for c in summary["columns"]]
    frame = pd.DataFrame(summary["rows"], columns=keys)
    return atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))
