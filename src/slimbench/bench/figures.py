"""What a run measured of each variant, as one typed record per variant: identity, one attribute per aspect, and the
checks that judged them. Written by the suite's tests (``bench.checks``, ``bench.store``, ``bench.matrix``,
``bench.baseline_check``), read by the reports as attributes; ``as_dict()`` is what ``summary.json`` holds per variant.

Keyed aspects map a key (a timing key such as ``cpu-b1-t2-640``, an image id, a matrix cell) to a record: the
producer's typed record where it has one (``SpeedRatio``, ``Agreement``, ``Attribution``), else its plain record as
its owner in ``measure/``, ``model/`` or ``runtimes/`` returns it (``Detections.as_dict()``, ``latency_figures()``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slimbench.measure.attribution import Attribution
    from slimbench.measure.timing import SpeedRatio
    from slimbench.model.detections import Agreement

Record = dict[str, Any]
"""One producer's plain record (JSON-ready), e.g. a timed cell's ``latency_figures()``."""


@dataclass
class Check:
    """One verdict: a figure of ``metric`` (in ``cell``, when it has one) judged against a variant's ``limit`` at
    ``bound`` (``None`` for checks no numeric limit expresses: parity, class names, the stored baseline). A figure
    decided on an interval (the speed ratio) says how in ``decision``: "pass", "fail" or "close" (a close pass has
    its line as ``message``)."""

    metric: str
    cell: str | None
    limit: str | None
    bound: Any
    value: Any
    passed: bool
    message: str | None = None
    decision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "metric": self.metric,
            "cell": self.cell,
            "limit": self.limit,
            "bound": self.bound,
            "value": self.value,
            "passed": self.passed,
            "message": self.message,
        }
        if self.decision is not None:
            out["decision"] = self.decision
        return out


KEYED = (
    "deployment",
    "forward",
    "speed_ratio",
    "memory",
    "memory_ratio",
    "detections",
    "agreement",
    "accuracy",
    "int8",
    "matrix",
    "matrix_accuracy",
    "matrix_vs_torch",
    "attribution",
    "baseline",
)
"""The aspects recorded key by key (``Figures.record``), in the order ``as_dict`` writes them."""
TYPED = ("speed_ratio", "agreement", "attribution")
"""Keyed aspects whose records are typed (each with its own ``as_dict()``), not plain dicts."""


@dataclass
class VariantFigures:
    """Everything a run recorded of one variant (see the module doc)."""

    name: str
    role: str
    path: str
    sha256: str | None
    stored_dtype: str | None = None
    class_names: dict[int, str] | None = None
    static: Record | None = None  # model.static_metrics' record plus the ratios against the reference
    parity: Record | None = None  # the ONNX export against the checkpoint (bench.store.VariantStore.parity)
    deployment: Record = field(default_factory=dict)  # the ONNX export's info (runtimes.export.Exported) or its error
    forward: dict[str, Record] = field(default_factory=dict)  # timing key -> latency_figures()
    speed_ratio: dict[str, SpeedRatio] = field(default_factory=dict)  # timing key -> interleaved pairs' ratio
    memory: dict[str, Record] = field(default_factory=dict)  # timing key -> peak memory
    memory_ratio: dict[str, Record] = field(default_factory=dict)  # timing key -> memory against the reference
    detections: dict[str, Record] = field(default_factory=dict)  # image id -> Detections.as_dict() + conf, iou
    agreement: dict[str, Agreement] = field(default_factory=dict)  # image id -> agreement with the reference
    accuracy: Record = field(default_factory=dict)  # the validator's figures, agreement on a dataset, map50_95_drop
    int8: Record = field(default_factory=dict)  # the INT8 file (runtimes.quantize) or its error
    matrix: dict[str, Record] = field(default_factory=dict)  # matrix cell -> latency_figures() + the cell's axes
    matrix_accuracy: dict[str, Record] = field(default_factory=dict)  # runtime-precision -> agreement, mAP
    matrix_vs_torch: dict[str, Record] = field(default_factory=dict)  # matrix cell -> pairs against torch FP32
    attribution: dict[str, Attribution] = field(default_factory=dict)  # timing key (batch 1) -> time per layer
    baseline: Record = field(default_factory=dict)  # the stored baseline's comparison (bench.baseline_check)
    checks: list[Check] = field(default_factory=list)
    extra: dict[str, Record] = field(default_factory=dict)  # sections a user's own test records under its own name

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        """The variant's entry in ``summary.json``: identity, then every aspect recorded (none empty)."""
        out: dict[str, Any] = {"name": self.name, "role": self.role, "path": self.path, "sha256": self.sha256}
        if self.stored_dtype is not None:
            out["stored_dtype"] = self.stored_dtype
        if self.class_names is not None:
            out["class_names"] = self.class_names
        if self.static is not None:
            out["static"] = self.static
        if self.parity is not None:
            out["parity"] = self.parity
        for section in KEYED:
            records = getattr(self, section)
            if records and section in TYPED:
                out[section] = {k: r.as_dict() for k, r in records.items()}
            elif records:
                out[section] = records
        if self.checks:
            out["checks"] = [c.as_dict() for c in self.checks]
        out.update(self.extra)
        return out


class Figures(dict[str, VariantFigures]):
    """The figures collected per variant, ``figures[name]``: a :class:`VariantFigures` each."""

    def record(self, name: str, section: str, key: str, value: Any) -> None:
        """Store one figure of an aspect recorded key by key (plain data only, for reports); a section this module
        does not know (a user's own test) is kept under ``extra`` and written to ``summary.json`` as it is."""
        figs = self[name]
        if section in TYPED and isinstance(value, Mapping):
            raise TypeError(f"figures section {section!r} holds typed records, not a dict")
        if section in KEYED:
            getattr(figs, section)[key] = value
        elif section in ("static", "parity"):
            if getattr(figs, section) is None:
                setattr(figs, section, {})
            getattr(figs, section)[key] = value
        elif section in ("stored_dtype", "class_names", "checks", "name", "role", "path", "sha256"):
            raise ValueError(f"figures section {section!r} is not recorded key by key")
        else:
            figs.extra.setdefault(section, {})[key] = value
