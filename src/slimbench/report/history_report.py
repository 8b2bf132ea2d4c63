"""The history in the HTML report and the verdicts: one line per flagged step, one line chart per figure over the
stored runs (drawn by :func:`slimbench.report.charts.lines`), under a heading that says where the runs came from and
the rule that flags a step. The history itself is :mod:`slimbench.report.history`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slimbench.report.history import label, number_format, series


def _short(commit: Any) -> str:
    return str(commit)[:10] if commit else "no commit"


def step_line(step: Mapping[str, Any]) -> str:
    """One step as the verdicts say it."""
    change = f" ({step['change']:+.0%})" if step.get("change") is not None else ""
    where = "this run" if step.get("current") else f"run {step['run']}"
    fmt = number_format(step["figure"])
    before, after = fmt.format(step["before"]), fmt.format(step["after"])
    return (
        f"history: {step['variant']} {step['label']} stepped {before} -> {after}{change} "
        f"from {where} (commit {_short(step.get('commit'))}) on"
    )


def step_lines(summary: Mapping[str, Any]) -> list[str]:
    """A summary's steps as the verdicts say them (none when the history is off)."""
    return [step_line(s) for s in (summary.get("history") or {}).get("steps", [])]


def _tick(run: Mapping[str, Any]) -> str:
    if run.get("current"):
        return "now"
    number = str(run["run"]).split("_", 1)[0]
    return f"{number}\n{str(run.get('commit') or '')[:7]}"


def charts(history: Mapping[str, Any], reference: str) -> dict[str, bytes]:
    """One line chart per figure over the runs (a figure measured in one run only is not drawn)."""
    from slimbench.report.charts import lines

    runs = history["runs"]
    ticks = [_tick(r) for r in runs]
    by_figure: dict[str, dict[str, list[float | None]]] = {}
    for (variant, figure), values in series(runs).items():
        by_figure.setdefault(figure, {})[variant] = values
    index = {r["run"]: i for i, r in enumerate(runs)}
    marks = {(s["figure"], s["variant"]): index[s["run"]] for s in history["steps"]}
    out = {}
    for figure, per in by_figure.items():
        if max(sum(v is not None for v in vals) for vals in per.values()) < 2:
            continue
        steps_here = {v: i for (f, v), i in marks.items() if f == figure}
        out[f"history-{figure}"] = lines(f"{label(figure)} over runs", ticks, per, reference, steps_here)
    return out


def section(history: Mapping[str, Any], reference: str) -> str:
    """The report's history block: where the runs come from, the rule, the steps, one chart per figure."""
    from slimbench.report import html

    runs = history["runs"]
    earlier = len(runs) - 1
    where = history.get("storage") or "no pytest-benchmark storage"
    notes = [
        f"{earlier} earlier run(s) stored by pytest-benchmark for this machine ({where}; the newest "
        f"{history['limit']}, --slimbench-history), then this run. Save runs with --benchmark-autosave."
    ]
    if history.get("left_out"):
        notes.append(f"{history['left_out']} stored run(s) without slimbench figures left out.")
    if history.get("unreadable"):
        notes.append(f"storage not readable: {history['unreadable']}")
    notes.append(f"Rule: {history['rule']}.")
    found = [step_line(s) for s in history["steps"]] or ["no step in any figure"]
    pngs = charts(history, reference)
    captions = {name: "each variant's figure per stored run; a dashed line where a step begins" for name in pngs}
    return (
        '<div class="slimbench" id="slimbench-history"><h2>History: the gated figures over stored runs</h2>'
        + html.notes(notes)
        + html.bullet_list(found)
        + (html.charts(pngs, captions) if pngs else "")
        + "</div>"
    )
