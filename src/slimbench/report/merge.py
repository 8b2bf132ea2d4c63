"""``slimbench merge DIR... --out DIR``: a fleet in one report. The reports of several runs (one per machine of a CI
matrix, say) joined into one summary.json, each row keyed by its testbed, with a candidate x testbed verdict table.

Why refuse rather than merge anything: a fleet report compares like with like. Reports of different summary schema
versions name their figures differently, and one variant name pointing at different checkpoints (another sha256)
would put two models in one row; either stops the merge with one line naming the file. A testbed is what each
summary's environment says of its machine: machine and platform, CPU model and count, GPU, the runtimes' versions
and the thread counts timed (:func:`testbed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import read_json_object
from slimbench.report.summary import SCHEMA, SCHEMA_VERSION

FLEET_SCHEMA = "slimbench-fleet"
FLEET_SCHEMA_VERSION = 1
RUNTIME_VERSIONS = ("python", "torch", "onnxruntime", "openvino", "ultralytics")
"""The versions that make a testbed (the summary's environment names them)."""
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "not run"


@dataclass(frozen=True)
class Report:
    """One run's reports folder and its summary.json."""

    folder: Path
    path: Path
    doc: dict[str, Any]


def load(folders: Sequence[str | Path]) -> list[Report]:
    """Each folder's summary.json, read; a missing folder or file, or one that is not a slimbench summary, is one
    :class:`SlimbenchError` line naming it."""
    out = []
    seen: dict[Path, str] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise SlimbenchError(f"{folder}: no such reports folder")
        if folder.resolve() in seen:
            raise SlimbenchError(f"{folder}: given twice (also as {seen[folder.resolve()]})")
        seen[folder.resolve()] = str(folder)
        path = folder / "summary.json"
        if not path.is_file():
            raise SlimbenchError(f"{path}: missing (a run's reports folder holds summary.json)")
        doc = read_json_object(path, "summary")
        if doc.get("schema") != SCHEMA:
            raise SlimbenchError(f"{path}: not a {SCHEMA} file")
        out.append(Report(folder, path, doc))
    return out


def _checkpoint(entry: Mapping[str, Any]) -> str | None:
    """The sha256 a summary records for a variant: its file's, else its pin (older summaries)."""
    return entry.get("checkpoint_sha256") or entry.get("sha256")


def check(reports: Sequence[Report]) -> None:
    """Refuse, in one line naming the file: another schema version, another reference, or a variant name that is
    another checkpoint (sha256) than in an earlier report."""
    if not reports:
        raise SlimbenchError("no reports folder given")
    first = reports[0]
    for r in reports:
        version = r.doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SlimbenchError(
                f"{r.path}: schema_version {version}, this slimbench merges schema_version {SCHEMA_VERSION}; "
                "rerun that suite with this slimbench"
            )
        if r.doc.get("reference") != first.doc.get("reference"):
            raise SlimbenchError(
                f"{r.path}: reference {r.doc.get('reference')!r}, but {first.path} has {first.doc.get('reference')!r}; "
                "merge runs of one suite"
            )
    known: dict[str, tuple[str, Path]] = {}
    for r in reports:
        for name, entry in (r.doc.get("variants") or {}).items():
            sha = _checkpoint(entry)
            if not sha:
                continue
            if name in known and known[name][0] != sha:
                sha0, path0 = known[name]
                raise SlimbenchError(
                    f"{r.path}: variant {name!r} is checkpoint sha256 {sha[:16]}..., but {path0} has {sha0[:16]}...; "
                    "one name must mean one checkpoint"
                )
            known.setdefault(name, (sha, r.path))


def testbed(env: Mapping[str, Any]) -> dict[str, Any]:
    """A run's testbed from its summary's environment: machine, platform, CPU, GPU, runtime versions, threads."""
    versions = {k: env[k] for k in RUNTIME_VERSIONS if env.get(k) and env.get(k) != "not installed"}
    return {
        "machine": env.get("machine"),
        "platform": env.get("platform"),
        "cpu": env.get("cpu"),
        "cpu_count": env.get("cpu_count"),
        "gpu": env.get("gpu"),
        "versions": versions,
        "threads": list(env.get("threads") or []),
    }


def testbed_label(t: Mapping[str, Any]) -> str:
    """One line naming a testbed: ``Intel Xeon ... (2 CPUs) | Linux-...-x86_64 | python 3.11.9, torch 2.5.1 | t1,2``."""
    gpu = f" + {t['gpu']}" if t.get("gpu") and t["gpu"] != "none" else ""
    machine = t.get("platform") or t.get("machine") or "unknown machine"
    versions = ", ".join(f"{k} {v}" for k, v in t["versions"].items())
    threads = ",".join(map(str, t["threads"])) or "?"
    return f"{t.get('cpu') or 'unknown CPU'} ({t.get('cpu_count')} CPUs){gpu} | {machine} | {versions} | t{threads}"


def verdict_cell(verdict: Mapping[str, Any] | None) -> dict[str, Any]:
    """A candidate's status on one testbed: FAIL when a gate failed, PASS when gates ran and none failed, else not
    run (absent from that run, or no gate of it ran); with the gate counts."""
    if verdict is None:
        return {"status": NOT_RUN, "gates_passed": 0, "gates_failed": 0, "gates_not_run": 0, "line": None}
    passed, failed = int(verdict.get("gates_passed") or 0), int(verdict.get("gates_failed") or 0)
    status = FAIL if failed else PASS if passed else NOT_RUN
    return {
        "status": status,
        "gates_passed": passed,
        "gates_failed": failed,
        "gates_not_run": len(verdict.get("gates_not_run") or []),
        "line": verdict.get("line"),
    }


def _labels(reports: Sequence[Report]) -> list[str]:
    """Each report's testbed label; the same testbed twice is told apart by a count (#2)."""
    out: list[str] = []
    for r in reports:
        label = testbed_label(testbed(r.doc.get("environment") or {}))
        n = sum(1 for x in out if x == label or x.startswith(label + " #"))
        out.append(f"{label} #{n + 1}" if n else label)
    return out


def _union(lists: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Columns of several summaries, each key once, in first-seen order."""
    seen: dict[str, dict[str, Any]] = {}
    for cols in lists:
        for c in cols:
            seen.setdefault(c["key"], dict(c))
    return list(seen.values())


def join(reports: Sequence[Report]) -> dict[str, Any]:
    """The fleet document (the merged summary.json); call :func:`check` first."""
    labels = _labels(reports)
    beds = []
    rows, verdicts, deployment = [], [], []
    variants: dict[str, dict[str, Any]] = {}
    for i, (r, label) in enumerate(zip(reports, labels, strict=True), 1):
        d = r.doc
        facts = testbed(d.get("environment") or {})
        threads = ",".join(map(str, facts["threads"]))
        name = f"T{i}: {facts['cpu'] or 'unknown CPU'} ({facts['machine'] or '?'}), t{threads}"
        beds.append({"testbed": label, "name": name, "source": str(r.path), "created": d.get("created"), **facts})
        rows += [{"testbed": label, **row} for row in d.get("rows", [])]
        verdicts += [{"testbed": label, **v} for v in d.get("verdicts", [])]
        deployment += [{"testbed": label, **row} for row in d.get("deployment", [])]
        for name, entry in (d.get("variants") or {}).items():
            variants.setdefault(name, {"role": entry.get("role"), "sha256": _checkpoint(entry)})
    candidates = list(dict.fromkeys(v["variant"] for v in verdicts))
    cells = []
    totals = {}
    for name in candidates:
        counts = {PASS: 0, FAIL: 0, NOT_RUN: 0}
        for label in labels:
            found = next((v for v in verdicts if v["variant"] == name and v["testbed"] == label), None)
            cell = {"variant": name, "testbed": label, **verdict_cell(found)}
            counts[cell["status"]] += 1
            cells.append(cell)
        totals[name] = counts
    bed_column = {"key": "testbed", "label": "testbed", "unit": "", "better": ""}
    return {
        "schema": FLEET_SCHEMA,
        "schema_version": FLEET_SCHEMA_VERSION,
        "summary_schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reference": reports[0].doc.get("reference"),
        "testbeds": beds,
        "verdict_table": {"candidates": candidates, "testbeds": labels, "cells": cells, "totals": totals},
        "columns": [bed_column, *_union([r.doc.get("columns", []) for r in reports])],
        "rows": rows,
        "verdicts": verdicts,
        "deployment_columns": [bed_column, *_union([r.doc.get("deployment_columns", []) for r in reports])],
        "deployment": deployment,
        "variants": variants,
    }


def text_lines(fleet: Mapping[str, Any]) -> list[str]:
    """What the command prints: per candidate, its status count over the testbeds, then each failing testbed."""
    table = fleet["verdict_table"]
    n = len(table["testbeds"])
    out = []
    for name in table["candidates"]:
        t = table["totals"][name]
        out.append(f"{name}: PASS on {t[PASS]}, FAIL on {t[FAIL]}, not run on {t[NOT_RUN]} of {n} testbed(s)")
        out += [
            f"  FAIL on {c['testbed']}: {c['gates_failed']} gate(s) failed"
            for c in table["cells"]
            if c["variant"] == name and c["status"] == FAIL
        ]
    return out
