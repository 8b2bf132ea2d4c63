"""The stored baseline's file: its schema, strict validation on read, and stable bytes on write.

One JSON file per suite keeps every figure that is not a timing, per variant, so the CI gate
(:mod:`slimbench.bench.baseline_gate`) can compare a run with it. Layout (``schema_version`` 1)::

    {"schema": "slimbench-baseline", "schema_version": 1,
     "created_by": {"slimbench": "0.1.0", "torch": "...", "ultralytics": "...", "written": "2025-...Z"},
     "variants": {"pruned": {"checkpoint_sha256": "...",
                             "settings": {"imgsz": 640, "conf": 0.25, "iou": 0.7, "match_iou": 0.5,
                                          "reference": "original", "images": {"scene": "<sha256>"}},
                             "metrics": {"params": 1234567, "gflops": 3.1, "detections[scene]": 12, ...}}}}

Each variant keeps the settings it was measured with (:mod:`slimbench.bench.baseline_compare` reads them).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slimbench.config.baseline import DEFAULT_TOLERANCES
from slimbench.core.errors import SlimbenchError

SCHEMA = "slimbench-baseline"
SCHEMA_VERSION = 1

FAMILIES: tuple[str, ...] = tuple(DEFAULT_TOLERANCES)
"""The metric families a baseline holds (those with a baseline tolerance in ``slimbench.core.metric_specs``)."""
RETIRED = frozenset({"onnx_size_mb", "peak_rss_mb", "inference_mb"})
"""Metric families older baselines hold that are no longer compared (dropped on read, not written again):
``onnx_size_mb`` drifts between exports of the same checkpoint; absolute memory (``peak_rss_mb``,
``inference_mb``) depends on the environment as much as on the model: the same checkpoint, code and package versions
read 643 vs 929 MB peak RSS (32 vs 53 MB inference) in two venvs on one machine, as the shared libraries' resident
pages differ. It is reported; the gate is ``max_memory_ratio``, measured side by side in one run."""
NA_PREFIX = "n/a"
"""An undefined figure is stored as its reason (``"n/a (0 detections)"``), never as a number."""

_METRIC = re.compile(r"^(?P<family>[a-z0-9_]+)(\[(?P<image>[^\]]+)\])?$")
PER_IMAGE = {"detections", "agreement_recall", "agreement_precision"}
PER_KEY = {"cell_agreement_map50", "cell_map50_95"}
"""Bracket: a matrix cell such as "ov-int8", not an image."""
_SETTINGS_KEYS = {
    "imgsz",
    "conf",
    "iou",
    "match_iou",
    "reference",
    "images",
    "accuracy_data",
    "agreement_data",
    "calibration",
}


def finite(value: Any) -> bool:
    """A stored figure that is a number (not a bool, not NaN or infinite)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def undefined(value: Any) -> bool:
    """An undefined figure as stored: its reason, ``"n/a (...)"``."""
    return isinstance(value, str) and value.startswith(NA_PREFIX)


def metric_family(name: str) -> tuple[str, str | None]:
    """``"detections[scene]"`` -> ("detections", "scene"); ``"params"`` -> ("params", None)."""
    m = _METRIC.match(name)
    if not m:
        raise ValueError(name)
    return m.group("family"), m.group("image")


def _known_metric(family: str, image: str | None) -> bool:
    """Per-image families need an image (``detections``) or may have one (agreement); the others have none."""
    if family not in FAMILIES:
        return False
    if family == "detections" or family in PER_KEY:
        return image is not None
    return image is None or family in PER_IMAGE


def validate(data: Any, path: Path) -> dict[str, Any]:
    """Check a parsed baseline strictly; any problem is one :class:`SlimbenchError` naming the file and the key."""

    def err(key: str, what: str) -> SlimbenchError:
        return SlimbenchError(f"{path}: baseline {key}: {what}" if key else f"{path}: baseline {what}")

    if not isinstance(data, dict):
        raise err("", f"expected a JSON object, got {type(data).__name__}")
    for k in data:
        if k not in {"schema", "schema_version", "created_by", "variants"}:
            raise err(k, "unknown key (expected schema, schema_version, created_by, variants)")
    if data.get("schema") != SCHEMA:
        raise err("schema", f"expected {SCHEMA!r}, got {data.get('schema')!r} (not a slimbench baseline?)")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise err("schema_version", f"expected an integer, got {version!r}")
    if version != SCHEMA_VERSION:
        raise err("schema_version", f"{version} is not supported (this slimbench reads {SCHEMA_VERSION})")
    if not isinstance(data.get("created_by", {}), dict):
        raise err("created_by", "expected an object")
    variants = data.get("variants")
    if not isinstance(variants, dict):
        raise err("variants", f"expected an object of variant entries, got {type(variants).__name__}")
    for name, entry in variants.items():
        key = f"variants.{name}"
        if not isinstance(entry, dict):
            raise err(key, "expected an object with settings and metrics")
        for k in entry:
            if k not in {"checkpoint_sha256", "settings", "metrics"}:
                raise err(f"{key}.{k}", "unknown key (expected checkpoint_sha256, settings, metrics)")
        sha = entry.get("checkpoint_sha256")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise err(f"{key}.checkpoint_sha256", "expected 64 lower-case hex digits")
        settings = entry.get("settings", {})
        if not isinstance(settings, dict):
            raise err(f"{key}.settings", "expected an object")
        for k, v in settings.items():
            if k not in _SETTINGS_KEYS:
                raise err(f"{key}.settings.{k}", f"unknown key (expected one of: {', '.join(sorted(_SETTINGS_KEYS))})")
            if k == "images" and not (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())):
                raise err(f"{key}.settings.images", "expected an object of image id -> sha256")
        metrics = entry.get("metrics")
        if not isinstance(metrics, dict):
            raise err(f"{key}.metrics", "expected an object of metric -> number")
        for m, v in list(metrics.items()):
            try:
                family, image = metric_family(m)
            except ValueError:
                family, image = m, None
            if family in RETIRED:
                del metrics[m]
                continue
            if not _known_metric(family, image):
                raise err(f"{key}.metrics.{m}", f"unknown metric (expected one of: {', '.join(FAMILIES)})")
            if not (finite(v) or undefined(v)):
                raise err(f"{key}.metrics.{m}", f'expected a finite number or "n/a (...)", got {v!r}')
    return data


def read_baseline(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The validated baseline, or None when the file does not exist. Malformed: one error line naming the file."""
    p = Path(path)
    if not p.exists():
        return None
    if not p.is_file():
        raise SlimbenchError(f"{p}: baseline is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SlimbenchError(f"{p}: baseline is not UTF-8 text ({e.reason})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SlimbenchError(
            f"{p}: malformed baseline JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            "fix it, or delete it and run with --update-baseline"
        ) from e
    return validate(data, p)


def versions() -> dict[str, str]:
    """The installed versions of the packages a baseline's figures depend on (``created_by``)."""
    from slimbench.core.versions import package_versions

    return package_versions(("slimbench", "torch", "ultralytics", "torch-pruning"), missing=None)


def render(variants: Mapping[str, Any]) -> bytes:
    """The file's bytes: stable key order (variants as given, metrics sorted) so diffs in review stay small."""
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_by": {**versions(), "written": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "variants": {
            name: {
                **({"checkpoint_sha256": e["checkpoint_sha256"]} if e.get("checkpoint_sha256") else {}),
                "settings": e.get("settings", {}),
                "metrics": dict(sorted(e.get("metrics", {}).items())),
            }
            for name, e in variants.items()
        },
    }
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")
