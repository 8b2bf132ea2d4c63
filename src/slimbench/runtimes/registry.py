"""One interface to the runtimes the suite times: torch, ONNX Runtime and OpenVINO, by the name a config gives.

Every place that asks "is this runtime here?", "how is a file loaded and timed in it?" asks :func:`runtime` instead of
comparing names, so a runtime is added in one place. torch runs the checkpoint itself (its fused timing copy is made
in ``measure.timing``); the others run an ONNX file (FP32 export or INT8 QDQ file), loaded once per run in
:class:`Runners`, the run's one cache of ONNX Runtime sessions and OpenVINO compiled models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimbench.runtimes import onnx_runtime as ort_runtime
from slimbench.runtimes import openvino_runtime as ov_runtime
from slimbench.runtimes import profiling

UNAVAILABLE: tuple[type[Exception], ...] = (ort_runtime.NoProvider, ov_runtime.NoDevice)
"""A runtime without the asked device here: a reason to skip, not a failure."""


@dataclass(frozen=True)
class Runtime:
    """A runtime by its config name: whether it is installed and, for one that runs ONNX files, how to load a file
    and call it."""

    name: str
    missing: Callable[[], str | None]
    # path, device, threads, batch, imgsz -> the loaded file (None: the runtime runs the checkpoint, not a file)
    load_file: Callable[[Path, str, int, int | None, int | None], Any] | None = None
    run: Callable[[Any, np.ndarray], np.ndarray] | None = None  # first output for one input
    forward: Callable[[Any, np.ndarray], Callable[[], None]] | None = None  # the timed callable on a fixed input
    static_batch: bool = False  # compiled for one batch size: one loaded runner per batch
    validator_file: Callable[[Path], Path] = lambda path: path  # what ultralytics' validator loads for this runtime
    # path, input, threads, calls, warmup, device, beside -> per-node times of each call (runtimes.profiling)
    profile: Callable[..., profiling.Profiled] | None = None

    @property
    def runs_file(self) -> bool:
        """Whether the runtime runs an ONNX file (else it runs the checkpoint: torch)."""
        return self.load_file is not None

    def missing_reason(self) -> str | None:
        """Why the runtime cannot run here (not installed), or None."""
        return self.missing()


def _ort_load(path: Path, device: str, threads: int, batch: int | None, imgsz: int | None) -> Any:
    return ort_runtime.session(path, device, threads)  # dynamic batch: one session serves every batch size


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime("torch", lambda: None),
    "onnxruntime": Runtime(
        "onnxruntime",
        ort_runtime.missing_reason,
        _ort_load,
        ort_runtime.run,
        ort_runtime.forward_fn,
        profile=profiling.ort_profile,
    ),
    "openvino": Runtime(
        "openvino",
        ov_runtime.missing_reason,
        ov_runtime.compile_model,
        ov_runtime.run,
        ov_runtime.forward_fn,
        static_batch=True,
        validator_file=ov_runtime.validator_model,  # ultralytics runs OpenVINO from an IR folder
        profile=profiling.openvino_profile,
    ),
}
"""Config name -> runtime (the names of ``core.timing_key.RUNTIMES``)."""
FILE_RUNTIMES: tuple[str, ...] = tuple(n for n, r in RUNTIMES.items() if r.runs_file)
"""The runtimes that run the ONNX files (FP32 export and INT8 QDQ file): the deployment matrix's."""


def runtime(name: str) -> Runtime:
    """The runtime of a config name; an unknown name is a ValueError."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r} (expected one of {', '.join(RUNTIMES)})") from None


def missing_reason(name: str) -> str | None:
    """Why runtime ``name`` cannot run here, or None."""
    return runtime(name).missing_reason()


class Runners:
    """The run's one cache of loaded files: an ONNX Runtime session per file, device and thread count; an OpenVINO
    compiled model per file, device, thread count and batch (static input shape at ``imgsz``)."""

    def __init__(self, imgsz: int) -> None:
        self.imgsz = imgsz
        self._loaded: dict[tuple[Any, ...], Any] = {}

    def get(self, name: str, path: Path, device: str, threads: int, batch: int | None = None) -> Any:
        """The file loaded in runtime ``name``; a failure to load raises as the runtime raised it, and is not kept."""
        rt = runtime(name)
        if rt.load_file is None:
            raise ValueError(f"{name} does not run ONNX files")
        key = (name, str(path), device, batch if rt.static_batch else None, threads)
        if key not in self._loaded:
            self._loaded[key] = rt.load_file(path, device, threads, batch, self.imgsz)
        return self._loaded[key]
