"""The gated figures for an existing dashboard: github-action-benchmark's custom JSON
(``--slimbench-github-benchmark PATH``).

github-action-benchmark reads a list of ``{"name", "unit", "value", "range"?, "extra"?}`` entries under one tool per
file: ``customSmallerIsBetter`` or ``customBiggerIsBetter``, and it refuses an empty list. So the figures are split
by the direction their metric declares (``slimbench.core.metric_specs``) into two files beside PATH, the direction
in the name: ``bench.json`` -> ``bench.smaller.json`` and ``bench.bigger.json``; a direction with no figure writes no
file (and removes this writer's file of an earlier run, so no stale figure is read as new).

What goes in, per variant: every figure a numeric limit judged (its value as judged), mAP50-95 and mAP50 on the
dataset, and the benchmark median latency per timed cell. Left out: undefined or unmeasured figures (no number to
plot), figures with no better direction (the detection count ratio), and the mAP drops, whose values cross zero
where the action's ratio alert means nothing (the variant's own mAP50-95 is there instead).

Names are built from keys only (variant, metric key, runtime, device, batch, threads, imgsz, image id), never from
labels or values, so a dashboard's history lines up across runs: ``pruned speed_ratio[torch-cpu-b1-t2-640]``,
``finetuned params_ratio``, ``pruned agreement_recall[scene]``. Built from the summary document alone, like the
markdown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimbench.core.metric_specs import SPECS
from slimbench.core.timing_key import RUNTIME_IDS, TimingKey
from slimbench.report.rows import as_number

SMALLER = "customSmallerIsBetter"
BIGGER = "customBiggerIsBetter"
TOOLS = {"lower": SMALLER, "higher": BIGGER}
"""A metric's better direction -> the github-action-benchmark tool whose alert reads it that way."""
SUFFIXES = {SMALLER: "smaller", BIGGER: "bigger"}
LEFT_OUT = frozenset({"map50_95_drop", "map50_95_nms_free_drop", "int8_map50_95_drop"})
"""Gated, but crossing zero: a ratio alert on them is meaningless; the variant's mAP50-95 is written instead."""
ACCURACY = ("map50_95", "map50", "map50_95_nms_free")


def cell_id(cell: str | None, imgsz: int | None = None) -> str:
    """A cell in a stable name: a timing key with its runtime always spelled (``torch-cpu-b1-t2-640``), an image id
    as is."""
    if not cell:
        return ""
    try:
        k = TimingKey.parse(str(cell), imgsz)
    except ValueError:
        return str(cell)
    return f"{RUNTIME_IDS[k.runtime]}-{k.device}-b{k.batch}-t{k.threads}-{k.imgsz}"


def entry_name(variant: str, metric: str, cell: str = "") -> str:
    return f"{variant} {metric}[{cell}]" if cell else f"{variant} {metric}"


def _entry(name: str, metric: str, value: float, extra: str = "", range_: str = "") -> dict[str, Any]:
    spec = SPECS[metric]
    out: dict[str, Any] = {"name": name, "unit": spec.unit or spec.label, "value": value}
    if range_:
        out["range"] = range_
    if extra:
        out["extra"] = extra
    return out


def _gated(summary: Mapping[str, Any], name: str, variant: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The figures a numeric limit judged, once per metric and cell (a figure with two limits is one entry)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    imgsz = summary.get("environment", {}).get("imgsz")
    ratios = variant.get("speed_ratio", {})
    for c in variant.get("checks", []):
        metric, value = str(c.get("metric")), as_number(c.get("value"))
        spec = SPECS.get(metric)
        if not c.get("limit") or value is None or spec is None or spec.better not in TOOLS or metric in LEFT_OUT:
            continue
        key = entry_name(name, metric, cell_id(c.get("cell"), imgsz))
        limits = [f"{x.get('limit')} {x.get('bound')}" for x in variant.get("checks", []) if _same(x, c)]
        passed = all(x.get("passed") for x in variant.get("checks", []) if _same(x, c))
        extra = f"limit {', '.join(limits)}: {'passed' if passed else 'FAILED'}; vs {summary.get('reference')}"
        r = ratios.get(c.get("cell")) if metric in ("speed_ratio", "ort_speed_ratio") else None
        spread = ""
        if r and as_number(r.get("min_ratio")) is not None and as_number(r.get("max_ratio")) is not None:
            spread = f"{r['min_ratio']:.3f} to {r['max_ratio']:.3f} over {r.get('pairs')} pairs"
        out.setdefault(key, (TOOLS[spec.better], _entry(key, metric, value, extra, spread)))
    return list(out.values())


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("metric") == b.get("metric") and a.get("cell") == b.get("cell") and bool(a.get("limit"))


def entries(summary: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Tool -> its entries, variants in the summary's order: the gated figures, then mAP, then latency per cell."""
    out: dict[str, list[dict[str, Any]]] = {SMALLER: [], BIGGER: []}
    for name, variant in summary.get("variants", {}).items():
        for tool, e in _gated(summary, name, variant):
            out[tool].append(e)
        accuracy = variant.get("accuracy", {})
        for metric in ACCURACY:
            value = as_number(accuracy.get(metric))
            if value is not None:
                extra = "on the dataset's val split"
                out[TOOLS[SPECS[metric].better]].append(_entry(entry_name(name, metric), metric, value, extra))
    imgsz = summary.get("environment", {}).get("imgsz")
    for row in summary.get("deployment", []):
        ms = as_number(row.get("median_ms"))
        if ms is None:
            continue
        try:
            key = TimingKey.of(str(row["runtime"]), str(row["device"]), int(row["batch"]), int(row["threads"]), 0)
        except (KeyError, TypeError, ValueError):
            continue
        cell = cell_id(key.label, imgsz)
        p90, p99 = as_number(row.get("p90_ms")), as_number(row.get("p99_ms"))
        extra = f"benchmark median of {row.get('rounds')} rounds"
        extra += f"; p90 {p90:.2f} ms" if p90 is not None else ""
        extra += f"; p99 {p99:.2f} ms" if p99 is not None else ""
        out[SMALLER].append(_entry(entry_name(str(row.get("variant")), "latency_ms", cell), "latency_ms", ms, extra))
    return out


def paths(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Tool -> its file: PATH with ``.smaller`` / ``.bigger`` before the extension (``.json`` when it has none)."""
    p = Path(path)
    ext = p.suffix or ".json"
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return {tool: p.with_name(f"{stem}.{suffix}{ext}") for tool, suffix in SUFFIXES.items()}


def write(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> dict[str, tuple[Path, int]]:
    """Write each direction's file that has entries (atomically) and remove an earlier run's file of a direction
    that has none; returns tool -> (file, entries) for the files written."""
    from slimbench.core.files import atomic_write_bytes

    written = {}
    by_tool = entries(summary)
    for tool, file in paths(path).items():
        items = by_tool[tool]
        if items:
            atomic_write_bytes(file, (json.dumps(items, indent=2, allow_nan=False) + "\n").encode("utf-8"))
            written[tool] = (file, len(items))
        else:
            file.unlink(missing_ok=True)
    return written
