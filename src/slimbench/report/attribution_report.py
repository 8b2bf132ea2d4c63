"""Where the time goes, as the reports show it: ``summary.json``'s ``attribution`` entries, the text table of the
terminal and of ``slimbench profile``, and the HTML report's section with a bar chart per candidate and cell.

One entry per variant x timed cell (runtime, device, batch 1, threads) of :class:`slimbench.measure.attribution.
Attribution`, its rows compared with the reference's in the same cell (:func:`slimbench.measure.attribution.compare`).
A table shows the top layers by the candidate's time, then the rest of the layers summed, the named extras and the
unattributed time, so its ms column adds up to the profiled total. Nothing is measured here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slimbench.bench.figures import VariantFigures
    from slimbench.measure.attribution import Attribution

TOP = 10
"""Layers shown by name per table; the others are summed in one "rest" row."""
REST = "rest of the layers"


def entry(name: str, record: Attribution, reference: Attribution | None, reference_name: str | None) -> dict:
    """One ``summary.json`` entry: the cell, the totals of both sides and every row (:func:`compare`)."""
    from slimbench.core.timing_key import TimingKey
    from slimbench.measure.attribution import compare, layers_ratio

    key = TimingKey.of(record.runtime, record.device, record.batch, record.threads, record.imgsz)
    out: dict[str, Any] = {
        "variant": name,
        "reference": reference_name if reference is not None else None,
        "cell": key.label,
        "runtime": record.runtime,
        "device": record.device,
        "batch": record.batch,
        "threads": record.threads,
        "imgsz": record.imgsz,
        "calls": record.calls,
        "total_ms": record.total_ms,
        "wall_ms": record.wall_ms,
        "forward_ms": record.forward_ms,
        "attributed_ms": record.attributed_ms,
        "unattributed_ms": record.unattributed_ms,
        "coverage": record.coverage,
    }
    if reference is not None:
        out.update(
            reference_total_ms=reference.total_ms,
            reference_forward_ms=reference.forward_ms,
            reference_coverage=reference.coverage,
            total_ratio=record.total_ms / reference.total_ms if reference.total_ms > 0 else None,
        )
    out["rows"] = compare(record, reference)
    if reference is not None:
        out["layers_ratio"] = layers_ratio(out["rows"])  # what pruning can move: fixed costs and extras left out
    return out


def entries(figures: Mapping[str, VariantFigures], reference: str) -> list[dict]:
    """Every recorded attribution, the reference's first, each candidate's against the reference's same cell."""
    ref = figures[reference].attribution if reference in figures else {}
    out = [entry(reference, r, None, None) for r in ref.values()]
    for name, figs in figures.items():
        if name != reference:
            out += [
                entry(name, r, ref.get(key), reference if key in ref else None) for key, r in figs.attribution.items()
            ]
    return out


def top_rows(rows: Sequence[Mapping[str, Any]], n: int = TOP) -> list[dict[str, Any]]:
    """The ``n`` layers with the most time (the candidate's), one row summing the other layers, then the extras and
    the unattributed time: the ms column still adds up to the total."""
    layers = [dict(r) for r in rows if r["kind"] in ("layer", "fixed")]
    layers.sort(key=lambda r: -(r["ms"] or 0.0))
    shown, rest = layers[:n], layers[n:]
    out = shown
    if rest:
        out.append(_summed(rest))
    out += [dict(r) for r in rows if r["kind"] in ("extra", "unattributed")]
    return out


def _summed(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return sum(values) if values else None

    ms, ref_ms, gf, ref_gf = total("ms"), total("reference_ms"), total("gflops"), total("reference_gflops")
    return {
        "key": "rest",
        "label": f"{REST} ({len(rows)})",
        "kind": "rest",
        "ms": ms,
        "share": total("share"),
        "reference_ms": ref_ms,
        "reference_share": total("reference_share"),
        "latency_ratio": ms / ref_ms if ms is not None and ref_ms else None,
        "gflops": gf,
        "reference_gflops": ref_gf,
        "gflops_ratio": gf / ref_gf if gf is not None and ref_gf else None,
        "flagged": False,
    }


def note(row: Mapping[str, Any]) -> str:
    """Why a row stands out: flagged (latency ratio far above its GFLOPs ratio), a fixed cost, or no GFLOPs."""
    from slimbench.measure.attribution import FLAG_FACTOR, FLAG_SHARE

    if row.get("flagged"):
        return (
            f"latency ratio {row['latency_ratio']:.2f} > {FLAG_FACTOR:g} x its GFLOPs ratio "
            f"{row['gflops_ratio']:.2f}, {100 * row['share']:.1f}% (> {100 * FLAG_SHARE:g}%) of the time"
        )
    if row.get("kind") == "fixed":
        return "fixed cost: pruning cannot move it"
    if row.get("kind") == "layer" and not row.get("gflops"):
        return "no conv/linear GFLOPs (memory-bound)"
    return ""


def _f(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and value == value else "-"


def heading(e: Mapping[str, Any]) -> str:
    """One line: the cell, the totals, the coverage."""
    line = (
        f"{e['variant']} {e['cell']} {e['imgsz']}px: {e['total_ms']:.2f} ms profiled ({e['calls']} calls, median per "
        f"layer), {_f(e['forward_ms'], '{:.2f}')} ms unprofiled; coverage {_f(e['coverage'], '{:.1%}')} (layers and "
        f"extras / unprofiled), unattributed {e['unattributed_ms']:.2f} ms"
    )
    if e.get("reference"):
        line += (
            f"; vs {e['reference']} {e['reference_total_ms']:.2f} ms profiled (coverage "
            f"{_f(e.get('reference_coverage'), '{:.1%}')}), ratio {_f(e.get('total_ratio'), '{:.2f}')}; model layers "
            f"alone (fixed costs, extras and unattributed left out) {_f(e.get('layers_ratio'), '{:.2f}')}"
        )
    return line


def text_table(e: Mapping[str, Any], n: int = TOP) -> list[str]:
    """The entry as plain text: :func:`heading`, then :func:`top_rows` with ms, share, ratios and notes."""
    paired = bool(e.get("reference"))
    rows = top_rows(e["rows"], n)
    width = max(24, *(len(str(r["label"])) for r in rows)) + 2
    head = f"{'layer':<{width}}{'ms':>9}{'share':>8}{'GFLOPs':>9}"
    if paired:
        head = f"{'layer':<{width}}{'ref ms':>9}{'ms':>9}{'share':>8}{'lat x':>8}{'GFLOPs x':>10}  note"
    out = [heading(e), head]
    for r in rows:
        mark = "*" if r.get("flagged") else " "
        if paired:
            out.append(
                f"{r['label']:<{width}}{_f(r['reference_ms'], '{:.2f}'):>9}{_f(r['ms'], '{:.2f}'):>9}"
                f"{_f(r['share'], '{:.1%}'):>8}{_f(r['latency_ratio'], '{:.2f}'):>8}"
                f"{_f(r['gflops_ratio'], '{:.2f}'):>10} {mark}{note(r)}"
            )
        else:
            out.append(
                f"{r['label']:<{width}}{_f(r['ms'], '{:.2f}'):>9}{_f(r['share'], '{:.1%}'):>8}"
                f"{_f(r['gflops'], '{:.3f}'):>9}  {note(r)}".rstrip()
            )
    return out


def terminal_lines(items: Sequence[Mapping[str, Any]], n: int = 3) -> list[str]:
    """For the suite's terminal summary: per candidate and cell, the coverage, its top layers and the flagged ones."""
    paired = [e for e in items if e.get("reference")]
    if not paired:
        return []
    out = ["where the time goes (batch 1; share of the candidate's profiled time, latency ratio vs the reference)"]
    for e in paired:
        layers = [r for r in top_rows(e["rows"], n) if r["kind"] in ("layer", "fixed")][:n]
        top = ", ".join(
            f"{r['label']} {_f(r['share'], '{:.0%}')} (x{_f(r['latency_ratio'], '{:.2f}')})" for r in layers
        )
        flagged = [r["label"] for r in e["rows"] if r.get("flagged")]
        out.append(
            f"{e['variant']:<16}{e['cell']:<18}coverage {_f(e['coverage'], '{:.0%}')}; top: {top}"
            + (f"; flagged: {', '.join(flagged)}" if flagged else "")
        )
    return out


# ---------------------------------------------------------------- HTML

COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "layer (index, module, head part)"),
    ("reference_ms", "reference ms"),
    ("reference_share", "reference share"),
    ("ms", "ms"),
    ("share", "share"),
    ("latency_ratio", "latency ratio"),
    ("gflops_ratio", "GFLOPs ratio"),
    ("note", "note"),
)
_FMT = {"reference_ms": "{:.2f}", "ms": "{:.2f}", "reference_share": "{:.1%}", "share": "{:.1%}"}


def html_table(e: Mapping[str, Any], n: int = TOP) -> str:
    """One candidate and cell against the reference: top layers, rest, extras, unattributed; flagged rows red."""
    head = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    body = []
    for r in top_rows(e["rows"], n):
        cells = []
        for key, _ in COLUMNS:
            if key == "note":
                text = note(r)
            elif key == "label":
                text = str(r["label"])
            else:
                text = _f(r.get(key), _FMT.get(key, "{:.2f}"))
            num = ' class="sb-num"' if key not in ("label", "note") else ""
            cells.append(f"<td{num}>{escape(text)}</td>")
        css = ' class="sb-flagged"' if r.get("flagged") else (' class="sb-fixed"' if r["kind"] == "fixed" else "")
        body.append(f'<tr{css} data-key="{escape(str(r["key"]))}">{"".join(cells)}</tr>')
    tid = f"slimbench-attribution-{e['variant']}-{e['cell']}"
    return (
        f'<table class="sb-table" id="{escape(tid)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def chart(e: Mapping[str, Any], n: int = TOP) -> bytes | None:
    """Horizontal bars, reference against candidate ms, for the table's layers; None without a reference."""
    if not e.get("reference"):
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from slimbench.report.charts import PALETTE, REFERENCE_COLOR

    rows = [r for r in top_rows(e["rows"], n) if r.get("ms") is not None][::-1]
    labels = [str(r["label"]) for r in rows]
    y = range(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    try:
        ax.barh([i + 0.2 for i in y], [r.get("reference_ms") or 0 for r in rows], 0.4, color=REFERENCE_COLOR)
        ax.barh([i - 0.2 for i in y], [r["ms"] or 0 for r in rows], 0.4, color=PALETTE[0])
        ax.set_yticks(list(y), labels, fontsize=7)
        ax.set_xlabel("ms per forward (median of the profiled calls)")
        ax.legend([e["reference"], e["variant"]], fontsize=8, loc="lower right")
        ax.set_title(f"{e['variant']} vs {e['reference']}, {e['cell']}", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


STYLE = (
    "<style>.slimbench tr.sb-flagged td { background: #fbd5d5; color: #8b0000; }"
    " .slimbench tr.sb-fixed td { color: #555; font-style: italic; }</style>"
)


def section(items: Sequence[Mapping[str, Any]], n: int = TOP) -> str:
    """The report block "Where the time goes": one table (and chart) per candidate and cell; empty when none ran."""
    from slimbench.measure.attribution import FLAG_FACTOR, FLAG_SHARE

    paired = [e for e in items if e.get("reference")]
    if not paired:
        return ""
    parts = [STYLE, '<div class="slimbench" id="slimbench-attribution"><h2>Where the time goes</h2>']
    parts.append(
        '<p class="sb-note">'
        + escape(
            f"Per-layer forward time at batch 1, median of a few profiled calls per layer (torch: hooks on each "
            f"top-level layer and head part; ONNX Runtime and OpenVINO: their per-node profiles, mapped to layers by "
            f"node name). Share: of the profiled total (layers + extras + unattributed). Latency ratio: candidate ms "
            f"/ reference ms; GFLOPs ratio: the layer's convolution and linear GFLOPs, candidate / reference. Red: "
            f"latency ratio > {FLAG_FACTOR:g} x the GFLOPs ratio and > {100 * FLAG_SHARE:.0f}% of the candidate's "
            f"time (pruning removed its arithmetic, not its time). Italic: fixed costs pruning cannot move."
        )
        + "</p>"
    )
    for e in paired:
        parts.append(f"<h3>{escape(e['variant'])} vs {escape(e['reference'])}, {escape(e['cell'])}</h3>")
        parts.append(f'<p class="sb-note">{escape(heading(e))}</p>')
        parts.append(html_table(e, n))
        png = chart(e, n)
        if png is not None:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure class="sb-chart"><img alt="where the time goes: {escape(e["variant"])} {escape(e["cell"])}" '
                f'src="data:image/png;base64,{b64}"/><figcaption>ms per layer, reference and candidate</figcaption>'
                "</figure>"
            )
    parts.append("</div>")
    return "".join(parts)
