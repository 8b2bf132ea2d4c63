"""Every metric slimbench judges or reports, declared once.

A :class:`MetricSpec` names a figure, its unit and format, which way is better, the TOML limit keys that gate it
(``[thresholds.NAME]``), its default tolerance in the stored baseline, and the report table and columns it appears
in. The config schema (threshold keys), the baseline comparison (directions, tolerances), the summary columns, the
gate messages and the report read this tuple, so a new metric is one entry here. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher", ""]
Table = Literal["size", "speed", "accuracy", "deployment"]
TABLES: dict[str, str] = {
    "size": "Size and structure",
    "speed": "Speed",
    "accuracy": "Detections and accuracy",
    "deployment": "Deployment",
}
"""The report's per-aspect tables, in the order the page shows them."""


@dataclass(frozen=True)
class Limit:
    """A TOML limit key of ``[thresholds.NAME]`` and how it bounds the figure."""

    key: str
    kind: Literal["max", "min"]
    integer: bool = False


@dataclass(frozen=True)
class MetricSpec:
    """One metric: how it is shown, which way is better, what gates it, where the report puts it."""

    key: str  # figure / baseline family name
    label: str  # as gate messages and the report name it
    unit: str = ""
    fmt: str = "{:.3f}"  # the number alone
    better: Better = ""  # "" : neither (a baseline change either way is a regression)
    limits: tuple[Limit, ...] = ()
    tolerance: float | str | None = None  # default baseline tolerance ("1%": relative); None: not in the baseline
    table: Table = "size"
    columns: tuple[str, ...] = ()  # summary columns it is shown in ("{key}": the timing label of the cell)
    suffix: str = ""  # written after a number in gate messages ("%", " MB")


def _max(key: str, integer: bool = False) -> tuple[Limit, ...]:
    return (Limit(key, "max", integer),)


def _min(key: str) -> tuple[Limit, ...]:
    return (Limit(key, "min"),)


M = MetricSpec
METRICS: tuple[MetricSpec, ...] = (
    # size and structure (deterministic; the baseline's order: params first)
    M(
        "params",
        "params",
        fmt="{:,.0f}",
        better="lower",
        limits=_max("max_params", True),
        tolerance=0,
        columns=("params",),
    ),
    M(
        "gflops",
        "GFLOPs",
        "at imgsz, batch 1",
        better="lower",
        limits=_max("max_gflops"),
        tolerance="0.1%",
        columns=("gflops",),
    ),
    M(
        "file_size_mb",
        "file size",
        "MB",
        "{:,.2f}",
        "lower",
        _max("max_size_mb"),
        "1%",
        columns=("file_size_mb",),
        suffix=" MB",
    ),
    M("normalized_size_mb", "FP16 size", "MB", better="lower", tolerance=0.001, columns=("normalized_size_mb",)),
    M(
        "total_channels",
        "conv output channels",
        fmt="{:,.0f}",
        better="lower",
        tolerance=0,
        columns=("channels_removed_pct",),
    ),
    M(
        "zeroed_channels",
        "zeroed channels",
        fmt="{:,.0f}",
        better="lower",
        limits=_max("max_zeroed_channels", True),
        tolerance=0,
        columns=("zeroed_channels",),
    ),
    M(
        "channels_removed_pct",
        "channels removed",
        "%",
        "{:.1f}",
        "higher",
        _min("min_channels_removed_pct"),
        0.1,
        columns=("channels_removed_pct",),
        suffix="%",
    ),
    M(
        "size_ratio",
        "size ratio",
        "FP16 size / reference's",
        better="lower",
        limits=_max("max_size_ratio"),
        columns=("normalized_size_mb",),
    ),
    M(
        "params_ratio",
        "params ratio",
        "/ reference's",
        better="lower",
        limits=_max("max_params_ratio"),
        columns=("params",),
    ),
    M(
        "gflops_ratio",
        "GFLOPs ratio",
        "/ reference's",
        better="lower",
        limits=_max("max_gflops_ratio"),
        columns=("gflops",),
    ),
    # detections on the sample images, accuracy on the dataset
    M(
        "detections",
        "detections",
        "per image",
        "{:,.0f}",
        tolerance=1,
        table="accuracy",
        columns=("detections_per_image",),
    ),
    M(
        "count_ratio",
        "detection count ratio",
        "/ reference's",
        table="accuracy",
        columns=("detections_per_image",),
        limits=(Limit("min_count_ratio", "min"), Limit("max_count_ratio", "max")),
    ),
    M(
        "agreement_recall",
        "agreement recall",
        "share of reference boxes",
        better="higher",
        tolerance=0.05,
        limits=_min("min_agreement_recall"),
        table="accuracy",
        columns=("agreement_recall_sample", "agreement_recall"),
    ),
    M(
        "agreement_precision",
        "agreement precision",
        "share of own boxes",
        better="higher",
        tolerance=0.05,
        limits=_min("min_agreement_precision"),
        table="accuracy",
        columns=("agreement_precision_sample", "agreement_precision"),
    ),
    M("map50", "mAP50", "dataset", "{:.4f}", "higher", tolerance=0.01, table="accuracy", columns=("map50",)),
    M("map50_95", "mAP50-95", "dataset", "{:.4f}", "higher", tolerance=0.01, table="accuracy", columns=("map50_95",)),
    M("precision", "P", "dataset", "{:.4f}", "higher", tolerance=0.02, table="accuracy", columns=("precision",)),
    M("recall", "R", "dataset", "{:.4f}", "higher", tolerance=0.02, table="accuracy", columns=("recall",)),
    M(
        "agreement_map50",
        "agreement mAP50",
        "agreement images",
        better="higher",
        limits=_min("min_agreement_map50"),
        tolerance=0.02,
        table="accuracy",
        columns=("agreement_map50",),
    ),
    M(
        "map50_95_drop",
        "mAP50-95 drop",
        "reference's minus own",
        better="lower",
        limits=_max("max_map50_95_drop"),
        table="accuracy",
        columns=("map50_95",),
    ),
    # YOLO26's one-to-one (NMS-free) head, validated beside the one-to-many head with NMS where a model has both
    M(
        "map50_nms_free",
        "NMS-free mAP50",
        "dataset, one-to-one head",
        "{:.4f}",
        "higher",
        tolerance=0.01,
        table="accuracy",
        columns=("map50_nms_free",),
    ),
    M(
        "map50_95_nms_free",
        "NMS-free mAP50-95",
        "dataset, one-to-one head",
        "{:.4f}",
        "higher",
        tolerance=0.01,
        table="accuracy",
        columns=("map50_95_nms_free",),
    ),
    M(
        "map50_95_nms_free_drop",
        "NMS-free mAP50-95 drop",
        "reference's minus own, one-to-one heads",
        better="lower",
        limits=_max("max_map50_95_nms_free_drop"),
        table="accuracy",
        columns=("map50_95_nms_free",),
    ),
    # speed: ratios measured in interleaved pairs, one limit per runtime
    M(
        "speed_ratio",
        "speed ratio",
        "paired median",
        better="lower",
        limits=_max("max_speed_ratio"),
        table="speed",
        columns=("speed_ratio[{key}]",),
    ),
    M(
        "ort_speed_ratio",
        "speed ratio",
        "paired median",
        better="lower",
        limits=_max("max_ort_speed_ratio"),
        table="speed",
        columns=("speed_ratio[{key}]",),
    ),
    M("latency_ms", "latency", "ms, median", "{:.2f}", "lower", table="speed", columns=("latency_ms[{key}]",)),
    M("fps", "FPS", "images/s", "{:.1f}", "higher", table="speed", columns=("fps[{key}]",)),
    # one speedup per cell: 1 / the paired speed ratio; the medians' figure keeps a plain name of its own
    M("speedup", "speedup", "x, 1 / paired ratio", "{:.2f}", "higher", table="speed", columns=("speedup[{key}]",)),
    M(
        "speedup_medians",
        "speedup from medians (not paired)",
        "x, two benchmarks' medians",
        "{:.2f}",
        "higher",
        table="speed",
        columns=("speedup_medians[{key}]",),
    ),
    # deployment: ONNX graph, memory, INT8 files
    M("onnx_size_mb", "ONNX size", "MB, FP32", "{:.2f}", "lower", table="deployment", columns=("onnx_size_mb",)),
    M(
        "onnx_params",
        "ONNX weights",
        fmt="{:,.0f}",
        better="lower",
        tolerance=0,
        table="deployment",
        columns=("onnx_size_mb",),
    ),
    M(
        "onnx_weights_mb",
        "ONNX weights",
        "MB",
        "{:.6f}",
        "lower",
        tolerance=0,
        table="deployment",
        columns=("onnx_size_mb",),
    ),
    M(
        "peak_rss_mb",
        "peak RSS",
        "MB, fresh process",
        "{:.0f}",
        "lower",
        # reported, not in the baseline: absolute memory depends on the environment (baseline.RETIRED)
        table="deployment",
        columns=("peak_rss_mb[{key}]",),
    ),
    M(
        "inference_mb",
        "inference memory",
        "MB over loaded",
        "{:.0f}",
        "lower",
        # reported, not in the baseline: absolute memory depends on the environment (baseline.RETIRED)
        table="deployment",
        columns=("peak_rss_mb[{key}]",),
    ),
    M(
        "memory_ratio",
        "memory ratio",
        "vs reference, same run",
        better="lower",
        limits=_max("max_memory_ratio"),
        table="deployment",
        columns=("peak_rss_mb[{key}]",),
    ),
    M(
        "onnx_parity",
        "ONNX parity",
        "max abs diff",
        "{:.3g}",
        "lower",
        table="deployment",
        columns=("onnx_parity_max_abs_diff", "onnx_size_mb"),
    ),
    M(
        "int8_map50_95_drop",
        "INT8 mAP50-95 drop",
        "FP32's minus INT8's",
        better="lower",
        limits=_max("max_int8_map50_95_drop"),
        table="deployment",
    ),
    M(
        "int8_agreement_map50",
        "INT8 agreement mAP50",
        "vs FP32 boxes",
        better="higher",
        limits=_min("min_int8_agreement_map50"),
        table="deployment",
    ),
    # the deployment matrix's deterministic figures (baseline only; the matrix has its own report section)
    M("int8_weights_mb", "INT8 weights", "MB in the QDQ file", "{:.6f}", "lower", tolerance=0, table="deployment"),
    M("int8_convs", "convs with INT8 weights", fmt="{:,.0f}", tolerance=0, table="deployment"),
    M(
        "cell_agreement_map50",
        "cell agreement mAP50",
        "vs the FP32 checkpoint's boxes",
        better="higher",
        tolerance=0.02,
        table="deployment",
    ),
    M("cell_map50_95", "cell mAP50-95", "on the dataset", better="higher", tolerance=0.01, table="deployment"),
)
"""Every metric, in the baseline's comparison order (size first, mAP after detections, deployment last)."""

SPECS: dict[str, MetricSpec] = {m.key: m for m in METRICS}

DATASET_ACCURACY_KEYS = ("map50", "map50_95", "map50_nms_free", "map50_95_nms_free", "precision", "recall")
"""The figures of one validation on the dataset (the NMS-free pair where a model has a one-to-one head): the baseline
keeps them, and they depend on the same settings."""


def limit_keys() -> tuple[str, ...]:
    """Every ``[thresholds.NAME]`` key, in declaration order."""
    return tuple(lim.key for m in METRICS for lim in m.limits)


def integer_limit_keys() -> frozenset[str]:
    """Limit keys whose values are counts (TOML integers)."""
    return frozenset(lim.key for m in METRICS for lim in m.limits if lim.integer)


def baseline_specs() -> tuple[MetricSpec, ...]:
    """The metrics the stored baseline keeps (those with a default tolerance)."""
    return tuple(m for m in METRICS if m.tolerance is not None)


def spec_of_column(column: str) -> MetricSpec | None:
    """The metric a summary column shows: the one of the same name, else the first declaring it
    (``latency_ms[cpu-b1-t2]`` matches ``latency_ms[{key}]``)."""
    family, bracket, _ = column.partition("[")
    if column in SPECS and column in SPECS[column].columns:  # the metric of that name first
        return SPECS[column]
    for m in METRICS:
        if any(c == column or (bracket and c.startswith(family + "[{")) for c in m.columns):
            return m
    return None


GATED_IN: dict[str, str] = {
    "params": "test_params",
    "params_ratio": "test_params",
    "gflops": "test_gflops",
    "gflops_ratio": "test_gflops",
    "file_size_mb": "test_size",
    "size_ratio": "test_size",
    "channels_removed_pct": "test_channels_removed",
    "zeroed_channels": "test_zeroed_channels",
    "count_ratio": "test_detections",
    "agreement_recall": "test_detections",
    "agreement_precision": "test_detections",
    "agreement_map50": "test_agreement",
    "map50_95_drop": "test_map",
    "map50_95_nms_free_drop": "test_map",
    "speed_ratio": "test_speed_ratio",
    "ort_speed_ratio": "test_speed_ratio",
    "memory_ratio": "test_peak_memory",
    "int8_map50_95_drop": "test_cell_map",
    "int8_agreement_map50": "test_cell_agreement",
}
"""Gated metric -> the shipped test function (``slimbench/suite/``) that judges it: how the run knows which limits
a deselection (``-m``, ``-k``, ``--deselect``) left unjudged."""


def gating_test(limit_key: str) -> str:
    """The name of the shipped test that judges a ``[thresholds.NAME]`` key."""
    return GATED_IN[spec_of_limit(limit_key).key]


def spec_of_limit(key: str) -> MetricSpec:
    """The metric a TOML limit key bounds."""
    return next(m for m in METRICS if any(lim.key == key for lim in m.limits))
