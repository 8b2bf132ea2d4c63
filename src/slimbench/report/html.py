"""The slimbench section of the pytest-html report, read from the top: one verdict line per candidate, then one
table per aspect (size and structure, speed, detections and accuracy, deployment), then charts and images.

Plain HTML strings handed to pytest-html through its ``pytest_html_results_summary`` hook; images are inline
``data:`` URIs so the report stays one self-contained file that opens offline. Each table is narrow enough for a
1400 px page: per-variant figures in one table per aspect (as ``slimbench.core.metric_specs`` assigns them), per-cell
figures (runtime x device x batch x threads) one row per cell instead of one column each.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from slimbench.report.rows import interval_text

STYLE = """
<style>
/* verdicts first: pytest-html's environment table and results list move below slimbench's summary */
body { display: flex; flex-direction: column; align-items: flex-start; }
body > #environment-header, body > #environment { order: 1; }
body > #results-table, body > .filters, body > .collapse, body > .controls { order: 2; }
.slimbench { color: #222; margin: 8px 0 16px 0; max-width: 1360px; }
.slimbench h2 { margin: 14px 0 6px 0; }
.slimbench p.sb-note { color: #444; margin: 2px 0 6px 0; }
.slimbench table.sb-table { border-collapse: collapse; font-size: 12px; margin: 6px 0; max-width: 100%; }
.slimbench table.sb-table th, .slimbench table.sb-table td { border: 1px solid #ddd; padding: 3px 6px; }
.slimbench table.sb-table td { overflow-wrap: anywhere; }
.slimbench table.sb-table th { background: #f0f0f0; vertical-align: bottom; }
.slimbench table.sb-table th small { display: block; font-weight: normal; color: #666; }
.slimbench table.sb-table td.sb-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.slimbench table.sb-table tr.sb-reference td { background: #fafafa; }
.slimbench table.sb-table tr.sb-regressed td:first-child { border-left: 4px solid #d62728; }
.slimbench table.sb-table td.sb-bad { background: #fbd5d5; color: #8b0000; font-weight: bold; }
.slimbench ul.sb-verdicts { list-style: none; padding-left: 0; margin: 4px 0 8px 0; font-size: 14px; }
.slimbench ul.sb-verdicts li { margin: 3px 0; padding: 3px 8px; border-left: 5px solid #2ca02c; }
.slimbench ul.sb-verdicts li.sb-fail { border-left-color: #d62728; background: #fdf0f0; }
.slimbench ul.sb-verdicts li.sb-notrun { border-left-color: #e6a700; background: #fffaeb; }
.slimbench .sb-grid { display: flex; flex-wrap: wrap; gap: 10px; }
.slimbench figure { margin: 0; border: 1px solid #e6e6e6; padding: 4px; background: white; max-width: 100%; }
.slimbench figure img { display: block; max-width: 100%; }
.slimbench figcaption { font-size: 11px; color: #444; padding-top: 2px; }
.slimbench ul.sb-list { margin: 2px 0; color: #222; overflow-wrap: anywhere; }
</style>
"""

TABLE_NOTES = {
    "speed": "One row per variant and timed cell (runtime, device, batch, threads). Speed ratio: median of the "
    "interleaved pairs [its distribution-free 95% interval], pairs timed; close: the interval reached within 5% of "
    "the limit, or still straddled it at the cap, and the median decided.",
    "deployment": "Memory: one row per variant and cell, each measured in a fresh process.",
}
CELL_COLUMNS = {  # the per-cell (deployment) rows' columns shown in a table, after variant/runtime/device/batch/threads
    "speed": ("median_ms", "p90_ms", "p99_ms", "rounds", "fps", "speed_ratio", "speedup"),  # speedup: paired only
    "deployment": ("peak_rss_mb", "inference_mb", "memory_ratio", "cuda_max_allocated_mb", "onnx_size_mb"),
}
CELL_KEYS = ("variant", "runtime", "device", "batch", "threads")
WIDE = {
    "median_ms": "latency_ms",
    "inference_mb": "peak_rss_mb",
    "memory_ratio": "peak_rss_mb",
    "speedup": "speed_ratio",  # 1 / the speed ratio: red with it
}
"""A per-cell column -> the per-variant column family a flag names (``latency_ms[cpu-b1-t2]``)."""


def _cell(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "&ndash;"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return escape(fmt.format(value))
        except (ValueError, TypeError):
            return escape(str(value))
    return escape(str(value))


def table(
    summary: Mapping[str, Any],
    formats: Mapping[str, str],
    table_id: str = "slimbench-summary",
    row_flags: Sequence[set[str]] | None = None,
) -> str:
    """A table of ``summary["columns"]`` x ``summary["rows"]``: flagged cells red, rows with a regression marked on
    the left. Flags per variant (``summary["regressions"]``) or, for per-cell rows, per row (``row_flags``)."""
    cols = summary["columns"]
    flagged = summary.get("regressions", {})
    head = "".join(
        f'<th data-key="{escape(c["key"])}">{escape(c["label"])}'
        + (f"<small>{escape(c['unit'])}</small>" if c["unit"] else "")
        + "</th>"
        for c in cols
    )
    body = []
    for i, row in enumerate(summary["rows"]):
        name = row["variant"]
        bad = set(row_flags[i]) if row_flags is not None else set(flagged.get(name, ()))
        classes = ["sb-reference"] if row.get("role") == "reference" else []
        if bad:
            classes.append("sb-regressed")
        cells = []
        for c in cols:
            value = row.get(c["key"])
            css = []
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                css.append("sb-num")
            if c["key"] in bad:
                css.append("sb-bad")
            cls = f' class="{" ".join(css)}"' if css else ""
            cells.append(f'<td{cls} data-key="{escape(c["key"])}">{_cell(value, formats.get(c["key"], "{}"))}</td>')
        body.append(f'<tr class="{" ".join(classes)}" data-variant="{escape(name)}">{"".join(cells)}</tr>')
    rows = "".join(body)
    tid = escape(table_id)
    return f'<table class="sb-table" id="{tid}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _verdict_class(v: Mapping[str, Any]) -> str:
    """Red when a gate failed, amber when a configured gate did not run or the file's limits were not applied."""
    if v.get("gates_failed"):
        return "sb-fail"
    return "sb-notrun" if v.get("gates_not_run") or v.get("limits_not_applied") else "sb-pass"


def verdicts(lines: Sequence[Mapping[str, Any]]) -> str:
    """One line per candidate: smaller, faster, mAP change, gates (red when a gate failed)."""
    items = "".join(
        f'<li class="{_verdict_class(v)}" data-variant="{escape(v["variant"])}">{escape(v["line"])}</li>' for v in lines
    )
    return f'<ul class="sb-verdicts" id="slimbench-verdicts">{items}</ul>'


def _subset(summary: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    by = {c["key"]: c for c in summary["columns"]}
    return {**summary, "columns": [by[k] for k in keys if k in by]}


def _cell_label(row: Mapping[str, Any]) -> str:
    from slimbench.core.timing_key import TimingKey

    return TimingKey.of(str(row["runtime"]), str(row["device"]), int(row["batch"]), int(row["threads"]), 0).label


def cell_table(summary: Mapping[str, Any], aspect: str, formats: Mapping[str, str]) -> str:
    """The per-cell rows of one aspect (speed or deployment), flagged where a check or regression names the cell."""
    keys = CELL_COLUMNS[aspect]
    rows = [r for r in summary.get("deployment", []) if any(r.get(k) is not None for k in keys if k != "onnx_size_mb")]
    if not rows:
        return ""
    by = {c["key"]: c for c in summary["deployment_columns"]}
    cols = [by[k] for k in (*CELL_KEYS, *keys) if k in by]
    flagged = summary.get("regressions", {})
    flags = []
    for r in rows:
        label, names = _cell_label(r), set(flagged.get(r["variant"], ()))
        bad = {k for k in keys if f"{WIDE.get(k, k)}[{label}]" in names}
        flags.append(bad | ({"variant"} if bad else set()))
    if aspect == "speed":
        rows = [{**r, "speed_ratio": interval_text(r, formats.get("speed_ratio", "{:.3f}"))} for r in rows]
    doc = {"columns": cols, "rows": rows}
    return notes([TABLE_NOTES[aspect]]) + table(doc, formats, f"slimbench-{aspect}-cells", flags)


def charts(pngs: Mapping[str, bytes], captions: Mapping[str, str]) -> str:
    """Each chart as an inline PNG in a wrapping grid."""
    figs = []
    for name, png in pngs.items():
        b64 = base64.b64encode(png).decode("ascii")
        figs.append(
            f'<figure class="sb-chart" data-chart="{escape(name)}"><img alt="slimbench chart: {escape(name)}" '
            f'src="data:image/png;base64,{b64}"/><figcaption>{escape(captions.get(name, name))}</figcaption></figure>'
        )
    return f'<div class="sb-grid">{"".join(figs)}</div>'


def images(panels: Mapping[str, str], counts: Mapping[str, Mapping[str, Any]]) -> str:
    """Per sample image, the side-by-side composite (base64 JPEG) with each variant's detection count."""
    figs = []
    for image, b64 in panels.items():
        per = ", ".join(f"{escape(n)}: {c if c is not None else '-'}" for n, c in counts.get(image, {}).items())
        figs.append(
            f'<figure class="sb-image" data-image="{escape(image)}"><img alt="slimbench detections on {escape(image)}" '
            f'src="data:image/jpeg;base64,{b64}"/><figcaption>{escape(image)}: detections per variant ({per})'
            "</figcaption></figure>"
        )
    return f'<div class="sb-grid">{"".join(figs)}</div>'


def notes(lines: Sequence[str]) -> str:
    return "".join(f'<p class="sb-note">{escape(line)}</p>' for line in lines)


def bullet_list(lines: Sequence[str]) -> str:
    return '<ul class="sb-list">' + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>" if lines else ""


def section(
    summary: Mapping[str, Any],
    formats: Mapping[str, str],
    pngs: Mapping[str, bytes],
    captions: Mapping[str, str],
    panels: Mapping[str, str],
    intro: Sequence[str],
    problems: Sequence[str],
    deployment_intro: Sequence[str] = (),
    alerts: Sequence[str] = (),
) -> str:
    """The whole slimbench block: verdicts (and ``alerts`` below them, amber: a step in the history), the gates, one
    table per aspect, problems, charts, images."""
    from slimbench.core.metric_specs import TABLES

    parts = [STYLE, '<div class="slimbench" id="slimbench">', "<h2>slimbench: verdicts</h2>"]
    parts.append(verdicts(summary.get("verdicts", [])))
    if alerts:
        items = "".join(f'<li class="sb-notrun">{escape(line)}</li>' for line in alerts)
        parts.append(f'<ul class="sb-verdicts" id="slimbench-steps">{items}</ul>')
    parts.append(table(_subset(summary, ("variant", "role", "baseline", "failed_checks")), formats, "slimbench-gates"))
    parts.append(notes(intro))
    for aspect, title in TABLES.items():
        keys = summary.get("tables", {}).get(aspect)
        cells = cell_table(summary, aspect, formats) if aspect in CELL_COLUMNS else ""
        if not keys and not cells:
            continue
        parts.append(f'<h2 id="slimbench-{aspect}">{escape(title)}</h2>')
        if aspect == "deployment":
            parts.append(notes(deployment_intro))
        if keys:
            parts.append(table(_subset(summary, keys), formats, f"slimbench-{aspect}"))
        parts.append(cells)
    if problems:
        parts.append("<h2>Regressions</h2>" + bullet_list(problems))
    parts.append("<h2>Charts</h2>" + charts(pngs, captions))
    if panels:
        parts.append("<h2>Sample images, annotated by each variant</h2>" + images(panels, summary.get("images", {})))
    parts.append("</div>")
    return "".join(parts)
