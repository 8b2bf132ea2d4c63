"""The suite config: which checkpoints to compare, against which reference, how, and with which limits.

One TOML file per suite (``fixtures/slimbench.toml`` by default)::

    reference = "original"

    [settings]                      # all optional
    imgsz = 640                     # forward / predict / GFLOPs image size (multiple of 32)
    batch = [1, 8]
    device = ["cpu", "cuda"]        # cuda is skipped with a reason when absent
    images = ["images/scene.jpg"]   # paths relative to this file
    conf = 0.25                     # detection confidence threshold
    iou = 0.7                       # NMS IoU
    match_iou = 0.5                 # IoU for a candidate box to agree with a reference box
    warmup = 3                      # untimed calls before timing
    speed_pairs = 9                 # interleaved (reference, candidate) pairs of the speed gate's first look
    speed_pairs_max = 61            # its cap: 8 more pairs per look while the 95% interval straddles the limit
    seed = 0                        # seed of the timing input
    half = false                    # time FP16 on CUDA (the CPU always runs FP32)
    data = "data/data.yaml"         # dataset YAML for mAP [the bundled synthetic val split]
    agreement_images = "images"     # folder of unlabeled images for agreement [the sample images]
    val_imgsz = 256                 # validator image size [the dataset's training size]
    runtime = ["torch", "onnxruntime"]  # runtimes to time; onnxruntime is skipped with a reason where absent
    threads = [1, 4]                # CPU threads per timing, torch and ONNX Runtime alike [the CPUs available]
    parity_atol = 0.001             # ONNX vs torch raw outputs: |onnx - torch| <= atol + rtol * |torch|
    parity_rtol = 0.001
    memory = true                   # peak memory per variant, runtime and batch (a fresh process each)
    attribution = true              # where the time goes: per-layer latency per variant and runtime, batch 1

    [variants.original]
    path = "models/original.pt"     # relative to this file
    sha256 = "..."                  # optional pin, checked before unpickling

    [thresholds.pruned]             # any subset of THRESHOLD_KEYS
    max_params_ratio = 0.45

    [baseline]                      # optional: the stored baseline (slimbench.config.baseline)
    path = "baseline.json"          # relative to this file [baseline.json next to it]
    required = true                 # no file fails the run [false: not run; CI=true or 1 fails too]
    tolerances = { gflops = 0.001, file_size_mb = "1%" }   # absolute, or "N%" of the baseline value

Everything is validated strictly (unknown keys, wrong types, unknown variants): a mistake is one
:class:`SlimbenchError` line naming the file and the key; a setting's value is checked by :mod:`config.values`.
Command line overrides are merged on top by :func:`slimbench.config.overrides.apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from slimbench.config.baseline import BaselineConfig, parse_baseline_config
from slimbench.config.values import VARIANT_NAME, check_device, check_imgsz, parse_precisions, parse_runtimes
from slimbench.core import metric_specs
from slimbench.core.errors import SlimbenchError
from slimbench.core.files import read_text, resolve_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REFERENCE = "reference"
CANDIDATE = "candidate"
Role = Literal["reference", "candidate"]


@dataclass(frozen=True)
class Variant:
    """One checkpoint under test. ``sha256`` (if set) is checked before the file is unpickled."""

    name: str
    path: Path
    sha256: str | None = None
    role: Role = CANDIDATE

    @property
    def is_reference(self) -> bool:
        return self.role == REFERENCE


def _is_empty(self: Any) -> bool:
    return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


Thresholds = dataclasses.make_dataclass(
    "Thresholds",
    [(k, "float | None", dataclasses.field(default=None)) for k in metric_specs.limit_keys()],
    frozen=True,
    namespace={"is_empty": _is_empty, "__module__": __name__},
)
Thresholds.__doc__ = """Limits for one variant, one field per limit key of ``core.metric_specs``; ``None`` means
not gated (the figure is still measured and reported). ``*_ratio`` limits are relative to the reference variant
measured in the same run; sizes are in MB (1e6 bytes), GFLOPs at the suite's imgsz, batch 1."""

THRESHOLD_KEYS: tuple[str, ...] = metric_specs.limit_keys()
_INT_THRESHOLDS = metric_specs.integer_limit_keys()


@dataclass(frozen=True)
class Settings:
    """How the suite measures; every field can come from ``[settings]`` and most from the command line."""

    imgsz: int = 640
    batch: tuple[int, ...] = (1, 8)
    device: tuple[str, ...] = ("cpu",)
    images: tuple[Path, ...] = ()
    conf: float = 0.25
    iou: float = 0.7
    match_iou: float = 0.5
    warmup: int = 3
    speed_pairs: int = 9  # pairs of the speed gate's first look (measure.paired_gate); the matrix's pairs vs torch
    speed_pairs_max: int = 61  # the gate's cap, never below speed_pairs (an old speed_pairs = 100 still holds)
    seed: int = 0
    half: bool = False  # time FP16 on CUDA devices (the CPU always runs FP32)
    data: Path | None = None  # dataset YAML for mAP; None: the bundled synthetic val split (slimbench.measure.accuracy)
    agreement_images: Path | None = None  # folder (or image) for agreement; None: the sample images
    val_imgsz: int | None = None  # validator image size; None: the dataset's training size (slimbench.measure.accuracy)
    runtime: tuple[str, ...] = ("torch", "onnxruntime")  # onnxruntime tests skip with the reason where it is absent
    parity_atol: float = 1e-3  # exported vs checkpoint raw outputs: |onnx - torch| <= atol + rtol * |torch|
    parity_rtol: float = 1e-3
    memory: bool = True  # peak memory per variant x runtime x batch, each in a fresh process
    attribution: bool = True  # per-layer latency per variant x runtime at batch 1 (measure.attribution)
    threads: tuple[int, ...] = ()  # CPU threads per timing; empty: the CPUs available to the process (its affinity)
    precision: tuple[str, ...] = ()  # deployment matrix precisions ("fp32", "int8"); empty: the matrix is off
    calibration: Path | None = None  # INT8 calibration images; None: the dataset's val split or agreement images


SETTINGS_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))


@dataclass(frozen=True)
class SuiteConfig:
    """A validated suite: variants (reference first), settings, thresholds by variant name."""

    reference: str
    variants: dict[str, Variant]
    settings: Settings = field(default_factory=Settings)
    thresholds: dict[str, Thresholds] = field(default_factory=dict)
    source: Path | None = None  # the TOML file, for messages
    baseline: BaselineConfig = field(default_factory=BaselineConfig)  # [baseline]: file and tolerances
    replaced: tuple[str, ...] = ()  # variants of the file whose checkpoint the command line replaced
    unlimited: dict[str, str] = field(default_factory=dict)  # variant -> why the file's limits were not applied

    def is_replaced(self, name: str) -> bool:
        """Whether ``--variant NAME=PATH`` replaced this variant's checkpoint (its limits and pin were dropped)."""
        return name in self.replaced

    @property
    def candidates(self) -> list[Variant]:
        return [v for v in self.variants.values() if not v.is_reference]

    def limits(self, name: str) -> Thresholds:
        return self.thresholds.get(name, Thresholds())


# ---------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str]) -> SuiteConfig:
    """Read and validate a suite TOML; relative paths inside it are relative to the file."""
    p = Path(path)
    try:
        data = tomllib.loads(read_text(p, "variants file"))
    except tomllib.TOMLDecodeError as e:
        raise SlimbenchError(f"{p}: malformed TOML: {' '.join(str(e).split())}") from e
    return config_from_dict(data, base=p.parent, source=p)


def config_from_dict(data: dict[str, Any], base: Path, source: Path | None = None) -> SuiteConfig:
    """Validate an already parsed config; ``base`` anchors relative paths. Errors name ``source`` and the key."""
    where = str(source) if source else "config"

    def err(key: str, what: str) -> SlimbenchError:
        return SlimbenchError(f"{where}: {key}: {what}")

    _no_unknown(data, {"reference", "settings", "variants", "thresholds", "baseline"}, "", err)

    raw_variants = data.get("variants")
    if raw_variants is None or raw_variants == {}:
        raise err("variants", "no variants defined (add [variants.NAME] tables with a path)")
    if not isinstance(raw_variants, dict):
        raise err("variants", f"expected tables [variants.NAME], got {_tname(raw_variants)}")
    reference = data.get("reference")
    if reference is None:
        raise err("reference", "missing (name the variant the others are compared with)")
    if not isinstance(reference, str):
        raise err("reference", f"expected a variant name (string), got {_tname(reference)}")

    variants: dict[str, Variant] = {}
    for name, spec in raw_variants.items():
        key = f"variants.{name}"
        _check_name(name, key, err)
        if not isinstance(spec, dict):
            raise err(key, f"expected a table with path (and sha256), got {_tname(spec)}")
        _no_unknown(spec, {"path", "sha256"}, key + ".", err)
        if "path" not in spec:
            raise err(key + ".path", "missing")
        rel = spec["path"]
        if not isinstance(rel, str) or not rel.strip():
            raise err(key + ".path", f"expected a non-empty string, got {_tname(rel)}")
        sha = spec.get("sha256")
        if sha is not None:
            sha = _check_sha(sha, key + ".sha256", err)
        variants[name] = Variant(name, resolve_path(rel, base), sha)

    if reference not in variants:
        raise err("reference", f"{reference!r} is not a variant (variants: {', '.join(variants)})")

    settings = _settings(data.get("settings", {}), base, err, where)
    thresholds = _thresholds(data.get("thresholds", {}), variants, err)
    baseline = parse_baseline_config(data.get("baseline", {}), base, err)
    return replace(assemble_config(reference, variants, settings, thresholds, source), baseline=baseline)


def assemble_config(
    reference: str,
    variants: dict[str, Variant],
    settings: Settings,
    thresholds: dict[str, Thresholds],
    source: Path | None,
) -> SuiteConfig:
    """Set roles and put the reference first (its figures are needed before the candidates' ratios)."""
    ordered = {reference: replace(variants[reference], role=REFERENCE)}
    for name, v in variants.items():
        if name != reference:
            ordered[name] = replace(v, role=CANDIDATE)
    return SuiteConfig(reference, ordered, settings, thresholds, source)


def _settings(raw: Any, base: Path, err: Callable[[str, str], SlimbenchError], where: str) -> Settings:
    if not isinstance(raw, dict):
        raise err("settings", f"expected a table [settings], got {_tname(raw)}")
    _no_unknown(raw, set(SETTINGS_KEYS), "settings.", err)
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        k = f"settings.{key}"
        if key in {"imgsz", "val_imgsz"}:
            kw[key] = check_imgsz(_int(value, k, err), f"{where}: {k}")
        elif key in {"data", "agreement_images", "calibration"}:
            if not isinstance(value, str) or not value.strip():
                raise err(k, f"expected a non-empty path (string), got {_tname(value)}")
            kw[key] = resolve_path(value.strip(), base)
        elif key in {"batch", "threads"}:
            kw[key] = tuple(dict.fromkeys(_int(v, k, err, minimum=1) for v in _list(value, k, err, int)))
        elif key == "device":
            kw[key] = tuple(check_device(str(v), f"{where}: {k}") for v in _list(value, k, err, str, split=True))
        elif key == "images":
            kw[key] = tuple(resolve_path(str(v), base) for v in _list(value, k, err, str))
        elif key in {"conf", "iou", "match_iou"}:
            v = _number(value, k, err)
            if not 0.0 <= v <= 1.0:
                raise err(k, f"expected a number between 0 and 1, got {value}")
            kw[key] = v
        elif key in {"warmup", "seed"}:
            kw[key] = _int(value, k, err, minimum=0)
        elif key in {"speed_pairs", "speed_pairs_max"}:
            kw[key] = _int(value, k, err, minimum=1)
        elif key == "runtime":
            kw[key] = parse_runtimes(_list(value, k, err, str, split=True), f"{where}: {k}")
        elif key == "precision":
            kw[key] = parse_precisions(_list(value, k, err, str, split=True), f"{where}: {k}")
        elif key in {"parity_atol", "parity_rtol"}:
            v = _number(value, k, err)
            if v < 0:
                raise err(k, f"expected a number >= 0, got {value}")
            kw[key] = v
        elif key in {"half", "memory", "attribution"}:
            if not isinstance(value, bool):
                raise err(k, f"expected true or false, got {_tname(value)} {value!r}")
            kw[key] = value
    # a cap set below the first look is a mistake; the default cap yields to a larger speed_pairs (older configs)
    if "speed_pairs_max" in kw and kw["speed_pairs_max"] < kw.get("speed_pairs", Settings.speed_pairs):
        raise err("settings.speed_pairs_max", f"{kw['speed_pairs_max']} is below settings.speed_pairs")
    return Settings(**kw)


def _thresholds(
    raw: Any, variants: dict[str, Variant], err: Callable[[str, str], SlimbenchError]
) -> dict[str, Thresholds]:
    if not isinstance(raw, dict):
        raise err("thresholds", f"expected tables [thresholds.NAME], got {_tname(raw)}")
    out: dict[str, Thresholds] = {}
    for name, spec in raw.items():
        key = f"thresholds.{name}"
        if name not in variants:
            raise err(key, f"{name!r} is not a variant (variants: {', '.join(variants)})")
        if not isinstance(spec, dict):
            raise err(key, f"expected a table of limits, got {_tname(spec)}")
        _no_unknown(spec, set(THRESHOLD_KEYS), key + ".", err)
        kw: dict[str, Any] = {}
        for k, v in spec.items():
            kk = f"{key}.{k}"
            if k in _INT_THRESHOLDS:
                kw[k] = _int(v, kk, err, minimum=0)
            else:
                kw[k] = _number(v, kk, err)
                if kw[k] < 0:
                    raise err(kk, f"expected a number >= 0, got {v}")
        out[name] = Thresholds(**kw)
    return out


# ---------------------------------------------------------------- helpers


def _tname(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _no_unknown(d: dict[str, Any], allowed: set[str], prefix: str, err: Callable[[str, str], SlimbenchError]) -> None:
    for k in d:
        if k not in allowed:
            raise err(f"{prefix}{k}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _check_name(name: str, key: str, err: Callable[[str, str], SlimbenchError]) -> None:
    if not VARIANT_NAME.match(name):
        raise err(key, "variant names are letters, digits, '_', '-', '.' (they become test ids)")


def _check_sha(value: Any, key: str, err: Callable[[str, str], SlimbenchError]) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise err(key, "expected 64 hex digits")
    return value.strip().lower()


def _int(value: Any, key: str, err: Callable[[str, str], SlimbenchError], minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(key, f"expected an integer, got {_tname(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise err(key, f"expected an integer >= {minimum}, got {value}")
    return value


def _number(value: Any, key: str, err: Callable[[str, str], SlimbenchError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise err(key, f"expected a number, got {_tname(value)} {value!r}")
    return float(value)


def _list(
    value: Any, key: str, err: Callable[[str, str], SlimbenchError], item: type, split: bool = False
) -> Sequence[Any]:
    """A list of ``item`` or one ``item`` (``batch = 1`` and ``device = "cpu,cuda"`` are accepted)."""
    if isinstance(value, str) and split:
        value = [v.strip() for v in value.split(",")]
    elif isinstance(value, item) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise err(key, f"expected a non-empty list of {item.__name__}, got {_tname(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, item):
            raise err(key, f"expected a list of {item.__name__}, got an item {v!r}")
    return value
