"""Configured limits this run cannot measure, found before any test runs.

A skipped check would leave a configured gate green without a figure; the plugin stops the run at start instead,
unless the test that would judge the limit was deselected (``-m "not accuracy"``): that is the user's explicit
choice, reported as "not run (deselected)". Smoke mode is an explicit choice too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from slimbench.config.suite import Settings, SuiteConfig


class _Accuracy(Protocol):
    def agreement_images(self) -> Sequence[Path]: ...


class RunInputs(Protocol):
    """What the check reads of a run (the suite session has it): config, settings, sample images, accuracy."""

    config: SuiteConfig
    settings: Settings
    image_paths: Mapping[str, Any]

    @property
    def accuracy(self) -> _Accuracy: ...

    def map_unsupported(self) -> str | None: ...

    def nms_free_unsupported(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class Unmeasurable:
    """A configured limit this run cannot measure: the variant, the limit key and the one line that says why."""

    variant: str
    limit: str
    line: str


def unmeasurable_limits(session: RunInputs) -> list[str]:
    """Configured limits this run cannot measure, one line each naming the limit and what is missing."""
    return [u.line for u in unmeasurable(session)]


def unmeasurable(session: RunInputs) -> list[Unmeasurable]:
    """Configured limits this run cannot measure, each with the line naming the limit and what is missing (see the
    module doc)."""
    cfg, s = session.config, session.settings
    where = f"{cfg.source}: " if cfg.source else ""
    from slimbench.runtimes.registry import missing_reason

    missing: dict[str, str | None] = {
        "min_count_ratio": None if session.image_paths else "no sample images (settings.images or --image)",
        "max_speed_ratio": None if "torch" in s.runtime else "torch is not in settings.runtime / --runtime",
        "max_ort_speed_ratio": (
            "onnxruntime is not in settings.runtime / --runtime"
            if "onnxruntime" not in s.runtime
            else missing_reason("onnxruntime")
        ),
        "max_memory_ratio": None if s.memory else "settings.memory = false",
        "max_map50_95_drop": session.map_unsupported(),
        "min_agreement_map50": None
        if session.accuracy.agreement_images()
        else ("no agreement images (--agreement-images DIR, settings.agreement_images or settings.images)"),
    }
    for key in ("max_count_ratio", "min_agreement_recall", "min_agreement_precision"):
        missing[key] = missing["min_count_ratio"]
    int8_off = "int8 is not in settings.precision / --precision (the deployment matrix, marker matrix)"
    missing["min_int8_agreement_map50"] = (
        int8_off
        if "int8" not in s.precision
        else None
        if {"onnxruntime", "openvino"} & set(s.runtime)
        else "neither onnxruntime nor openvino is in settings.runtime / --runtime"
    )
    missing["max_int8_map50_95_drop"] = (
        int8_off
        if "int8" not in s.precision
        else (None if "onnxruntime" in s.runtime else "onnxruntime is not in settings.runtime / --runtime")
        or session.map_unsupported()
    )
    out = []
    for v in cfg.candidates:
        limits = cfg.limits(v.name)
        own = {}  # what depends on the variant's own head, asked only where its limit is set
        if limits.max_map50_95_nms_free_drop is not None:
            own["max_map50_95_nms_free_drop"] = session.nms_free_unsupported(v.name)
        for key, why in {**missing, **own}.items():
            if why and getattr(limits, key) is not None:
                line = f"{where}thresholds.{v.name}.{key} is set but cannot be measured in this run: {why}"
                out.append(Unmeasurable(v.name, key, line))
    return out
