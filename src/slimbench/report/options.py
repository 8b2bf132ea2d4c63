"""The report and baseline options (``--slimbench-reports``, ``--slimbench-markdown``, ``--baseline``...).

Declared through an ``addoption`` the caller passes (a pytest option group's), with the suite's other options in
``slimbench.plugin.add_suite_options``; read by the outputs plugin (``report.hooks``).
"""

from __future__ import annotations

from typing import Any

from slimbench.core.errors import SlimbenchError

DEFAULT_REPORTS = "reports"
DEFAULT_HISTORY = 20


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
        f"--{prefix}slimbench-markdown",
        metavar="PATH",
        default=None,
        help="also write the verdicts as markdown to PATH (replaced): the verdict lines, the gates (failures first), "
        "the speed and accuracy tables; to paste as a pull-request comment. With $GITHUB_STEP_SUMMARY set (GitHub "
        "Actions), the same markdown is appended to that file on every run",
    )
    addoption(
        f"--{prefix}slimbench-github-benchmark",
        metavar="PATH",
        default=None,
        help="write the gated figures, mAP and latencies as github-action-benchmark custom JSON: PATH with .smaller "
        "or .bigger before its extension (bench.json -> bench.smaller.json for tool customSmallerIsBetter, "
        "bench.bigger.json for customBiggerIsBetter); a direction without figures writes no file",
    )
    addoption(
        f"--{prefix}slimbench-history",
        metavar="N",
        default=str(DEFAULT_HISTORY),
        help="the report's history: the gated figures over the newest N runs pytest-benchmark stored for this machine "
        f"(--benchmark-autosave), with steps flagged; 0: off [{DEFAULT_HISTORY}]",
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


def history_limit(raw: Any) -> int:
    """``--slimbench-history``'s value: a whole number >= 0, else one line naming the option."""
    try:
        n = int(str(raw).strip())
    except ValueError:
        n = -1
    if n < 0:
        raise SlimbenchError(f"--slimbench-history {raw!r}: expected a whole number >= 0 (0: no history)")
    return n
