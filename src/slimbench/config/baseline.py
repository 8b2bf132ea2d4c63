"""The suite config's ``[baseline]`` table: where the stored baseline lives, its tolerances, whether it is required.

The limit rules belong with the config that sets them, so the suite config reads them without importing the run
(``slimbench.bench.baseline_gate``). A tolerance says how far a metric may move the wrong way; the defaults come from
``slimbench.core.metric_specs`` (the metrics with a baseline tolerance), ``[baseline.tolerances]`` overrides them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import resolve_path
from slimbench.core.metric_specs import baseline_specs

DEFAULT_FILE_NAME = "baseline.json"
"""Default baseline: this name next to the suite config (``fixtures/baseline.json`` for the bundled suite)."""


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move the wrong way: absolute (``0.001``) or relative to the baseline (``"1%"``)."""

    value: float = 0.0
    relative: bool = False

    def allowed(self, base: float) -> float:
        return abs(base) * self.value / 100.0 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(value: Any, where: str) -> Tolerance:
    """``0.001`` (absolute, in the metric's unit) or ``"1%"`` (relative to the baseline value); never negative."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*", value)
        if not m:
            raise SlimbenchError(f'{where}: expected a number or a percentage such as "1%", got {value!r}')
        return Tolerance(float(m.group(1)), relative=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SlimbenchError(f'{where}: expected a number or a percentage such as "1%", got {value!r}')
    if value < 0:
        raise SlimbenchError(f"{where}: expected a tolerance >= 0, got {value}")
    return Tolerance(float(value))


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    spec.key: parse_tolerance(spec.tolerance, f"metric_specs.{spec.key}") for spec in baseline_specs()
}
"""Each baseline metric family's default tolerance, in the declarations' order (params first, mAP last)."""


@dataclass(frozen=True)
class BaselineConfig:
    """The suite config's ``[baseline]`` table: where the file lives and the tolerances that override the defaults."""

    path: Path | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    required: bool = False  # a missing file fails the baseline tests instead of leaving them not run

    def tolerance(self, family: str) -> Tolerance:
        return self.tolerances.get(family, DEFAULT_TOLERANCES[family])


def parse_baseline_config(raw: Any, base: Path, err: Callable[[str, str], SlimbenchError]) -> BaselineConfig:
    """Validate ``[baseline]`` (keys ``path``, ``required`` and ``tolerances``); ``err(key, what)`` names the config
    file."""
    if not isinstance(raw, dict):
        raise err("baseline", "expected a table [baseline]")
    for k in raw:
        if k not in {"path", "required", "tolerances"}:
            raise err(f"baseline.{k}", "unknown key (expected one of: path, required, tolerances)")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise err("baseline.required", f"expected true or false, got {required!r}")
    path = None
    if "path" in raw:
        if not isinstance(raw["path"], str) or not raw["path"].strip():
            raise err("baseline.path", "expected a non-empty string")
        path = resolve_path(raw["path"], base)
    tol_raw = raw.get("tolerances", {})
    if not isinstance(tol_raw, dict):
        raise err("baseline.tolerances", "expected a table of metric = tolerance")
    tolerances: dict[str, Tolerance] = {}
    for k, v in tol_raw.items():
        key = f"baseline.tolerances.{k}"
        if k not in DEFAULT_TOLERANCES:
            raise err(key, f"unknown metric (expected one of: {', '.join(DEFAULT_TOLERANCES)})")
        try:
            tolerances[k] = parse_tolerance(v, key)
        except SlimbenchError as e:
            raise err(key, str(e).removeprefix(f"{key}: ")) from None
    return BaselineConfig(path, tolerances, required)


def required_by(config: BaselineConfig, source: Path | None, env: Mapping[str, str]) -> str | None:
    """Why a missing baseline file must fail this run, or None: ``[baseline] required = true`` in the suite config,
    or a CI environment (``CI`` is "true" or "1", as GitHub Actions, GitLab CI and most runners set it), where a
    gate that silently does not run would let every pull request through."""
    if config.required:
        return f"[baseline] required = true in {source}" if source else "[baseline] required = true"
    ci = env.get("CI", "")
    if ci.strip().lower() in ("true", "1"):
        return f"CI={ci}"
    return None


def default_path(config_source: Path | None, configured: Path | None, rootdir: Path) -> Path:
    """``[baseline] path``, else ``baseline.json`` next to the suite config, else ``fixtures/baseline.json``."""
    if configured is not None:
        return configured
    if config_source is not None:
        return config_source.parent / DEFAULT_FILE_NAME
    return rootdir / "fixtures" / DEFAULT_FILE_NAME
