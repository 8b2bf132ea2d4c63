"""The report and baseline options (``--slimbench-reports``, ``--baseline``, ``--update-baseline``...).

Declared through an ``addoption`` the caller passes (a pytest option group's), with the suite's other options in
``slimbench.plugin.add_suite_options``; read by the outputs plugin (``report.hooks``).
"""

from __future__ import annotations

from typing import Any

DEFAULT_REPORTS = "reports"


def add_output_options(addoption: Any, prefix: str = "") -> None:
    """The report and baseline options (declared with the suite's other options)."""
    addoption(
        f"--{prefix}slimbench-reports",
        metavar="DIR",
        default=DEFAULT_REPORTS,
        help="folder for report.html (unless --html), benchmark.json (unless --benchmark-json), summary.json and "
        f"summary.csv; replaced on every run; 'none' writes none of them [{DEFAULT_REPORTS}]",
    )
    addoption(
        f"--{prefix}baseline",
        metavar="PATH",
        default=None,
        help="stored baseline of the non-timing figures [baseline.json next to the variants file, or the "
        "config's [baseline] path]",
    )
    addoption(
        f"--{prefix}update-baseline",
        action="store_true",
        default=False,
        help="write this run's figures into the baseline (atomically, after the run) instead of gating on it; "
        "a run in which any test failed writes nothing (see --update-baseline-despite-failures)",
    )
    addoption(
        f"--{prefix}update-baseline-despite-failures",
        action="store_true",
        default=False,
        help="with --update-baseline: write the baseline even though gates failed in this run",
    )
