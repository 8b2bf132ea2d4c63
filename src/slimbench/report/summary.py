"""The run's summary document (``summary.json``) and its two writers, JSON and CSV.

The document gathers the table (:mod:`slimbench.report.rows`), the verdicts (:mod:`slimbench.report.verdicts`), the
environment and the per-variant figures, with a schema version; ``summary.csv`` (pandas) and the HTML table show the
same rows. Nothing is measured here, so the summary can only repeat the tests' numbers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.report.attribution_report import entries as attribution_entries
from slimbench.report.facts import RunFacts
from slimbench.report.rows import DEPLOYMENT_COLUMNS, columns, deployment_rows, flagged_cells, rows, tables
from slimbench.report.verdicts import verdicts

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession

SCHEMA = "slimbench-summary"
SCHEMA_VERSION = 3
"""3: ``failed_checks`` names the failed metrics (``params ratio; speed ratio [cpu-b1-t2]``), never test functions;
a variant's ``checks`` hold every verdict; ``verdicts`` (one per candidate) and ``tables`` (the report's per-aspect
tables) are new. 2: timing keys name the thread count (``latency_ms[cpu-b1-t2]``), the deployment table has a
threads and a memory-ratio column, and an undefined figure is its reason (``"n/a (0 detections)"``)."""
CHARTS = ("size", "params", "gflops", "latency", "fps", "speedup")
"""Every chart the HTML report embeds, in order (a chart without data says so in its image). One speedup chart:
1 / the paired speed ratio where measured, else from benchmark medians, each group labelled which."""


def _plain(value: Any) -> Any:
    """JSON-ready: tuples to lists, paths to strings, non-finite floats to None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def file_sha256(session: SuiteSession, name: str) -> str | None:
    """A variant's checkpoint sha256 (computed once per session); None when its file cannot be read."""
    try:
        return session.checkpoint_sha256(name)
    except OSError:
        return None


def build(session: SuiteSession, facts: RunFacts, env: Mapping[str, Any]) -> dict[str, Any]:
    """The whole summary document (what summary.json holds)."""
    cols = columns(session)
    table = rows(session, facts)
    keys = [c.key for c in cols]
    variants = {}
    for v in session.variants:
        f = session.figures[v.name].as_dict()
        f["checkpoint_sha256"] = file_sha256(session, v.name)  # the file's, pinned or not (merge compares it)
        f["predict_median_s"] = facts.predict.get(v.name, {})
        f["failed_checks"] = [x.__dict__ for x in facts.failures if x.variant == v.name]  # as pytest said it
        variants[v.name] = f
    images = {
        image: {v.name: session.figures[v.name].detections.get(image, {}).get("count") for v in session.variants}
        for image in session.image_paths
    }
    flagged = flagged_cells(session, facts)
    deployment = deployment_rows(session)
    return _plain(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reference": session.config.reference,
            "environment": dict(env),
            "columns": [c.as_dict() for c in cols],
            "rows": [{k: r.get(k) for k in keys} for r in table],
            "regressions": {name: sorted(cells) for name, cells in flagged.items() if cells},
            "benchmark_regressions": facts.benchmark_regressions,
            "charts": list(CHARTS),
            "deployment_columns": [c.as_dict() for c in DEPLOYMENT_COLUMNS],
            "deployment": deployment,
            "verdicts": verdicts(session, facts, deployment),
            "tables": tables(cols),
            "images": images,
            "variants": variants,
            # the deployment matrix, one row per variant x cell (latency, speedups, agreement, mAP), when it ran
            "matrix": session.deploy.rows() if getattr(session, "_deploy", None) is not None else [],
            # where the time goes: per variant x cell (batch 1), time per layer against the reference's
            "attribution": attribution_entries(session.figures, session.config.reference),
            "outputs": facts.outputs,
        }
    )


def write_json(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.json, atomically."""
    from slimbench.core.files import atomic_write_bytes

    return atomic_write_bytes(path, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def write_csv(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """summary.csv (pandas): the table's rows and columns, keys as headers, atomically."""
    import pandas as pd

    from slimbench.core.files import atomic_write_bytes

    keys = [c["key"] for c in summary["columns"]]
    frame = pd.DataFrame(summary["rows"], columns=keys)
    return atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))
