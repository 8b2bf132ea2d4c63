"""The history of the gated figures over the runs pytest-benchmark stored for this machine.

Why here and not in a separate store: pytest-benchmark already keeps one JSON file per saved run
(``--benchmark-autosave``/``--benchmark-save``), keyed per machine, with the commit it ran on. slimbench adds its
per-variant gated figures to each saved file (:func:`payload`, key ``slimbench``, through pytest-benchmark's
``pytest_benchmark_update_json`` hook), and reads the newest N files back (``--slimbench-history N``) from the same
folder ``--benchmark-compare`` picks from. A file saved before slimbench added its key still gives params and GFLOPs
(from the forward benchmarks' ``extra_info``); a file with neither (another project's benchmarks) is left out.
:class:`RunHistory` holds a run's part in it; :mod:`slimbench.report.history_report` draws it.

``summary.json`` ``history``: ``runs`` (the earlier stored runs, oldest first, then this run with ``current: true``;
each with its commit id, time and per-variant figures) and ``steps`` (the newest step of each figure, by the rule in
:mod:`slimbench.report.steps`). The HTML report draws one line chart per figure and says each step in its verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from slimbench.bench import benchmark_bridge as bench_bridge
from slimbench.report.steps import RULE, newest_step

KEY = "slimbench"
"""The key slimbench adds to pytest-benchmark's saved JSON."""
PAYLOAD_VERSION = 1
FIGURES = ("params", "gflops", "file_size_mb", "normalized_size_mb", "map50_95", "map50_95_nms_free")
"""The gated per-variant figures kept in the history (summary row keys), besides every ``speed_ratio[cell]``; the
NMS-free mAP50-95 only where a variant has YOLO26's one-to-one head (other rows lack the key, so no chart)."""
RATIO = "speed_ratio["
CURRENT = "this run"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def figures_of_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Variant -> the history's figures from the summary table's rows (the numbers the report shows)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        kept = {k: v for k, v in row.items() if (k in FIGURES or k.startswith(RATIO)) and _number(v) is not None}
        if kept:
            out[str(row["variant"])] = kept
    return out


def payload(rows: Sequence[Mapping[str, Any]], reference: str, sha256: Mapping[str, str | None]) -> dict[str, Any]:
    """What slimbench adds to a saved pytest-benchmark run (under :data:`KEY`)."""
    return {"version": PAYLOAD_VERSION, "reference": reference, "variants": figures_of_rows(rows), "sha256": sha256}


def _from_extra_info(data: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """A run saved without slimbench's key: params and GFLOPs from the forward benchmarks' extra_info."""
    out: dict[str, dict[str, float]] = {}
    for bench in data.get("benchmarks") or []:
        info = (bench.get("extra_info") or {}) if isinstance(bench, Mapping) else {}
        name = info.get("variant")
        if isinstance(name, str):
            kept = {k: info[k] for k in ("params", "gflops") if _number(info.get(k)) is not None}
            out.setdefault(name, {}).update(kept)
    return {k: v for k, v in out.items() if v}


def stored_entry(name: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """One saved run as a history entry, or None when it holds no slimbench figures."""
    mine = data.get(KEY)
    if isinstance(mine, Mapping) and isinstance(mine.get("variants"), Mapping):
        variants = {
            str(v): {k: x for k, x in f.items() if _number(x) is not None}
            for v, f in mine["variants"].items()
            if isinstance(f, Mapping)
        }
        reference, sha = mine.get("reference"), dict(mine.get("sha256") or {})
    else:
        variants, reference, sha = _from_extra_info(data), None, {}
    if not any(variants.values()):
        return None
    commit = data.get("commit_info") or {}
    return {
        "run": name.removesuffix(".json"),
        "commit": commit.get("id"),
        "commit_time": commit.get("time"),
        "dirty": commit.get("dirty"),
        "branch": commit.get("branch"),
        "time": data.get("datetime"),
        "reference": reference,
        "variants": variants,
        "sha256": sha,
    }


def current_entry(
    rows: Sequence[Mapping[str, Any]], reference: str, commit: Mapping[str, Any], sha256: Mapping[str, str | None]
) -> dict[str, Any]:
    """This run as the history's last entry."""
    return {
        "run": CURRENT,
        "current": True,
        "commit": commit.get("id"),
        "commit_time": commit.get("time"),
        "dirty": commit.get("dirty"),
        "branch": commit.get("branch"),
        "time": datetime.now(timezone.utc).isoformat(),
        "reference": reference,
        "variants": figures_of_rows(rows),
        "sha256": dict(sha256),
    }


def series(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[float | None]]:
    """(variant, figure) -> its value in each run (None where that run did not measure it), in run order."""
    keys = dict.fromkeys((v, k) for r in runs for v, figs in r["variants"].items() for k in figs)
    return {(v, k): [_number(r["variants"].get(v, {}).get(k)) for r in runs] for v, k in keys}


def label(figure: str) -> str:
    """``speed_ratio[cpu-b1-t2]`` -> ``speed ratio cpu-b1-t2``, ``map50_95`` -> ``mAP50-95``."""
    from slimbench.core.metric_specs import spec_of_column

    spec = spec_of_column(figure)
    family, _, cell = figure.partition("[")
    name = spec.label if spec else family
    return f"{name} {cell.rstrip(']')}" if cell else name


def number_format(figure: str) -> str:
    """How the report writes the figure (its metric's format; ``{:.4g}`` for one without a spec)."""
    from slimbench.core.metric_specs import spec_of_column

    spec = spec_of_column(figure)
    return spec.fmt if spec else "{:.4g}"


def steps(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The newest step of each (variant, figure) series, flagged at the run where it began."""
    out = []
    for (variant, figure), values in series(runs).items():
        where = [i for i, v in enumerate(values) if v is not None]
        step = newest_step([values[i] for i in where])  # type: ignore[misc]
        if step is None:
            continue
        run = runs[where[step.index]]
        out.append(
            {
                "variant": variant,
                "figure": figure,
                "label": label(figure),
                "run": run["run"],
                "commit": run.get("commit"),
                "current": bool(run.get("current")),
                "before": step.before,
                "after": step.after,
                "change": step.change,
                "spread": step.spread,
            }
        )
    return out


def build(
    stored: Sequence[tuple[str, Mapping[str, Any]]],
    current: Mapping[str, Any],
    limit: int,
    storage: str | None,
    problem: str | None = None,
) -> dict[str, Any]:
    """summary.json's ``history``: the stored runs that hold figures, this run, and the steps found."""
    entries = [stored_entry(name, data) for name, data in stored]
    runs = [e for e in entries if e is not None] + [dict(current)]
    return {
        "limit": limit,
        "storage": storage,
        "unreadable": problem,
        "left_out": len(entries) - sum(e is not None for e in entries),  # saved runs without slimbench figures
        "rule": RULE,
        "runs": runs,
        "steps": steps(runs),
    }


class RunHistory:
    """One run's history state: the stored runs, read at session start (before pytest-benchmark saves this run at
    its end), and this run's commit as pytest-benchmark recorded it when it saved the run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stored: list[tuple[str, dict[str, Any]]] = []
        self.problem: str | None = None
        self.commit: dict[str, Any] | None = None

    def read(self, config: Any) -> None:
        """The newest ``limit`` stored runs of this machine (nothing with --slimbench-history 0)."""
        if self.limit:
            self.stored, self.problem = bench_bridge.stored_runs(config, self.limit)

    def add_figures(
        self,
        output_json: dict[str, Any],
        rows: Sequence[Mapping[str, Any]],
        reference: str,
        sha256: Mapping[str, str | None],
    ) -> None:
        """Put this run's figures into a JSON pytest-benchmark is about to write (saved run or --benchmark-json)."""
        self.commit = dict(output_json.get("commit_info") or {})
        output_json[KEY] = payload(rows, reference, sha256)

    def document(self, config: Any, summary: Mapping[str, Any], sha256: Mapping[str, str | None]) -> dict | None:
        """summary.json's ``history`` (None when off)."""
        if not self.limit:
            return None
        commit = self.commit if self.commit is not None else bench_bridge.commit_info(config)
        current = current_entry(summary["rows"], summary["reference"], commit, sha256)
        return build(self.stored, current, self.limit, bench_bridge.storage_name(config), self.problem)
