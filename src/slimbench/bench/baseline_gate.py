"""One run's baseline gate: the stored baseline read and validated up front, asked per variant, written on request.

pytest-benchmark already stores timings (``--benchmark-autosave`` / ``--benchmark-compare``); the stored baseline
(:mod:`slimbench.bench.baseline_store`) covers the rest: params, GFLOPs, sizes, channels, detection counts and
agreement on the sample images, and mAP when measured. A run compares its figures with the file using per-metric
tolerances (``[baseline.tolerances]`` in the suite config) and fails with a small diff table; ``--update-baseline``
writes the current figures instead, atomically, and says what changed. Without that flag the file is never written.
No file yet: the check is not run (a suite's first run), with how to create it, unless ``[baseline] required = true``
or ``CI`` is true/1: then it fails. Nothing here imports pytest or the session; the plugin builds a
:class:`BaselineGate` per run and ``benchmarks/test_baseline.py`` asks it (:mod:`slimbench.bench.baseline_check`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimbench.bench.baseline_compare import Row, changes, compare, diff_table, merge_entry
from slimbench.bench.baseline_store import read_baseline, render
from slimbench.config.baseline import BaselineConfig, default_path, required_by
from slimbench.core.files import resolve_path, shown_path

NOT_RUN = "not run (no baseline yet)"
"""A variant's baseline status when there is no file yet and none is required: reported apart from passed/failed."""


@dataclass
class Outcome:
    """What a variant's baseline check found; the test fails when ``failure`` is set."""

    rows: list[Row]
    failure: str | None = None
    status: str = "ok"
    not_run: str | None = None  # why nothing was compared (no baseline yet, not required): the test is not run

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": [r.as_dict() for r in self.rows],
            "regressed": [r.metric for r in self.rows if r.status == "regressed"],
        }


class BaselineGate:
    """The stored baseline of one run: read and validated up front, asked per variant, written only on request."""

    def __init__(
        self,
        path: Path,
        update: bool = False,
        config: BaselineConfig | None = None,
        required: str | None = None,
        suite: str = "benchmarks",
    ) -> None:
        self.path = path
        self.update = update
        self.config = config or BaselineConfig()
        self.required = required  # why a missing file fails this run (see required_by), or None
        self.suite = suite  # the folder to run pytest on, as the hint to create the file names it
        self.data = read_baseline(path)  # None: no file yet
        self.current: dict[str, dict[str, Any]] = {}  # variant -> entry measured in this run
        self.written: list[str] | None = None  # lines describing the update, once written

    @property
    def missing(self) -> bool:
        return self.data is None

    def how_to_create(self) -> str:
        """The hint a run without a baseline file gives, one line."""
        return f"create it with `pytest {self.suite} --update-baseline`, review {shown_path(self.path)} and commit it"

    def no_baseline_yet(self) -> str:
        """The one line of a run without a baseline file: not run, or failed when required (then it says why)."""
        why = f" (required: {self.required})" if self.required else ""
        return f"no baseline yet: {self.how_to_create()}{why}"

    def check(self, name: str, entry: dict[str, Any]) -> Outcome:
        """Compare a variant's entry with the stored one; in update mode remember it and never fail."""
        self.current[name] = entry
        stored = None if self.data is None else self.data["variants"].get(name)
        if stored is None:
            if self.update:
                return Outcome([], None, "will be added")
            if self.data is None and self.required:
                return Outcome([], self.no_baseline_yet(), "missing (required)")
            if self.data is None:
                return Outcome([], None, NOT_RUN, not_run=self.no_baseline_yet())
            known = ", ".join(self.data["variants"]) or "none"
            return Outcome(
                [],
                f"{name}: not in the baseline {self.path} (it has: {known}); run with --update-baseline to add it",
                "missing",
            )
        rows = compare(stored, entry, self.config)
        regressed = [r for r in rows if r.status == "regressed"]
        if self.update:
            return Outcome(rows, None, "will be updated" if changes(stored, entry) else "ok")
        if not regressed:
            return Outcome(rows, None, "ok")
        lines = [f"{name}: {len(regressed)} metric(s) outside the baseline {self.path}", *diff_table(rows)]
        improved = [r.metric for r in rows if r.status == "improved"]
        if improved:
            lines.append(f"  improved beyond tolerance: {', '.join(improved)}")
        if stored.get("checkpoint_sha256") and stored.get("checkpoint_sha256") != entry.get("checkpoint_sha256"):
            lines.append("  the checkpoint changed since the baseline was written")
        lines.append("  if the change is intended: --update-baseline, then review and commit the file")
        return Outcome(rows, "\n".join(lines), f"{len(regressed)} regressed")

    def statuses(self) -> dict[str, str]:
        """After :meth:`write`: per variant of this run, what the update did to its entry."""
        if self.written is None:
            return {}
        changed = {line.split(":", 1)[0] for line in self.written}
        return {name: ("written to the baseline" if name in changed else "unchanged") for name in self.current}

    def write(self) -> list[str]:
        """With ``--update-baseline``: merge this run's entries into the file atomically; lines saying what changed.

        Variants in the file but not in this run are kept as they are, and so are a variant's metrics this run did
        not measure (mAP in a run with ``-m "not accuracy"`` or in smoke mode) while the settings they depend on are
        unchanged. Nothing changed: nothing written.
        """
        from slimbench.model.checkpoint import atomic_write_bytes

        if not self.update or not self.current:
            return []
        old = {} if self.data is None else dict(self.data["variants"])
        merged = dict(old)
        lines: list[str] = []
        for name, now in self.current.items():
            entry = merged[name] = merge_entry(old.get(name), now)
            lines += [f"{name}: {what}" for what in changes(old.get(name), entry)]
        if not lines:
            self.written = []
            return [f"baseline {self.path}: unchanged ({len(self.current)} variant(s) checked)"]
        atomic_write_bytes(self.path, render(merged))
        self.data = json.loads(self.path.read_text(encoding="utf-8"))
        self.written = lines
        head = "created" if not old else "updated"
        return [f"baseline {self.path}: {head}", *(f"  {line}" for line in lines)]


def open_gate(
    explicit: str | None,
    update: bool,
    config_source: Path | None,
    config: BaselineConfig,
    rootdir: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    suite: str = "benchmarks",
) -> BaselineGate:
    """The run's gate: ``--baseline PATH`` (relative to the working directory) or the default path; ``env`` (the
    process environment) and the config say whether a missing file fails (:func:`required_by`)."""
    path = resolve_path(explicit, cwd) if explicit else default_path(config_source, config.path, rootdir)
    required = required_by(config, config_source, os.environ if env is None else env)
    return BaselineGate(path, update, config, required, suite)
