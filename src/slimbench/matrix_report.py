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
    ("speedup_same_cell", "speedup vs reference, same cell", "{:.2f}x"),
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


def chart(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """PNG: x = speedup vs the reference in torch FP32 (else in the same cell), y = agreement mAP50; None when no
    cell has both figures."""
    points = []
    for r in rows:
        x = r.get("speedup_vs_torch_fp32") or r.get("speedup_same_cell")
        y = r.get("agreement_map50")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == x and y == y:
            points.append((float(x), float(y), f"{r['variant']} {r['cell']}"))
    if not points:
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for x, y, label in points:
            ax.scatter([x], [y])
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("speedup vs reference (torch FP32 where timed, else the same cell)")
        ax.set_ylabel("agreement mAP50 with the FP32 checkpoint")
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
