"""Per-node times of an ONNX file as ONNX Runtime and OpenVINO run it: the raw material of the latency attribution.

- ONNX Runtime: session profiling (``SessionOptions.enable_profiling``) writes a Chrome trace at ``end_profiling()``;
  each ``model_run`` event is one call, and the ``Node`` events inside its span (``<node name>_kernel_time``) are its
  nodes, named as in the graph (``/model.22/dfl/Softmax``), plus the layout reorders the CPU provider inserted
  around its blocked-format convolutions (``ReorderInput_token_17``), which carry no module's name.
- OpenVINO: ``PERF_COUNT`` on the compiled model and ``InferRequest.get_profiling_info()`` after each call: one entry
  per executed layer with its real time; fused layers keep the name of one ONNX node (``/model.0/conv/Conv``).

Both run a separate, profiling session or compiled model built by the project's own builders (same threads, no
spinning, same hints), never the timed one: profiling costs a little time per node. Mapping nodes to model layers is
not done here (:mod:`slimbench.measure.attribution`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class NodeTime:
    """One node of one call: its name in the graph, its op (or layer) type, and the seconds it ran."""

    name: str
    op: str
    seconds: float


@dataclass(frozen=True)
class Profiled:
    """The profiled calls of one model: per call, its nodes' times and the call's wall time, and the wall time of the
    unprofiled call timed right after each (``beside``; empty when none was given). Same order throughout."""

    calls: list[list[NodeTime]] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    beside_s: list[float] = field(default_factory=list)


def timed_call(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ort_profile(
    path: str | Path,
    x: np.ndarray,
    threads: int,
    calls: int = 5,
    warmup: int = 3,
    device: str = "cpu",
    beside: Callable[[], Any] | None = None,
) -> Profiled:
    """``calls`` profiled runs of the ONNX file in ONNX Runtime (after ``warmup`` runs), each with its nodes' times;
    ``beside`` (the same model's timed, unprofiled callable) is timed right after each, so both see the same load.

    The session comes from :func:`slimbench.runtimes.onnx_runtime.session` (the stated intra-op threads, spinning
    off), with profiling on; its trace goes to a temporary folder, read and deleted here.
    """
    from slimbench.runtimes import onnx_runtime as ort_runtime

    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    with tempfile.TemporaryDirectory(prefix="slimbench-ort-profile-") as tmp:
        sess = ort_runtime.session(path, device, threads, profile_prefix=Path(tmp) / "ort")
        run = ort_runtime.forward_fn(sess, x)
        for _ in range(max(0, warmup)):
            run()
        wall, other = _alternate(run, beside, calls)
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text(encoding="utf-8"))
    return Profiled(ort_calls(events, calls), wall, other)


def _alternate(profiled: Callable[[], Any], beside: Callable[[], Any] | None, calls: int) -> tuple[list, list]:
    """Wall times of ``calls`` profiled calls, each followed by one of ``beside`` (when given)."""
    wall, other = [], []
    for _ in range(calls):
        wall.append(timed_call(profiled))
        if beside is not None:
            other.append(timed_call(beside))
    return wall, other


def ort_calls(events: list[dict[str, Any]], last: int) -> list[list[NodeTime]]:
    """The node times of the ``last`` calls in an ONNX Runtime trace: the ``Node`` events inside each ``model_run``
    span (microseconds in the trace, seconds here)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=_ts)[-last:]
    nodes = sorted(
        (e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(KERNEL_SUFFIX)), key=_ts
    )
    out = []
    for run in runs:
        start, end = _ts(run), _ts(run) + float(run.get("dur", 0))
        out.append(
            [
                NodeTime(
                    str(e["name"])[: -len(KERNEL_SUFFIX)],
                    str(e.get("args", {}).get("op_name", "")),
                    float(e.get("dur", 0)) / 1e6,
                )
                for e in nodes
                if start <= _ts(e) <= end
            ]
        )
    return out


def _ts(event: dict[str, Any]) -> float:
    return float(event.get("ts", 0))


def openvino_profile(
    path: str | Path,
    x: np.ndarray,
    threads: int,
    calls: int = 5,
    warmup: int = 3,
    device: str = "cpu",
    beside: Callable[[], Any] | None = None,
) -> Profiled:
    """``calls`` profiled inferences of the ONNX file in OpenVINO (after ``warmup``), each with its layers' real times;
    ``beside`` timed right after each, as in :func:`ort_profile`.

    The model is compiled by :func:`slimbench.runtimes.openvino_runtime.compile_model` for the input's static shape,
    with the stated threads and ``PERF_COUNT`` on; layers that did not run (fused into another) are left out.
    """
    from slimbench.runtimes import openvino_runtime as ov_runtime

    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    compiled = ov_runtime.compile_model(path, device, threads, int(x.shape[0]), int(x.shape[-1]), profiling=True)
    request = compiled.create_infer_request()
    feed = {0: np.ascontiguousarray(x, dtype=np.float32)}
    for _ in range(max(0, warmup)):
        request.infer(feed)
    out: list[list[NodeTime]] = []

    def run() -> None:  # the counters of the last call are read right after it, outside the timed span of the next
        request.infer(feed)

    wall, other = [], []
    for _ in range(calls):
        w, o = _alternate(run, beside, 1)
        wall += w
        other += o
        out.append(
            [
                NodeTime(str(p.node_name), str(p.node_type), p.real_time.total_seconds())
                for p in request.get_profiling_info()
                if p.real_time.total_seconds() > 0
            ]
        )
    return Profiled(out, wall, other)
