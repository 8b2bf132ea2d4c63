"""``python -m slimbench.report.check DIR [--since EPOCH]``: did a run write its reports, whole and consistent?

CI runs it after the benchmark suite, so a run that passes its tests but loses its report (a hook that stopped
firing, a chart that stopped rendering) still fails the build. ``--since`` refuses files older than the run, so
a stale report from an earlier run cannot pass for a new one.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from slimbench.report.summary import CHARTS, SCHEMA, SCHEMA_VERSION


def problems(folder: str | Path, since: float | None = None) -> list[str]:
    """Everything wrong with the reports in ``folder`` (empty when all is well)."""
    d = Path(folder)
    out: list[str] = []
    paths = {name: d / name for name in ("report.html", "summary.json", "summary.csv")}
    for p in paths.values():
        if not p.is_file():
            out.append(f"{p}: missing")
        elif since is not None and p.stat().st_mtime < since:
            out.append(f"{p}: older than this run (stale)")
    if out:
        return out
    try:
        summary = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{paths['summary.json']}: not JSON ({e})"]
    if summary.get("schema") != SCHEMA or summary.get("schema_version") != SCHEMA_VERSION:
        out.append(f"{paths['summary.json']}: not a {SCHEMA} v{SCHEMA_VERSION} file")
        return out
    variants = [r.get("variant") for r in summary.get("rows", [])]
    if not variants:
        out.append(f"{paths['summary.json']}: no variant rows")
    if sorted(summary.get("variants", {})) != sorted(variants):
        out.append(f"{paths['summary.json']}: rows and variants differ")
    keys = [c["key"] for c in summary.get("columns", [])]
    with paths["summary.csv"].open(encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    if not table or table[0] != keys:
        out.append(f"{paths['summary.csv']}: header differs from summary.json's columns")
    elif [r[0] for r in table[1:]] != variants:
        out.append(f"{paths['summary.csv']}: rows differ from summary.json's ({[r[0] for r in table[1:]]})")
    html = paths["report.html"].read_text(encoding="utf-8", errors="replace")
    if 'id="slimbench"' not in html:
        out.append(f"{paths['report.html']}: no slimbench section")
    for chart in CHARTS:
        if f'data-chart="{chart}"' not in html:
            out.append(f"{paths['report.html']}: chart {chart!r} missing")
    for name in variants:
        if f'data-variant="{name}"' not in html:
            out.append(f"{paths['report.html']}: no summary row for {name!r}")
    bench = summary.get("outputs", {}).get("benchmark_json")
    if bench:
        try:
            data = json.loads(Path(bench).read_text(encoding="utf-8"))
            if not data.get("benchmarks"):
                out.append(f"{bench}: no benchmarks")
        except (OSError, json.JSONDecodeError) as e:
            out.append(f"{bench}: unreadable ({e})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slimbench.report.check", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the run's reports folder (--slimbench-reports)")
    parser.add_argument("--since", type=float, default=None, help="epoch seconds: files must be newer than this")
    a = parser.parse_args(argv)
    found = problems(a.folder, a.since)
    for line in found:
        print(f"report check: {line}", file=sys.stderr)
    if not found:
        print(f"report check: {a.folder}: report.html, summary.json and summary.csv are whole and consistent")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
