"""What the report knows besides the session's figures: the failures and benchmark rounds the report plugin saw,
and the machine and settings the run had (the environment table).

Gathered by :mod:`slimbench.report.hooks` while the tests run; read by the rows, the verdicts and the summary.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.versions import package_versions

if TYPE_CHECKING:
    from slimbench.bench.session import SuiteSession

VERSIONS = (
    "slimbench",
    "torch",
    "ultralytics",
    "torch-pruning",
    "pytest-benchmark",
    "pytest-html",
    "onnxruntime",
    "openvino",
)
"""The packages whose behaviour the figures depend on, as the environment table names them (the runtimes' too: a
fleet report tells testbeds apart by them)."""


@dataclass
class Failure:
    """A failed test of one variant, as the report plugin saw it (timed cell or image, first message line, phase).
    Which test it was is not kept: a user's renamed copy of the suite reports the same."""

    variant: str
    key: str | None
    message: str
    when: str = "call"


@dataclass
class RunFacts:
    """What the report plugin gathered besides the session figures: failures and raw benchmark rounds."""

    failures: list[Failure] = field(default_factory=list)
    rounds: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # "cpu-b1", "ort-cpu-b1" -> variant -> s
    predict: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> device -> median s
    benchmark_regressions: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, str | None] = field(default_factory=dict)


# ---------------------------------------------------------------- environment


def cpu_name() -> str:
    """The CPU model as the OS names it (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA)."""
    try:
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU" for a report
        pass
    return []


def versions() -> dict[str, str]:
    """Versions of the packages whose behaviour the figures depend on."""
    return {"python": platform.python_version(), **package_versions(VERSIONS, missing="not installed")}


def omp_wait_policy() -> str:
    """``OMP_WAIT_POLICY`` as this run had it: a pruned model's 2-thread torch ratio moves with it (docs/method.md)."""
    return os.environ.get("OMP_WAIT_POLICY") or "unset"


def environment(session: SuiteSession, baseline_path: Path | None = None) -> dict[str, Any]:
    """The environment table: package versions, machine, and the settings that shape every figure."""
    import torch

    from slimbench.measure.timing import available_cpus

    s = session.settings
    gpus = gpu_names()
    return {
        **versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),  # x86_64, aarch64, arm64
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "threads": list(s.threads),
        "threads_oversubscribed": session.oversubscribed(),  # counts above available_cpus: timings of contention
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": omp_wait_policy(),
        "gpu": ", ".join(gpus) if gpus else "none",
        "devices": list(s.device),
        "imgsz": s.imgsz,
        "batches": list(s.batch),
        "conf": s.conf,
        "iou": s.iou,
        "match_iou": s.match_iou,
        "speed_pairs": s.speed_pairs,  # the speed gate's first look; more while the interval straddles a limit
        "speed_pairs_max": s.speed_pairs_max,
        "images": [str(p) for p in session.image_paths.values()],
        "reference": session.config.reference,
        "thresholds_file": str(session.config.source) if session.config.source else "none (--variant only)",
        "limits_not_applied": dict(session.config.unlimited),
        "baseline_file": str(baseline_path) if baseline_path else "none",
        "smoke": session.smoke,
    }
