"""The deployment matrix in the HTML report: one row per variant x cell, and speedup against accuracy, one point per
cell (what a user trades when picking a runtime and a precision). Undefined figures read "n/a" and are not plotted.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("variant", "variant", "{}"),
    ("cell", "runtime-precision-device-batch-threads", "{}"),
    ("median_s", "p50 ms", "ms"),
    ("p90_s", "p90 ms", "ms"),
    ("p99_s", "p99 ms", "ms"),
    ("fps", "FPS", "{:.1f}"),
    ("speedup_same_cell", "speedup vs reference, same cell (from medians, not paired)", "{:.2f}x"),
    ("speedup_vs_torch_fp32", "speedup vs reference, torch FP32 (interleaved pairs)", "{:.2f}x"),
    ("torch_fp32_reference_s", "reference torch FP32 p50 ms (in those pairs)", "ms"),
    ("agreement_map50", "agreement mAP50 vs FP32 checkpoint", "{:.3f}"),
    ("map50_95", "mAP50-95", "{:.4f}"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if fmt == "ms":
        return f"{value * 1e3:.2f}"
    return fmt.format(value)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The matrix as an HTML table."""
    head = "".join(f"<th>{escape(label)}</th>" for _, label, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(r.get(k), fmt))}</td>" for k, _, fmt in COLUMNS) + "</tr>" for r in rows
    )
    return f'<table id="slimbench-matrix"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


MARKERS = {"ort-fp32": "o", "ort-int8": "s", "ov-fp32": "^", "ov-int8": "D"}
"""One marker per runtime-precision; the colour is the variant's (labels next to points overlapped: most cells sit
within 0.01 of each other in accuracy)."""


def chart_points(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[tuple[float, float, str, str]]]:
    """(y axis, points (x, y, variant, runtime-precision)): x = speedup vs the reference in torch FP32 (else in the
    same cell); y = mAP50-95 on the dataset when every plotted cell has it, else agreement mAP50 with the FP32
    checkpoint. Cells missing either figure are left out (undefined is not plotted)."""
    from slimbench.core.undefined import defined

    xs = [(r, defined(r.get("speedup_vs_torch_fp32")) or defined(r.get("speedup_same_cell"))) for r in rows]
    xs = [(r, x) for r, x in xs if x is not None]
    use_map = bool(xs) and all(defined(r.get("map50_95")) is not None for r, _ in xs)
    if use_map:
        key, label = "map50_95", "mAP50-95 on the dataset"
    else:
        key, label = "agreement_map50", "agreement mAP50 with the FP32 checkpoint"
    points = []
    for r, x in xs:
        y = defined(r.get(key))
        if y is not None:
            points.append((x, y, str(r["variant"]), "-".join(str(r["cell"]).split("-")[:2])))
    return label, points


def chart(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """PNG of :func:`chart_points`, one point per cell; None when no cell has both figures."""
    ylabel, points = chart_points(rows)
    if not points:
        return None
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(p[2] for p in points))
    colours = {v: f"C{i}" for i, v in enumerate(variants)}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        for x, y, variant, kind in points:
            ax.scatter([x], [y], color=colours[variant], marker=MARKERS.get(kind, "x"), s=45, alpha=0.85)
        handles = [plt.Line2D([], [], color=colours[v], marker="o", ls="", label=v) for v in variants]
        kinds = list(dict.fromkeys(p[3] for p in points))
        handles += [plt.Line2D([], [], color="0.3", marker=MARKERS.get(k, "x"), ls="", label=k) for k in kinds]
        ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.set_xlabel("speedup vs reference (torch FP32, interleaved pairs; else the same cell)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()


def section(rows: Sequence[Mapping[str, Any]], method: str | None) -> str:
    """The report block; empty when the matrix did not run."""
    if not rows:
        return ""
    parts = ['<div class="slimbench" id="slimbench-matrix-section"><h2>Deployment matrix</h2>']
    parts.append(
        f'<p class="sb-note">INT8: {escape(method or "not built in this run")}. n/a: not measured or undefined.</p>'
    )
    parts.append(table(rows))
    png = chart(rows)
    if png is not None:
        b64 = base64.b64encode(png).decode()
        parts.append(
            f'<figure><img alt="speedup vs accuracy" src="data:image/png;base64,{b64}"/>'
            "<figcaption>Speedup against accuracy, one point per cell.</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)
