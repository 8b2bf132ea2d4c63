"""The verdicts: one line per candidate saying how many times smaller and faster it is than the reference, its
mAP50-95 change and its gates, and each cell's one speedup (paired where measured, else from the medians).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slimbench.core.timing_key import RUNTIME_IDS
from slimbench.core.undefined import is_undefined
from slimbench.report.facts import RunFacts
from slimbench.report.rows import as_number, check_name, interval_text, other_failures, timing_label

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession
    from slimbench.measure.timing import SpeedRatio


def _times(value: float | None, word: str, why: str = "n/a (not measured)") -> str:
    return f"{value:.2f}x {word}" if isinstance(value, (int, float)) and value > 0 else f"{why} {word}"


@dataclass(frozen=True)
class CellSpeedup:
    """A candidate's speedup over the reference in one cell, and whether it is the paired (gated) figure; a paired
    one carries its ratio as the report shows it (``"0.31 [0.29, 0.33], 13 pairs"``, :func:`rows.interval_text`)."""

    value: float
    paired: bool
    ratio_text: str | None = None
    close: bool = False

    @property
    def source(self) -> str:
        return "paired" if self.paired else "medians"


def cell_label(row: Mapping[str, Any]) -> str:
    """A deployment row's cell as charts and verdicts name it: ``"torch b1 t2"``, ``"ort cuda:0 b8 t1"``."""
    rt = RUNTIME_IDS.get(str(row.get("runtime")), str(row.get("runtime")))
    dev = "" if row.get("device") == "cpu" else f" {row.get('device')}"
    return f"{rt}{dev} b{row.get('batch')} t{row.get('threads')}"


def cell_speedups(deployment: Iterable[Mapping[str, Any]], reference: str) -> dict[str, dict[str, CellSpeedup]]:
    """Cell label -> candidate -> its one speedup there: 1 / the paired speed ratio where it was measured (the gated
    figure), else the benchmark medians' (separate runs, minutes apart), marked as such. The reference is left out:
    it is 1.0 by definition."""
    out: dict[str, dict[str, CellSpeedup]] = {}
    for row in deployment:
        name = str(row.get("variant"))
        paired, medians = as_number(row.get("speedup")), as_number(row.get("speedup_medians"))
        value = paired if paired is not None else medians
        if name != reference and value is not None:
            text = interval_text(row, "{:.2f}") if paired is not None else None
            close = row.get("speed_decision") == "close"
            out.setdefault(cell_label(row), {})[name] = CellSpeedup(value, paired is not None, text, close)
    return out


def _faster_text(label: str, speedup: CellSpeedup | None) -> str:
    if speedup is None:
        return _times(None, f"faster {label}")
    how = "from medians, not paired"
    if speedup.paired:
        how = f"paired: {speedup.ratio_text}" if isinstance(speedup.ratio_text, str) else "paired"
    return f"{_times(speedup.value, f'faster {label}')} ({how})"


def _change(value: Any, reference: Any) -> float | None:
    """``value`` minus ``reference`` where both are numbers, else None (one not measured, or undefined)."""
    mine, theirs = as_number(value), as_number(reference)
    return mine - theirs if mine is not None and theirs is not None else None


def verdicts(session: SuiteSession, facts: RunFacts, deployment: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate: how many times smaller (file size), faster per runtime/device/batch/threads (1 / paired speed
    ratio where measured, else benchmark medians, ``faster_from`` says which), the mAP50-95 change, and its gates;
    ``line`` says it all."""
    ref = session.reference.name
    ref_figs = session.figures[ref]
    speedups = cell_speedups(deployment, ref)
    out = []
    for v in session.candidates:
        f = session.figures[v.name]
        size, ref_size = (f.static or {}).get("file_size_mb"), (ref_figs.static or {}).get("file_size_mb")
        smaller = ref_size / size if as_number(size) and as_number(ref_size) else None
        mine = {label: per.get(v.name) for label, per in speedups.items()}
        faster = {label: s.value if s else None for label, s in mine.items()}
        m, ref_m = f.accuracy.get("map50_95"), ref_figs.accuracy.get("map50_95")
        change = _change(m, ref_m)
        why_map = (
            m if is_undefined(m) else "n/a (smoke mode)" if session.smoke and m is not None else "n/a (not measured)"
        )
        checks = f.checks
        others = other_failures(f, facts.failures, v.name)
        failed = f.failed()
        first = (failed[0].message if failed else others[0].message if others else "") or ""
        first = first.splitlines()[0] if first else None
        n_failed, n_passed = len(failed) + len(others), len(checks) - len(failed)
        size_text = (
            f"{_times(smaller, 'smaller')} ({ref_size:.2f} -> {size:.2f} MB file)"
            if smaller
            else _times(None, "smaller")
        )
        speed_text = ", ".join(_faster_text(label, s) for label, s in mine.items()) or "speed n/a (not timed)"
        map_text = f"mAP50-95 {change:+.4f} ({ref_m:.4f} -> {m:.4f})" if change is not None else f"mAP50-95 {why_map}"
        free, ref_free = f.accuracy.get("map50_95_nms_free"), ref_figs.accuracy.get("map50_95_nms_free")
        free_change = _change(free, ref_free)
        if free_change is not None:  # both have a one-to-one head (YOLO26): what shipping NMS-free costs
            map_text += f", NMS-free {free_change:+.4f} ({ref_free:.4f} -> {free:.4f})"
        not_run = session.not_run(v.name)
        close = [check_name(c) for c in checks if c.passed and c.decision == "close"]
        close_text = f" ({len(close)} close: {', '.join(close)})" if close else ""
        gates = f"gates {n_passed} passed{close_text}, {n_failed} failed" + not_run_text(not_run)
        gates += f"; first failure: {first}" if first else ""
        unlimited = session.config.unlimited.get(v.name)
        gates += f"; {unlimited}" if unlimited else ""
        out.append(
            {
                "variant": v.name,
                "smaller": smaller,
                "faster": faster,
                "faster_from": {label: s.source if s else None for label, s in mine.items()},
                "speed_ratio": speed_ratios(f.speed_ratio),
                "map50_95_change": change,
                "map50_95_nms_free_change": free_change,
                "gates_passed": n_passed,
                "gates_failed": n_failed,
                "gates_close": close,  # passed, but on a close speed-gate verdict (never a plain pass)
                "gates_not_run": not_run,
                "limits_not_applied": unlimited,
                "first_failure": first,
                "line": f"{v.name}: {size_text}; {speed_text}; {map_text}; {gates}",
            }
        )
    return out


def speed_ratios(ratios: Mapping[str, SpeedRatio]) -> dict[str, dict[str, Any]]:
    """Timing label -> a candidate's paired ratio in the verdict: median, 95% interval, pairs, gate decision."""
    out = {}
    for key, r in ratios.items():
        iv = r.interval
        out[timing_label(key)] = {
            "median": r.median,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "pairs": r.pairs,
            "decision": r.decision,
            "text": r.text(),
        }
    return out


def not_run_text(not_run: list[dict[str, str]]) -> str:
    """``", 2 not run (deselected: max_map50_95_drop, min_agreement_map50)"``, grouped by reason; "" when none."""
    if not not_run:
        return ""
    by_reason: dict[str, list[str]] = {}
    for entry in not_run:
        by_reason.setdefault(entry["reason"], []).append(entry["limit"])
    parts = "; ".join(f"{why}: {', '.join(keys)}" for why, keys in by_reason.items())
    return f", {len(not_run)} not run ({parts})"
