"""Timing for the latency planner, on the runtime the user ships: one conv alone, and a candidate against the original.

One conv (with its folded BN as a bias, and its SiLU) is timed as torch runs it, or exported alone to ONNX and run
by ONNX Runtime or OpenVINO with the suite's session settings (threads, no spinning). The candidate's ratio to the
original is the suite's own figure: interleaved pairs, the median of per-pair ratios
(:func:`slimbench.measure.timing.interleaved_ratio`), on the suite's export for the ONNX runtimes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimbench.measure.timing import forward_fn, interleaved_ratio, seeded_input, timing_model, use_threads, warm_up
from slimbench.pruning.latency_table import ConvShape, Measure

WARMUP = 3
RUNS = 9


def _median_seconds(fn: Callable[[], Any], runs: int = RUNS) -> float:
    warm_up(fn, WARMUP)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _conv_module(shape: ConvShape, ci: int, co: int) -> nn.Module:
    groups = ci if shape.depthwise else 1
    conv = nn.Conv2d(ci, co, shape.kernel, shape.stride, shape.padding, groups=groups, bias=True)
    return nn.Sequential(conv, nn.SiLU() if shape.act else nn.Identity()).eval()


def conv_measure(runtime: str, threads: int) -> Measure:
    """The conv timer of ``runtime`` (torch, onnxruntime, openvino) at ``threads`` threads."""
    if runtime == "torch":
        use_threads(threads)

        def torch_time(shape: ConvShape, ci: int, co: int) -> float:
            module = _conv_module(shape, ci, co)
            x = torch.rand(shape.batch, ci, shape.height, shape.width)
            return _median_seconds(forward_fn(module, x, "cpu"))

        return torch_time

    def file_time(shape: ConvShape, ci: int, co: int) -> float:
        module = _conv_module(shape, ci, co)
        x = torch.rand(shape.batch, ci, shape.height, shape.width)
        with tempfile.TemporaryDirectory(prefix="slimbench-conv-") as tmp:
            path = Path(tmp) / "conv.onnx"
            torch.onnx.export(module, (x,), str(path), input_names=["x"], opset_version=17, dynamo=False)
            return _median_seconds(_file_forward(runtime, path, threads, x))

    return file_time


def _file_forward(runtime: str, path: Path, threads: int, x: torch.Tensor) -> Callable[[], None]:
    from slimbench.runtimes.registry import runtime as runtime_of

    rt = runtime_of(runtime)
    assert rt.load_file is not None and rt.forward is not None
    loaded = rt.load_file(path, "cpu", threads, x.shape[0], x.shape[-1])
    return rt.forward(loaded, x.numpy())


def model_forward(yolo: Any, runtime: str, threads: int, batch: int, imgsz: int, workdir: Path) -> Callable[[], None]:
    """The timed forward of a checkpoint's model on ``runtime``, as the suite times it (fused torch model, or the
    suite's ONNX export run by ONNX Runtime / OpenVINO)."""
    x = seeded_input(batch, imgsz)
    if runtime == "torch":
        use_threads(threads)
        return forward_fn(timing_model(yolo.model), x, "cpu")
    from slimbench.model.checkpoint import save_detector, sha256_of
    from slimbench.runtimes.export import export_onnx

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = save_detector(yolo, Path(tempfile.mkdtemp(prefix="ckpt-", dir=workdir)) / "model.pt", half=False)
    exported = export_onnx(yolo, sha256_of(ckpt), imgsz, workdir / "exports", name=ckpt.stem)
    return _file_forward(runtime, exported.path, threads, x)


def model_seconds(fn: Callable[[], None]) -> float:
    """Median seconds of one forward (after warm-up)."""
    return _median_seconds(fn, runs=15)


def paired_ratio(ref: Callable[[], None], cand: Callable[[], None], pairs: int = 21) -> float:
    """The suite's speed ratio: median of candidate/reference over interleaved pairs, both warmed up."""
    warm_up(ref, WARMUP)
    warm_up(cand, WARMUP)
    return interleaved_ratio(ref, cand, pairs).median
