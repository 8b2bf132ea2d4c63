"""The stored baseline: every figure that is not a timing, per variant, kept in a JSON file for the CI gate.

pytest-benchmark already stores timings (``--benchmark-autosave`` / ``--benchmark-compare``); this file covers the
rest: params, GFLOPs, sizes, channels, detection counts and agreement on the sample images, and mAP when measured.
A run compares its figures with the file using per-metric tolerances (``[baseline.tolerances]`` in the suite
config) and fails with a small diff table; ``--update-baseline`` writes the current figures instead, atomically,
and says what changed. Without that flag the file is never written. No file yet: the check is not run (a suite's
first run), with how to create it, unless ``[baseline] required = true`` or ``CI`` is true/1: then it fails.

File layout (``schema_version`` 1)::

    {"schema": "slimbench-baseline", "schema_version": 1,
     "created_by": {"slimbench": "0.1.0", "torch": "...", "ultralytics": "...", "written": "2025-...Z"},
     "variants": {"pruned": {"checkpoint_sha256": "...",
                             "settings": {"imgsz": 640, "conf": 0.25, "iou": 0.7, "match_iou": 0.5,
                                          "reference": "original", "images": {"scene": "<sha256>"}},
                             "metrics": {"params": 1234567, "gflops": 3.1, "detections[scene]": 12, ...}}}}

Each variant keeps the settings it was measured with: a metric that depends on a setting that differs in this run
(GFLOPs at another imgsz, detections at another conf) is reported as "not compared" instead of failing.
Nothing here imports pytest; the plugin builds a :class:`BaselineGate` per run and ``benchmarks/test_baseline.py``
asks it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slimbench.core.errors import SlimbenchError
from slimbench.core.metric_specs import MetricSpec, baseline_specs

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession

SCHEMA = "slimbench-baseline"
SCHEMA_VERSION = 1
DEFAULT_FILE_NAME = "baseline.json"
"""Default baseline: this name next to the suite config (``fixtures/baseline.json`` for the bundled suite)."""

NOT_RUN = "not run (no baseline yet)"
"""A variant's baseline status when there is no file yet and none is required: reported apart from passed/failed."""

Direction = Literal["max", "min", "both"]
Status = Literal["ok", "regressed", "improved", "new", "not measured", "not compared"]

# settings a metric depends on; "image" means the sha256 of the image the metric was measured on
_SHAPE: tuple[str, ...] = ()
_DETECT = ("imgsz", "conf", "iou", "image")
_AGREE = ("imgsz", "conf", "iou", "match_iou", "reference", "image")
_ACCURACY = ("accuracy_data",)  # dataset, val images and validator imgsz, as the accuracy tests recorded them
_DATASET_AGREE = ("imgsz", "conf", "iou", "reference", "agreement_data")
ACCURACY_KEYS = (
    "map50",
    "map50_95",
    "precision",
    "recall",
    "agreement_map50",
    "agreement_recall",
    "agreement_precision",
)
"""Keys of the session's ``accuracy`` figures (``slimbench.record(name, "accuracy", key, value)``) kept here."""


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move the wrong way: absolute (``0.001``) or relative to the baseline (``"1%"``)."""

    value: float = 0.0
    relative: bool = False

    def allowed(self, base: float) -> float:
        return abs(base) * self.value / 100.0 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


@dataclass(frozen=True)
class Rule:
    """A metric family: which way is a regression, the default tolerance, the settings it depends on, a format."""

    direction: Direction  # "max": above baseline + tolerance fails; "min": below; "both": either way
    tolerance: Tolerance
    depends: tuple[str, ...]
    fmt: str
    label: str


DEPENDS: dict[str, tuple[str, ...]] = {
    "gflops": ("imgsz",),
    "channels_removed_pct": ("reference",),
    "detections": _DETECT,
    "agreement_recall": _AGREE,
    "agreement_precision": _AGREE,
    **dict.fromkeys(("map50", "map50_95", "precision", "recall"), _ACCURACY),
    "agreement_map50": _DATASET_AGREE,
    "int8_weights_mb": ("calibration",),
    "int8_convs": ("calibration",),
    "cell_agreement_map50": ("imgsz", "conf", "iou", "match_iou", "calibration"),
    "cell_map50_95": (*_ACCURACY, "calibration"),
}
"""The settings each family depends on (a family not named here depends on the checkpoint alone)."""
_DIRECTIONS: dict[str, Direction] = {"lower": "max", "higher": "min", "": "both"}


def _rule(spec: MetricSpec) -> Rule:
    tol = parse_tolerance(spec.tolerance, f"metric_specs.{spec.key}")
    label = f"{spec.label}, {spec.unit}" if spec.unit else spec.label
    return Rule(_DIRECTIONS[spec.better], tol, DEPENDS.get(spec.key, _SHAPE), spec.fmt, label)


RETIRED = frozenset({"onnx_size_mb", "peak_rss_mb", "inference_mb"})
"""Metric families older baselines hold that are no longer compared (dropped on read, not written again):
``onnx_size_mb`` drifts between exports of the same checkpoint; absolute memory (``peak_rss_mb``,
``inference_mb``) depends on the environment as much as on the model: the same checkpoint, code and package versions
read 643 vs 929 MB peak RSS (32 vs 53 MB inference) in two venvs on one machine, as the shared libraries' resident
pages differ. It is reported; the gate is ``max_memory_ratio``, measured side by side in one run."""
NA_PREFIX = "n/a"
"""An undefined figure is stored as its reason (``"n/a (0 detections)"``), never as a number."""

_METRIC = re.compile(r"^(?P<family>[a-z0-9_]+)(\[(?P<image>[^\]]+)\])?$")
_PER_IMAGE = {"detections", "agreement_recall", "agreement_precision"}
_PER_KEY = {"cell_agreement_map50", "cell_map50_95"}
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


# ---------------------------------------------------------------- config ([baseline] in the suite TOML)


@dataclass(frozen=True)
class BaselineConfig:
    """The suite config's ``[baseline]`` table: where the file lives and the tolerances that override RULES."""

    path: Path | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    required: bool = False  # a missing file fails the baseline tests instead of leaving them not run

    def tolerance(self, family: str) -> Tolerance:
        return self.tolerances.get(family, RULES[family].tolerance)


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


RULES: dict[str, Rule] = {spec.key: _rule(spec) for spec in baseline_specs()}
"""Metric families, from ``slimbench.core.metric_specs`` (those with a baseline tolerance). Per-image metrics are named
``family[image]``; ``agreement_recall`` without an image is the dataset-level figure from the accuracy tests,
``agreement_recall[scene]`` the sample image's. The file size is kept though it drifts 1%; the ONNX file's size is
not (ultralytics' exporter writes a different number of shape annotations on each export of one checkpoint)."""


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
        p = Path(os.path.expanduser(raw["path"]))
        path = p if p.is_absolute() else base / p
    tol_raw = raw.get("tolerances", {})
    if not isinstance(tol_raw, dict):
        raise err("baseline.tolerances", "expected a table of metric = tolerance")
    tolerances: dict[str, Tolerance] = {}
    for k, v in tol_raw.items():
        key = f"baseline.tolerances.{k}"
        if k not in RULES:
            raise err(key, f"unknown metric (expected one of: {', '.join(RULES)})")
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


# ---------------------------------------------------------------- the file


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _undefined(value: Any) -> bool:
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
    if family not in RULES:
        return False
    if family == "detections" or family in _PER_KEY:
        return image is not None
    return image is None or family in _PER_IMAGE


def _depends(family: str, image: str | None) -> tuple[str, ...]:
    """Settings a metric depends on; the dataset-level agreement (no image) is an accuracy figure."""
    if family in _PER_IMAGE and image is None:
        return _DATASET_AGREE
    return RULES[family].depends


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
                raise err(f"{key}.metrics.{m}", f"unknown metric (expected one of: {', '.join(RULES)})")
            if not (_finite(v) or _undefined(v)):
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


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for dist in ("slimbench", "torch", "ultralytics", "torch-pruning"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def render(variants: Mapping[str, Any]) -> bytes:
    """The file's bytes: stable key order (variants as given, metrics sorted) so diffs in review stay small."""
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_by": {**_versions(), "written": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
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


# ---------------------------------------------------------------- measuring and comparing


def measure(session: SuiteSession, name: str) -> dict[str, Any]:
    """This run's baseline entry for a variant: its settings and metrics, from the session's (cached) figures."""
    from slimbench.model.checkpoint import sha256_of
    from slimbench.model.detections import agreement

    s = session.settings
    v = session.config.variants[name]
    st = session.static(name)
    metrics: dict[str, float] = {
        "params": st["params"],
        "gflops": st["gflops"],
        "file_size_mb": st["file_size_mb"],
        "normalized_size_mb": st["normalized_size_mb"],
        "total_channels": st["total_channels"],
        "zeroed_channels": st["total_zeroed_channels"],
        "channels_removed_pct": st["channels_removed_pct"],
    }
    ref = session.reference.name
    for image in session.image_paths:
        dets = session.detections(name, image)
        metrics[f"detections[{image}]"] = dets.count
        if not v.is_reference:
            agr = agreement(session.detections(ref, image), dets, s.match_iou)
            metrics[f"agreement_recall[{image}]"] = agr.shown("recall")
            metrics[f"agreement_precision[{image}]"] = agr.shown("precision")
    deployment = session.figures[name].get("deployment", {})
    for key in ("onnx_params", "onnx_weights_mb"):
        if _finite(deployment.get(key)):
            metrics[key] = deployment[key]
    # smoke mode validates on a few images: the code path, not a figure to compare or store
    accuracy = {} if session.smoke else session.figures[name].get("accuracy", {})
    for key in ACCURACY_KEYS:
        if _finite(accuracy.get(key)):
            metrics[key] = float(accuracy[key])
        elif _undefined(accuracy.get(key)):
            metrics[key] = accuracy[key]
    settings: dict[str, Any] = {
        "imgsz": s.imgsz,
        "conf": s.conf,
        "iou": s.iou,
        "match_iou": s.match_iou,
        "reference": ref,
        "images": {image: sha256_of(p) for image, p in session.image_paths.items()},
    }
    if "data" in accuracy:  # what the mAP figures depend on: the dataset, how many val images, at which size
        settings["accuracy_data"] = (
            f"{accuracy.get('data')}; {accuracy.get('val_images')} images at {accuracy.get('val_imgsz')}px"
        )
    if "agreement_images" in accuracy:
        settings["agreement_data"] = f"{accuracy.get('agreement_images')} agreement images"
    metrics.update(_matrix_metrics(session.figures[name], settings))
    return {"checkpoint_sha256": sha256_of(v.path), "settings": settings, "metrics": metrics}


def _matrix_metrics(figures: Mapping[str, Any], settings: dict[str, Any]) -> dict[str, float]:
    """The deployment matrix's deterministic figures: the INT8 file's weights, and each cell's agreement and mAP
    (cell ``ort-int8``, ``ov-fp32``...). INT8 figures depend on the calibration set, added to ``settings``."""
    out: dict[str, float] = {}
    int8 = figures.get("int8", {})
    for key in ("int8_weights_mb", "int8_convs"):
        if _finite(int8.get(key)):
            out[key] = float(int8[key])
    if int8.get("calibration_sha256"):
        settings["calibration"] = int8["calibration_sha256"]
    for cell, acc in figures.get("matrix_accuracy", {}).items():
        for family, key in (("cell_agreement_map50", "agreement_map50"), ("cell_map50_95", "map50_95")):
            if _finite(acc.get(key)):
                out[f"{family}[{cell}]"] = float(acc[key])
    return out


@dataclass(frozen=True)
class Row:
    """One metric of one variant compared with the baseline."""

    metric: str
    baseline: float | str | None
    now: float | str | None
    limit: str
    status: Status
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("metric", "baseline", "now", "limit", "status", "note")}


def _fmt(family: str, value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # an undefined figure: its reason
        return value
    return RULES[family].fmt.format(value)


def _setting_differs(family: str, image: str | None, base: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """Why a metric cannot be compared (a setting it depends on differs), or None."""
    for key in _depends(family, image):
        if key == "image":
            if image is None:
                continue
            b, n = base.get("images", {}).get(image), now.get("images", {}).get(image)
            if b is not None and n is not None and b != n:
                return f"image {image} changed since the baseline"
            continue
        if key in base and key in now and base[key] != now[key]:
            return f"baseline {key} {base[key]}, now {now[key]}"
    return None


def _floor(family: str, value: float | str | None) -> bool:
    """A defined 0.0 on a higher-is-better figure (recall, precision, mAP): nothing lower to lose or gain from."""
    return _finite(value) and value == 0 and RULES[family].direction == "min"


def _compare_undefined(metric: str, b: float | str, n: float | str | None, why: str | None) -> Row:
    """A metric undefined on one side or both. Undefined -> defined is an improvement and the reverse a lost
    figure, except at 0.0: a candidate that found nothing reads precision n/a (0 of 0) and recall 0.0, and older
    baselines stored its recall as n/a too, so n/a <-> 0.0 is no change in the model: not compared, and said so."""
    family, _ = metric_family(metric)
    if n is None:
        return Row(metric, b, None, "-", "not measured", "not measured in this run")
    if why:
        return Row(metric, b, n, "-", "not compared", why)
    if isinstance(b, str) and isinstance(n, str):
        return Row(metric, b, n, "n/a", "ok")
    if _floor(family, n):
        return Row(metric, b, n, "-", "not compared", "undefined in the baseline, 0 now; --update-baseline stores it")
    if _floor(family, b):
        return Row(metric, b, n, "-", "not compared", "0 in the baseline, undefined now (0 of 0)")
    if isinstance(n, str):  # measured before, undefined now: the figure was lost
        return Row(metric, b, n, f"{_fmt(family, b)}, defined", "regressed", "undefined now")
    return Row(metric, b, n, "-", "improved", "undefined in the baseline")


def compare(base: Mapping[str, Any], now: Mapping[str, Any], config: BaselineConfig | None = None) -> list[Row]:
    """Compare two entries of one variant, metric by metric (baseline order, then metrics new in this run)."""
    config = config or BaselineConfig()
    b_metrics, n_metrics = base.get("metrics", {}), now.get("metrics", {})
    b_settings, n_settings = base.get("settings", {}), now.get("settings", {})
    rows: list[Row] = []
    order = list(RULES)
    metrics = [*b_metrics, *(m for m in n_metrics if m not in b_metrics)]
    metrics.sort(key=lambda m: (order.index(metric_family(m)[0]), m))  # params first, mAP last, as in the report
    for metric in metrics:
        family, image = metric_family(metric)
        rule, tol = RULES[family], config.tolerance(family)
        b, n = b_metrics.get(metric), n_metrics.get(metric)
        if b is None:
            rows.append(Row(metric, None, n, "-", "new", "not in the baseline; --update-baseline adds it"))
            continue
        if isinstance(b, str) or isinstance(n, str):  # undefined on one side or both ("n/a (0 detections)")
            rows.append(_compare_undefined(metric, b, n, _setting_differs(family, image, b_settings, n_settings)))
            continue
        allowed = tol.allowed(b)
        tol_note = f" ({'+' if rule.direction == 'max' else '-' if rule.direction == 'min' else '±'}{tol})"
        if rule.direction == "max":
            limit = f"<= {_fmt(family, b + allowed)}{tol_note if tol.value else ''}"
        elif rule.direction == "min":
            limit = f">= {_fmt(family, b - allowed)}{tol_note if tol.value else ''}"
        else:
            limit = f"{_fmt(family, b)} ± {_fmt(family, allowed)}" if allowed else f"== {_fmt(family, b)}"
        if n is None:
            rows.append(Row(metric, b, None, limit, "not measured", "not measured in this run"))
            continue
        why = _setting_differs(family, image, b_settings, n_settings)
        if why:
            rows.append(Row(metric, b, n, limit, "not compared", why))
            continue
        worse_up, worse_down = n > b + allowed, n < b - allowed
        if rule.direction == "max":
            status: Status = "regressed" if worse_up else "improved" if worse_down else "ok"
        elif rule.direction == "min":
            status = "regressed" if worse_down else "improved" if worse_up else "ok"
        else:
            status = "regressed" if worse_up or worse_down else "ok"
        rows.append(Row(metric, b, n, limit, status))
    return rows


def diff_table(rows: list[Row], statuses: tuple[str, ...] = ("regressed",)) -> list[str]:
    """The rows with the given statuses as an aligned text table: metric, baseline, now, limit."""
    picked = [r for r in rows if r.status in statuses]
    if not picked:
        return []
    cells = [("metric", "baseline", "now", "limit")]
    for r in picked:
        family, _ = metric_family(r.metric)
        cells.append(
            (r.metric, _fmt(family, r.baseline), _fmt(family, r.now), r.limit + (f"  {r.note}" if r.note else ""))
        )
    w = [max(len(c[i]) for c in cells) for i in range(3)]
    return [f"  {c[0]:<{w[0]}}  {c[1]:>{w[1]}}  {c[2]:>{w[2]}}  {c[3]}".rstrip() for c in cells]


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What an update changes in one variant's entry, one line per metric (empty when nothing changed)."""
    if old is None:
        return ["added"]
    out: list[str] = []
    om, nm = old.get("metrics", {}), new.get("metrics", {})
    order = list(RULES)
    for m in sorted({*om, *nm}, key=lambda m: (order.index(metric_family(m)[0]), m)):
        family, _ = metric_family(m)
        if m not in nm:
            out.append(f"{m} {_fmt(family, om[m])} -> (removed)")
        elif m not in om:
            out.append(f"{m} (new) {_fmt(family, nm[m])}")
        elif om[m] != nm[m]:
            out.append(f"{m} {_fmt(family, om[m])} -> {_fmt(family, nm[m])}")
    if old.get("settings") != new.get("settings"):
        out.append("settings changed")
    if old.get("checkpoint_sha256") != new.get("checkpoint_sha256"):
        out.append("checkpoint changed")
    return out


def merge_entry(old: Mapping[str, Any] | None, now: Mapping[str, Any]) -> dict[str, Any]:
    """This run's entry plus the old metrics it did not measure, where the settings they depend on still hold."""
    if old is None:
        return dict(now)
    settings = dict(now.get("settings", {}))
    metrics = dict(now.get("metrics", {}))
    old_settings = old.get("settings", {})
    for key in ("accuracy_data", "agreement_data", "calibration"):  # recorded only by some tests: keep the old ones
        if key not in settings and key in old_settings:
            settings[key] = old_settings[key]
    for metric, value in old.get("metrics", {}).items():
        if metric in metrics:
            continue
        family, image = metric_family(metric)
        if image is not None and family not in _PER_KEY and image not in settings.get("images", {}):
            continue  # the image is not part of the suite any more
        if _setting_differs(family, image, old_settings, settings) is None:
            metrics[metric] = value
    return {**now, "settings": settings, "metrics": metrics}


# ---------------------------------------------------------------- one run's gate


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
        shown = self.path.relative_to(Path.cwd()) if self.path.is_relative_to(Path.cwd()) else self.path
        return f"create it with `pytest {self.suite} --update-baseline`, review {shown} and commit it"

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
    if explicit:
        p = Path(os.path.expanduser(explicit))
        path = p if p.is_absolute() else cwd / p
    else:
        path = default_path(config_source, config.path, rootdir)
    required = required_by(config, config_source, os.environ if env is None else env)
    return BaselineGate(path, update, config, required, suite)


def check_variant(session: SuiteSession, name: str) -> Outcome:
    """Measure a variant, compare it with the stored baseline and record the outcome in the session's figures."""
    gate = session.baseline
    if gate is None:
        raise SlimbenchError("no baseline gate in this session (the suite plugin sets one up)")
    outcome = gate.check(name, measure(session, name))
    for key, value in outcome.as_dict().items():
        session.record(name, "baseline", key, value)
    return outcome
