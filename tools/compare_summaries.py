"""Did a change keep the suite's behaviour? Compare two runs' ``summary.json`` on every figure that is not a timing.

    python tools/compare_summaries.py BEFORE/summary.json AFTER/summary.json

Sizes, params, GFLOPs, channels, detections, agreement, mAP, parity, the checks' verdicts on deterministic figures and
the verdict lines' gate counts must be identical. Timings (latency, FPS, speed and memory ratios, peak memory,
export seconds) and what drifts by design (the ONNX file size, creation times, paths of the run) are left out;
so are checks on timed figures, whose verdicts follow the machine's load. Exit 1 on any difference, listing each.
Restructuring (issue #23) ran this on the bundled ``./run bench`` before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TIMED_SECTIONS = {
    "forward",
    "speed_ratio",
    "memory",
    "memory_ratio",
    "predict_median_s",
    "matrix",
    "matrix_vs_torch",
    "attribution",
}
"""Per-variant figure sections that hold timings or memory measured in this run (``matrix``: the deployment matrix's
latency per cell; ``attribution``: time per layer)."""
DRIFTING_KEYS = {
    "onnx_size_mb",
    "onnx_sha256",
    "export_seconds",
    "export_built",
    "int8_sha256",
    "int8_size_mb",
    "int8_seconds",
    "int8_path",
    "calibration",
    "path",
    "onnx_path",
    "seconds",
    "created",
}
"""Keys that differ between two runs of the same code by design: exported files' bytes (ultralytics' ONNX export
and the INT8 file built from it vary run to run), durations, paths and dates."""
TIMED_METRICS = {"speed_ratio", "ort_speed_ratio", "memory_ratio", "cell_vs_torch"}
"""Checks on timed figures: their values and verdicts follow the machine's load."""


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of a JSON value, dict keys sorted, list items by index."""
    if isinstance(value, dict):
        for k in sorted(value):
            if k not in DRIFTING_KEYS:
                yield from flatten(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def kept_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures that must not change: per variant without timed sections and timed checks, plus the verdicts'
    gate counts and which gates did not run."""
    out: dict[str, Any] = {}
    for name, figs in doc.get("variants", {}).items():
        kept = {k: v for k, v in figs.items() if k not in TIMED_SECTIONS and k != "failed_checks"}
        kept["checks"] = [
            {k: c.get(k) for k in ("metric", "cell", "limit", "bound", "value", "passed")}
            for c in figs.get("checks", [])
            if c.get("metric") not in TIMED_METRICS
        ]
        out[name] = kept
    for v in doc.get("verdicts", []):
        out[f"verdict:{v['variant']}"] = {
            "smaller": v.get("smaller"),
            "map50_95_change": v.get("map50_95_change"),
            "gates": (v.get("gates_passed", 0) + v.get("gates_failed", 0)),
            "gates_not_run": v.get("gates_not_run"),
        }
    return out


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per path whose value differs or exists on one side only."""
    a, b = dict(flatten(kept_figures(before))), dict(flatten(kept_figures(after)))
    lines = []
    for path in sorted(a.keys() | b.keys()):
        if a.get(path, "<absent>") != b.get(path, "<absent>"):
            lines.append(f"{path}: {a.get(path, '<absent>')!r} -> {b.get(path, '<absent>')!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    docs = []
    for p in (args.before, args.after):
        try:
            docs.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            print(f"compare_summaries: {p}: {e}", file=sys.stderr)
            return 2
    diff = differences(*docs)
    n = len(list(flatten(kept_figures(docs[0]))))
    for line in diff:
        print(line)
    print(f"{n} figures compared, {len(diff)} differ" + ("" if diff else ": behaviour kept"))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
