"""The fleet report (``slimbench merge``'s report.html): one self-contained page, read from the top: each candidate's
verdict per testbed (PASS / FAIL / not run with its gate counts), the testbeds, every run's verdict lines, then the
per-variant and per-cell tables of all runs with a testbed column. Built from the merged summary alone (no pytest),
with the suite report's table writer and style (:mod:`slimbench.report.html`), so the two read alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from slimbench.report import html
from slimbench.report.merge import FAIL, NOT_RUN, PASS

FLEET_STYLE = """
<style>
.slimbench table.sb-table td.sb-pass { background: #e3f4e3; }
.slimbench table.sb-table td.sb-fail { background: #fbd5d5; color: #8b0000; font-weight: bold; }
.slimbench table.sb-table td.sb-notrun { background: #fffaeb; color: #7a5b00; }
</style>
"""
STATUS_CLASS = {PASS: "sb-pass", FAIL: "sb-fail", NOT_RUN: "sb-notrun"}
SPEED = ("testbed", "variant", "runtime", "device", "batch", "threads", "median_ms", "fps", "speed_ratio", "speedup")


def _formats(fleet: Mapping[str, Any]) -> dict[str, str]:
    """Each column's number format, as the suite report writes it (metric specs, the deployment columns)."""
    from slimbench.core.metric_specs import spec_of_column
    from slimbench.report.rows import DEPLOYMENT_COLUMNS

    out = {c.key: c.fmt for c in DEPLOYMENT_COLUMNS}
    for c in fleet["columns"]:
        spec = spec_of_column(c["key"])
        if spec is not None:
            out[c["key"]] = spec.fmt
    out["detections_per_image"] = "{:.1f}"
    return out


def _table(table_id: str, head: str, body: str) -> str:
    return f'<table class="sb-table" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell_text(cell: Mapping[str, Any]) -> str:
    if cell["status"] == NOT_RUN and not cell["line"]:
        return "not run (not in this run)"
    counts = f"{cell['gates_passed']} passed, {cell['gates_failed']} failed"
    counts += f", {cell['gates_not_run']} not run" if cell["gates_not_run"] else ""
    return f"{cell['status']} ({counts})"


def _names(fleet: Mapping[str, Any]) -> dict[str, str]:
    """Testbed label -> its short name (``T1: <CPU> (<machine>), t<threads>``); the testbeds table has the rest."""
    return {b["testbed"]: b.get("name") or b["testbed"] for b in fleet["testbeds"]}


def verdict_table(fleet: Mapping[str, Any]) -> str:
    """Candidate x testbed: each cell PASS / FAIL / not run with the gate counts, and a totals column."""
    t = fleet["verdict_table"]
    beds, names = t["testbeds"], _names(fleet)
    head = "<th>candidate</th>" + "".join(f'<th title="{escape(b)}">{escape(names[b])}</th>' for b in beds)
    head += "<th>testbeds</th>"
    body = []
    for name in t["candidates"]:
        cells = {c["testbed"]: c for c in t["cells"] if c["variant"] == name}
        tds = "".join(
            f'<td class="{STATUS_CLASS[cells[b]["status"]]}" data-testbed="{escape(b)}" '
            f'data-status="{escape(cells[b]["status"])}">{escape(_cell_text(cells[b]))}</td>'
            for b in beds
        )
        n = t["totals"][name]
        total = f"{n[PASS]} PASS, {n[FAIL]} FAIL, {n[NOT_RUN]} not run"
        body.append(f'<tr data-variant="{escape(name)}"><td>{escape(name)}</td>{tds}<td>{escape(total)}</td></tr>')
    return _table("slimbench-fleet-verdicts", head, "".join(body))


def testbeds_table(fleet: Mapping[str, Any]) -> str:
    """One row per testbed: its facts and the summary it came from."""
    keys = ("name", "machine", "platform", "cpu", "cpu_count", "gpu", "threads", "versions", "source", "created")
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    rows = []
    for b in fleet["testbeds"]:
        values = {
            **b,
            "threads": ", ".join(map(str, b["threads"])),
            "versions": ", ".join(f"{k} {v}" for k, v in b["versions"].items()),
        }
        rows.append("<tr>" + "".join(f"<td>{escape(str(values.get(k) or '-'))}</td>" for k in keys) + "</tr>")
    return _table("slimbench-testbeds", head, "".join(rows))


def page(fleet: Mapping[str, Any]) -> str:
    """The whole page."""
    formats = _formats(fleet)
    names = _names(fleet)
    rows = [{**r, "testbed": names[r["testbed"]]} for r in fleet["rows"]]
    n = len(fleet["testbeds"])
    title = f"slimbench fleet report: {fleet['reference']} vs its candidates on {n} testbed(s)"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>{html.STYLE}{FLEET_STYLE}</head><body>",
        '<div class="slimbench" id="slimbench">',
        f"<h1>{escape(title)}</h1>",
        "<h2>Verdicts per testbed</h2>",
        html.notes(
            [
                "PASS: every gate that ran passed; FAIL: a gate failed; not run: not in that run, or none of "
                "its gates ran. Each run gated on its own machine; this page only joins them."
            ]
        ),
        verdict_table(fleet),
        "<h2>Testbeds</h2>",
        testbeds_table(fleet),
        "<h2>Verdict lines</h2>",
        html.bullet_list([f"[{names[v['testbed']]}] {v['line']}" for v in fleet["verdicts"]]),
        "<h2>Per variant</h2>",
        html.table({"columns": fleet["columns"], "rows": rows}, formats, "slimbench-fleet-rows", [set()] * len(rows)),
    ]
    speed_cols = [c for c in fleet["deployment_columns"] if c["key"] in SPEED]
    timed = [
        {**r, "testbed": names[r["testbed"]]}
        for r in fleet["deployment"]
        if r.get("median_ms") is not None or r.get("speed_ratio") is not None
    ]
    if timed:
        parts.append("<h2>Speed per cell</h2>")
        doc = {"columns": speed_cols, "rows": timed}
        parts.append(html.table(doc, formats, "slimbench-fleet-speed", [set()] * len(timed)))
    parts.append("</div></body></html>")
    return "".join(parts)
