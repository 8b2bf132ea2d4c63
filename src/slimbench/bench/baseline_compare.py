"""Comparing a run's baseline entry with the stored one: per-metric rules, the rows, the diff table, the update.

A metric family's rule says which way is a regression, its default tolerance and format (all from
``slimbench.core.metric_specs``) and the settings it depends on: a metric whose setting differs in this run (GFLOPs
at another imgsz, detections at another conf) is "not compared" instead of failing. Pure functions over the entries
of :mod:`slimbench.bench.baseline_store`; :mod:`slimbench.bench.baseline_gate` turns the rows into a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slimbench.bench.baseline_store import PER_IMAGE, PER_KEY, finite, metric_family
from slimbench.config.baseline import DEFAULT_TOLERANCES, BaselineConfig, Tolerance
from slimbench.core.metric_specs import DATASET_ACCURACY_KEYS, MetricSpec, baseline_specs

Direction = Literal["max", "min", "both"]
Status = Literal["ok", "regressed", "improved", "new", "not measured", "not compared"]

# settings a metric depends on; "image" means the sha256 of the image the metric was measured on
_SHAPE: tuple[str, ...] = ()
_DETECT = ("imgsz", "conf", "iou", "image")
_AGREE = ("imgsz", "conf", "iou", "match_iou", "reference", "image")
_ACCURACY = ("accuracy_data",)  # dataset, val images and validator imgsz, as the accuracy tests recorded them
_DATASET_AGREE = ("imgsz", "conf", "iou", "reference", "agreement_data")


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
    **dict.fromkeys(DATASET_ACCURACY_KEYS, _ACCURACY),
    "agreement_map50": _DATASET_AGREE,
    "int8_weights_mb": ("calibration",),
    "int8_convs": ("calibration",),
    "cell_agreement_map50": ("imgsz", "conf", "iou", "match_iou", "calibration"),
    "cell_map50_95": (*_ACCURACY, "calibration"),
}
"""The settings each family depends on (a family not named here depends on the checkpoint alone)."""
_DIRECTIONS: dict[str, Direction] = {"lower": "max", "higher": "min", "": "both"}


def _rule(spec: MetricSpec) -> Rule:
    label = f"{spec.label}, {spec.unit}" if spec.unit else spec.label
    return Rule(_DIRECTIONS[spec.better], DEFAULT_TOLERANCES[spec.key], DEPENDS.get(spec.key, _SHAPE), spec.fmt, label)


RULES: dict[str, Rule] = {spec.key: _rule(spec) for spec in baseline_specs()}
"""Metric families, from ``slimbench.core.metric_specs`` (those with a baseline tolerance). Per-image metrics are named
``family[image]``; ``agreement_recall`` without an image is the dataset-level figure from the accuracy tests,
``agreement_recall[scene]`` the sample image's. The file size is kept though it drifts 1%; the ONNX file's size is
not (ultralytics' exporter writes a different number of shape annotations on each export of one checkpoint)."""


def _depends(family: str, image: str | None) -> tuple[str, ...]:
    """Settings a metric depends on; the dataset-level agreement (no image) is an accuracy figure."""
    if family in PER_IMAGE and image is None:
        return _DATASET_AGREE
    return RULES[family].depends


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
    return finite(value) and value == 0 and RULES[family].direction == "min"


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
        if image is not None and family not in PER_KEY and image not in settings.get("images", {}):
            continue  # the image is not part of the suite any more
        if _setting_differs(family, image, old_settings, settings) is None:
            metrics[metric] = value
    return {**now, "settings": settings, "metrics": metrics}
