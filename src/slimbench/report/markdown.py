"""The verdicts as GitHub-flavoured markdown, where CI users read them: the job's step summary
(``$GITHUB_STEP_SUMMARY``, appended to) and a pull-request comment (``--slimbench-markdown PATH``).

Built from the summary document alone (what ``summary.json`` holds, :mod:`slimbench.report.summary`), so a stored
file gives the same text back (``slimbench markdown reports/summary.json``) and the markdown can only repeat the
tests' numbers. Four parts: one verdict line per candidate (the terminal's and the HTML report's), the gates (every
judged limit, failures first, then the limits not run, then those passed), and the speed and accuracy headline
tables. A figure that is undefined or was not measured reads "n/a (why)", never 0 or 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbench.core.metric_specs import SPECS, MetricSpec, spec_of_column, spec_of_limit
from slimbench.core.timing_key import RUNTIME_IDS, TimingKey
from slimbench.core.undefined import is_undefined
from slimbench.report.rows import as_number, timing_label

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
"""The file GitHub Actions renders on the job's page; each step appends to it."""
NOT_MEASURED = "n/a (not measured)"
RESULTS = ("fail", "not run", "pass")
"""A gate's result, in the order the gates table lists them: failures first."""
UNLIMITED = {  # checks no numeric limit expresses: what passing means
    "baseline": ("stored baseline", "within its tolerances"),
    "onnx_parity": ("ONNX parity", "same outputs as the checkpoint"),
    "class_names": ("class names", "the reference's"),
}
TIMED_IN_RUN = "latency vs stored run"
"""pytest-benchmark's ``--benchmark-compare-fail``: a median slower than the stored run's (fails the run too)."""


@dataclass(frozen=True)
class GateRow:
    """One row of the gates table: a judged limit, a limit not run, or a failure no limit explains."""

    variant: str
    metric: str
    limit: str
    measured: str
    result: str  # one of RESULTS
    why: str = ""  # "not run": the reason (deselected, skipped: ...)

    @property
    def shown_result(self) -> str:
        if self.result == "fail":
            return "**FAIL**"
        return f"not run ({self.why})" if self.result == "not run" and self.why else self.result


def escape(text: Any) -> str:
    """Text as itself in GitHub markdown and python-markdown: emphasis, code, link and table characters escaped,
    angle brackets as entities (no raw HTML from a variant name or a message)."""
    out = str(text).replace("\\", "\\\\")
    for ch in "`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def figure(value: Any, fmt: str = "{}") -> str:
    """A figure as text: a number through ``fmt``; an undefined one as its reason; a missing one "n/a (...)"."""
    number = as_number(value)
    if number is not None:
        try:
            return fmt.format(number)
        except (ValueError, TypeError):
            return str(number)
    if is_undefined(value):
        return str(value)
    if isinstance(value, str) and value and value != "not measured":
        return f"n/a ({value})"
    return NOT_MEASURED


def table(head: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool] = ()) -> list[str]:
    """A GFM pipe table (cells already escaped); ``right`` aligns numeric columns right."""
    align = [("---:" if i < len(right) and right[i] else "---") for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def cell_name(cell: str | None) -> str:
    """A check's cell as the summary's columns name it: ``cpu-b1-t2``, ``ort-cpu-b8-t2``; an image id as is."""
    if not cell:
        return ""
    try:
        return timing_label(cell)
    except ValueError:
        return str(cell)


def _spec_fmt(spec: MetricSpec | None) -> str:
    return (spec.fmt + spec.suffix) if spec else "{}"


# ---------------------------------------------------------------- gates


def _check_row(variant: str, check: Mapping[str, Any]) -> GateRow:
    metric, limit_key = str(check.get("metric")), check.get("limit")
    spec = SPECS.get(metric)
    label, passing = UNLIMITED.get(metric, (spec.label if spec else metric, "passes"))
    cell = cell_name(check.get("cell"))
    name = f"{label} [{cell}]" if cell else label
    result = "pass" if check.get("passed") else "fail"
    message = str(check.get("message") or "").splitlines()
    if limit_key and spec is not None:
        kind = next((lim.kind for lim in spec.limits if lim.key == limit_key), "")
        limit = f"{kind} {escape(figure(check.get('bound'), _spec_fmt(spec)))} (`{limit_key}`)"
        measured = escape(figure(check.get("value"), _spec_fmt(spec)))
    else:
        limit = escape(passing)
        measured = escape(message[0]) if result == "fail" and message else "&ndash;"
    return GateRow(variant, escape(name), limit, measured, result)


def _not_run_row(variant: str, entry: Mapping[str, Any]) -> GateRow:
    key = str(entry.get("limit"))
    if key == "baseline":
        label = UNLIMITED["baseline"][0]
    else:
        try:
            label = spec_of_limit(key).label
        except StopIteration:
            label = key
    return GateRow(variant, escape(label), f"`{key}`", "n/a (not run)", "not run", escape(entry.get("reason", "")))


def _unexplained(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A variant's failures that no recorded check explains (a failed export, an error in a test), as
    ``report.rows.other_failures`` finds them, read back from the summary."""
    said = {line for c in variant.get("checks", []) for line in str(c.get("message") or "").splitlines()}
    return [f for f in variant.get("failed_checks", []) if f.get("message") not in said]


def gate_rows(summary: Mapping[str, Any]) -> list[GateRow]:
    """Every gate of the run, failures first, then the limits not run, then those passed; within each, variants in
    the summary's order and checks in the order they were judged."""
    rows: list[GateRow] = []
    not_run = {v["variant"]: v.get("gates_not_run") or [] for v in summary.get("verdicts", [])}
    for name, variant in summary.get("variants", {}).items():
        rows += [_check_row(name, c) for c in variant.get("checks", [])]
        rows += [_not_run_row(name, e) for e in not_run.get(name, [])]
        for f in _unexplained(variant):
            where = cell_name(f.get("key"))
            metric = f"test failure [{where}]" if where else "test failure"
            rows.append(GateRow(name, escape(metric), "&ndash;", escape(f.get("message", "")), "fail"))
    for reg in summary.get("benchmark_regressions", []):
        where = cell_name(reg.get("key"))
        metric = f"{TIMED_IN_RUN} [{where}]" if where else TIMED_IN_RUN
        limit = "`--benchmark-compare-fail`"
        rows.append(GateRow(str(reg.get("variant") or "?"), escape(metric), limit, escape(reg.get("why", "")), "fail"))
    return sorted(rows, key=lambda r: RESULTS.index(r.result))  # stable: the order within each result is kept


def gates_table(rows: Sequence[GateRow]) -> list[str]:
    head = ("variant", "gate", "limit", "measured", "result")
    return table(head, ((escape(r.variant), r.metric, r.limit, r.measured, r.shown_result) for r in rows))


# ---------------------------------------------------------------- headline tables


def _runtime(row: Mapping[str, Any]) -> str:
    return RUNTIME_IDS.get(str(row.get("runtime")), str(row.get("runtime")))


def _cell(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return _runtime(row), row.get("device"), row.get("batch"), row.get("threads")


def _speed_limit(summary: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """The speed-ratio limit judged in a deployment row's cell, with its result; why none was judged."""
    try:
        imgsz = int(summary.get("environment", {}).get("imgsz", 0))
        key = str(TimingKey.of(str(row["runtime"]), str(row["device"]), int(row["batch"]), int(row["threads"]), imgsz))
    except (KeyError, TypeError, ValueError):
        return "n/a"
    checks = summary.get("variants", {}).get(row.get("variant"), {}).get("checks", [])
    for c in checks:
        if c.get("cell") == key and c.get("metric") in ("speed_ratio", "ort_speed_ratio") and c.get("limit"):
            spec = SPECS[str(c["metric"])]
            kind = next((lim.kind for lim in spec.limits if lim.key == c["limit"]), "")
            return f"{kind} {figure(c.get('bound'), spec.fmt)}: {'pass' if c.get('passed') else '**FAIL**'}"
    if summary.get("environment", {}).get("smoke"):
        return "not gated (smoke mode)"
    return "none"


def speed_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Per candidate and timed cell (runtime, device, batch, threads): the paired speed ratio, the speedup it gives,
    its limit, and both medians. A cell timed without pairs shows the medians' speedup, labelled so."""
    reference = summary.get("reference")
    deployment = summary.get("deployment", [])
    ref_ms = {_cell(r): r.get("median_ms") for r in deployment if r.get("variant") == reference}
    out = []
    for r in deployment:
        ratio, medians = as_number(r.get("speed_ratio")), as_number(r.get("speedup_medians"))
        if r.get("variant") == reference or (ratio is None and medians is None and r.get("median_ms") is None):
            continue
        if ratio is not None:
            ratio_text, speedup = f"{ratio:.3f}", figure(r.get("speedup"), "{:.2f}x")
            low, high = as_number(r.get("speed_ratio_ci_low")), as_number(r.get("speed_ratio_ci_high"))
            if low is not None and high is not None:  # the 95% interval of the median and the pairs it took
                ratio_text += f" [{low:.3f}, {high:.3f}], {r.get('speed_pairs')} pairs"
            if r.get("speed_decision") == "close":
                ratio_text += " (close)"
        elif medians is not None:
            ratio_text, speedup = "n/a (not paired)", f"{medians:.2f}x (from medians, not paired)"
        else:
            ratio_text, speedup = NOT_MEASURED, NOT_MEASURED
        ref = ref_ms.get(_cell(r))
        cells = [
            escape(r.get("variant")),
            escape(_runtime(r)),
            escape(r.get("device")),
            str(r.get("batch")),
            str(r.get("threads")),
            ratio_text,
            speedup,
            _speed_limit(summary, r),
            f"{figure(r.get('median_ms'), '{:.2f}')} / {figure(ref, '{:.2f}')}",
        ]
        out.append(cells)
    return out


SPEED_HEAD = (
    "variant",
    "runtime",
    "device",
    "batch",
    "threads",
    "speed ratio (paired median [95% interval], pairs)",
    "speedup",
    "limit",
    "latency ms: variant / reference",
)


CHANGED = {"map50_95": "mAP50-95 change vs reference", "map50_95_nms_free": "NMS-free mAP50-95 change vs reference"}
"""Accuracy columns followed by their change against the reference's figure."""


def accuracy_columns(summary: Mapping[str, Any]) -> list[str]:
    """The accuracy table's columns (the HTML report's), mAP50-95 first (then its NMS-free figure, where measured),
    then the rest in the summary's order."""
    keys = [k for k in summary.get("tables", {}).get("accuracy", []) if k != "variant"]
    first = [k for k in CHANGED if k in keys]
    return first + [k for k in keys if k not in first]


def accuracy_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per variant (reference first) its accuracy figures and, beside mAP50-95 (and its NMS-free
    figure), its change against the reference's (candidate minus reference; a drop is negative)."""
    keys = accuracy_columns(summary)
    labels = {c["key"]: c for c in summary.get("columns", [])}
    reference = summary.get("reference")
    head = ["variant"]
    for k in keys:
        c = labels.get(k, {"label": k, "unit": ""})
        head.append(escape(f"{c['label']} ({c['unit']})" if c.get("unit") else c["label"]))
        if k in CHANGED:
            head.append(CHANGED[k])
    rows = summary.get("rows", [])
    ref_row = next((r for r in rows if r.get("variant") == reference), {})
    out = []
    for r in rows:
        name = str(r.get("variant"))
        cells = [escape(f"{name} (reference)" if name == reference else name)]
        for k in keys:
            spec = spec_of_column(k)
            value = r.get(k)
            if value is None and name == reference and k.startswith("agreement"):
                value = "n/a (the reference itself)"
            cells.append(escape(figure(value, spec.fmt if spec else "{}")))
            if k in CHANGED:
                cells.append(escape(_change(r.get(k), ref_row.get(k), name == reference)))
        out.append(cells)
    return head, out


def _change(value: Any, ref: Any, is_reference: bool) -> str:
    if is_reference:
        return "reference"
    mine, theirs = as_number(value), as_number(ref)
    if mine is not None and theirs is not None:
        return f"{mine - theirs:+.4f}"
    return figure(value if mine is None else ref)


# ---------------------------------------------------------------- the document


def _status(verdicts: Sequence[Mapping[str, Any]], regressions: Sequence[Any]) -> str:
    if not verdicts:
        return "No candidate to judge: the reference alone was measured."
    failed = [v["variant"] for v in verdicts if v.get("gates_failed")]
    incomplete = [v["variant"] for v in verdicts if v.get("gates_not_run") or v.get("limits_not_applied")]
    n = len(verdicts)
    if failed:
        text = f"**FAILED**: {len(failed)} of {n} candidate(s) failed a gate ({escape(', '.join(failed))})."
    else:
        text = f"**PASSED**: every gate of {n} candidate(s) passed."
    if regressions:
        text += f" {len(regressions)} timing regression(s) against the stored run."
    if incomplete:
        text += f" Not every configured gate ran for {escape(', '.join(incomplete))}."
    return text


def _marker(v: Mapping[str, Any]) -> str:
    if v.get("gates_failed"):
        return "**FAIL**"
    return "**PASS, not all gates ran**" if v.get("gates_not_run") or v.get("limits_not_applied") else "**PASS**"


def _footer(summary: Mapping[str, Any]) -> str:
    e = summary.get("environment", {})
    threads = ", ".join(str(t) for t in e.get("threads", [])) or "?"
    parts = [
        f"{e.get('cpu', '?')} ({threads} thread(s))",
        f"GPU {e.get('gpu', 'none')}",
        f"imgsz {e.get('imgsz', '?')}",
        f"slimbench {e.get('slimbench', '?')}, torch {e.get('torch', '?')}",
        f"summary created {summary.get('created', '?')}",
    ]
    return escape("; ".join(parts))


def render(summary: Mapping[str, Any]) -> str:
    """The whole markdown document for one run's summary (``summary.json``'s content)."""
    reference = summary.get("reference", "?")
    verdicts = summary.get("verdicts", [])
    candidates = ", ".join(str(v["variant"]) for v in verdicts) or "no candidates"
    lines = [f"## slimbench: {escape(candidates)} vs {escape(reference)}", ""]
    lines += [_status(verdicts, summary.get("benchmark_regressions", [])), ""]
    if summary.get("environment", {}).get("smoke"):
        lines += ["Smoke mode: every check ran once; speed ratios were measured on a few pairs and not gated.", ""]
    lines += [f"- {_marker(v)} {escape(v.get('line', ''))}" for v in verdicts]
    rows = gate_rows(summary)
    if rows:
        lines += ["", "### Gates", ""] + gates_table(rows)
    speed = speed_rows(summary)
    if speed:
        lines += ["", "### Speed", ""]
        lines += [
            f"Speed ratio: the candidate's time over {escape(reference)}'s, median of interleaved pairs "
            "(below 1 is faster); speedup = 1 / ratio.",
            "",
        ]
        lines += table(SPEED_HEAD, speed, (False,) * 3 + (True,) * 4 + (False, True))
    head, accuracy = accuracy_rows(summary)
    if len(head) > 1 and accuracy:
        lines += ["", "### Detections and accuracy", ""]
        lines += table(head, accuracy, (False,) + (True,) * (len(head) - 1))
    lines += ["", _footer(summary), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- writers


def write(path: str | os.PathLike[str], text: str) -> Path:
    """The markdown at ``path``, replacing it (atomically)."""
    from slimbench.core.files import atomic_write_bytes

    return atomic_write_bytes(path, text.encode("utf-8"))


def append(path: str | os.PathLike[str], text: str) -> Path:
    """The markdown appended to ``path`` (a step summary collects every step's), after a blank line."""
    p = Path(path)
    with p.open("a", encoding="utf-8") as f:
        f.write(("\n" if p.stat().st_size else "") + text)
    return p
