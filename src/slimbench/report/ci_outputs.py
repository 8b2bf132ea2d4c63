"""Where CI users read a run: the markdown verdicts appended to ``$GITHUB_STEP_SUMMARY`` and written to
``--slimbench-markdown``, and the dashboard JSON of ``--slimbench-github-benchmark``.

The paths are checked when the run starts (a missing folder stops it with one line naming the option, before any
test); the files are written from the summary document after the run, by the outputs plugin
(:mod:`slimbench.report.hooks`), wherever the reports folder is (``--slimbench-reports none`` included).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import resolve_path

MARKDOWN_OPTION = "--slimbench-markdown"
DASHBOARD_OPTION = "--slimbench-github-benchmark"


def output_file(raw: str | None, option: str, base: Path, reports: Path | None = None) -> Path | None:
    """An output file option's path (relative to ``base``, the invocation folder). Its folder must exist, or be the
    reports folder, which the run makes (``--slimbench-markdown reports/verdicts.md`` on a fresh checkout)."""
    text = str(raw or "").strip()
    if not text:
        return None
    path = resolve_path(text, base)
    if path.is_dir():
        raise SlimbenchError(f"{option} {text}: is a folder; give a file path")
    made = reports is not None and path.parent.resolve() == reports.resolve()
    if not path.parent.is_dir() and not made:
        raise SlimbenchError(f"{option} {text}: folder {path.parent} does not exist")
    return path


def write(
    doc: Mapping[str, Any], markdown_path: Path | None, dashboard_path: Path | None, environ: Mapping[str, str]
) -> list[str]:
    """Write the CI outputs of one run's summary; returns what was written, one terminal line each. A step summary
    that cannot be appended to is said, not raised: the file is the runner's, not the user's option."""
    from slimbench.report import dashboard, markdown

    lines = []
    step_summary = environ.get(markdown.STEP_SUMMARY_ENV, "").strip()
    if step_summary or markdown_path:
        text = markdown.render(doc)
        if markdown_path:
            lines.append(f"markdown verdicts: {markdown.write(markdown_path, text)}")
        if step_summary:
            try:
                markdown.append(step_summary, text)
                lines.append(f"markdown verdicts appended to ${markdown.STEP_SUMMARY_ENV} ({step_summary})")
            except OSError as e:
                lines.append(f"could not append to ${markdown.STEP_SUMMARY_ENV} ({step_summary}): {e}")
    if dashboard_path:
        written = dashboard.write(dashboard_path, doc)
        said = [f"{file} ({n} figures, tool {tool})" for tool, (file, n) in written.items()]
        lines.append(f"github-action-benchmark: {', '.join(said) or 'no figures, nothing written'}")
    return lines


def paths(config_getoption: Any, base: Path, reports: Path | None) -> tuple[Path | None, Path | None]:
    """The markdown and dashboard paths from the options (``config.getoption``), checked."""
    return (
        output_file(config_getoption("slimbench_markdown", None), MARKDOWN_OPTION, base, reports),
        output_file(config_getoption("slimbench_github_benchmark", None), DASHBOARD_OPTION, base, reports),
    )
