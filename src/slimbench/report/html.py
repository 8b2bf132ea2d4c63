"""The slimbench section of the pytest-html report: the summary table, the charts and the annotated images.

Plain HTML strings handed to pytest-html through its ``pytest_html_results_summary`` hook; images are inline
``data:`` URIs so the report stays one self-contained file that opens offline.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
<style>
.slimbench { color: #222; margin: 8px 0 16px 0; }
.slimbench h2 { margin: 14px 0 6px 0; }
.slimbench p.sb-note { color: #444; margin: 2px 0 6px 0; }
.slimbench table.sb-table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
.slimbench table.sb-table th, .slimbench table.sb-table td { border: 1px solid #ddd; padding: 3px 6px; }
.slimbench table.sb-table th { background: #f0f0f0; vertical-align: bottom; }
.slimbench table.sb-table th small { display: block; font-weight: normal; color: #666; }
.slimbench table.sb-table td.sb-num { text-align: right; font-variant-numeric: tabular-nums; }
.slimbench table.sb-table tr.sb-reference td { background: #fafafa; }
.slimbench table.sb-table tr.sb-regressed td:first-child { border-left: 4px solid #d62728; }
.slimbench table.sb-table td.sb-bad { background: #fbd5d5; color: #8b0000; font-weight: bold; }
.slimbench .sb-grid { display: flex; flex-wrap: wrap; gap: 10px; }
.slimbench figure { margin: 0; border: 1px solid #e6e6e6; padding: 4px; background: white; }
.slimbench figure img { display: block; max-width: 100%; }
.slimbench figcaption { font-size: 11px; color: #444; padding-top: 2px; }
.slimbench ul.sb-list { margin: 2px 0; color: #222; }
</style>
"""


def _cell(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "&ndash;"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return escape(fmt.format(value))
        except (ValueError, TypeError):
            return escape(str(value))
    return escape(str(value))


def table(summary: Mapping[str, Any], formats: Mapping[str, str], table_id: str = "slimbench-summary") -> str:
    """The summary table: a row per variant, flagged cells red, rows with a regression marked on the left."""
    cols = summary["columns"]
    flagged = summary.get("regressions", {})
    head = "".join(
        f'<th data-key="{escape(c["key"])}">{escape(c["label"])}'
        + (f"<small>{escape(c['unit'])}</small>" if c["unit"] else "")
        + "</th>"
        for c in cols
    )
    body = []
    for row in summary["rows"]:
        name = row["variant"]
        bad = set(flagged.get(name, ()))
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
    deployment_columns: Sequence[Any] = (),
) -> str:
    """The whole slimbench block: table, problems, charts, images."""
    parts = [STYLE, '<div class="slimbench" id="slimbench">', "<h2>slimbench: variants side by side</h2>"]
    parts.append(notes(intro))
    parts.append(table(summary, formats))
    if summary.get("deployment"):
        parts.append("<h2>Deployment: runtimes side by side</h2>")
        parts.append(notes(deployment_intro))
        dep = {"columns": summary["deployment_columns"], "rows": summary["deployment"], "regressions": {}}
        dep_formats = {c.key: c.fmt for c in deployment_columns}
        parts.append(table(dep, dep_formats, "slimbench-deployment"))
    if problems:
        parts.append("<h2>Regressions</h2>" + bullet_list(problems))
    parts.append("<h2>Charts</h2>" + charts(pngs, captions))
    if panels:
        parts.append("<h2>Sample images, annotated by each variant</h2>" + images(panels, summary.get("images", {})))
    parts.append("</div>")
    return "".join(parts)
