"""OpenVINO: the compiled model a deployed variant runs as on Intel targets, the callable benchmarks time, parity.

The same ONNX files as ONNX Runtime (FP32 export, INT8 QDQ file: OpenVINO's low-precision transformations turn
QDQ pairs into INT8 kernels), read by OpenVINO's ONNX frontend. The caller states the thread count
(``INFERENCE_NUM_THREADS``) so runtimes are compared on the same cores; the latency hint (one stream) is what a
batch-1 edge detector wants, and FP32 inference precision is asked for explicitly so a CPU with bf16 support does
not silently time bf16. The input is reshaped to the timed batch and image size before compiling: a static shape
is how OpenVINO is deployed and lets it pick its fastest kernels. GPU runs where OpenVINO sees one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import openvino

DEVICES = {"cpu": "CPU", "gpu": "GPU"}
"""slimbench device names -> OpenVINO device names (``gpu`` / ``gpu.1`` / ``cuda`` map to OpenVINO's GPU)."""


class NoDevice(RuntimeError):
    """OpenVINO has no such device here (a reason to skip, not a failure)."""


def missing_reason() -> str | None:
    """Why OpenVINO cannot run here (the module does not import), or None."""
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"openvino not installed ({e})"
    return None


_CORE: Any = None


def core() -> openvino.Core:
    """One ``openvino.Core`` per process (creating one loads every device plugin)."""
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


def ov_device(device: str) -> tuple[str | None, str]:
    """(OpenVINO device name, or None when there is none here; a note saying which or why not)."""
    name = device.upper()
    if device == "cpu":
        return "CPU", "CPU"
    if device.startswith(("gpu", "cuda")):
        _, _, idx = device.partition(":")
        name = f"GPU.{idx}" if idx else "GPU"
        available = list(core().available_devices)
        if name in available or (name == "GPU" and any(d.startswith("GPU") for d in available)):
            return name, name
        return None, f"OpenVINO sees no {name} device (available: {', '.join(available)})"
    return None, f"no OpenVINO device for {device!r} in slimbench"


def compile_model(
    path: str | Path,
    device: str = "cpu",
    num_threads: int = 1,
    batch: int | None = None,
    imgsz: int | None = None,
    profiling: bool = False,
) -> openvino.CompiledModel:
    """The ONNX file compiled for ``device`` with the stated threads and the latency hint; static input shape when
    ``batch`` and ``imgsz`` are given. ``profiling``: per-layer performance counters on (``PERF_COUNT``, read by
    :mod:`slimbench.runtimes.profiling`); never on a timed model."""
    target, why = ov_device(device)
    if target is None:
        raise NoDevice(why)
    c = core()
    model = c.read_model(str(path))
    if batch is not None and imgsz is not None:
        model.reshape({model.inputs[0].any_name: [batch, 3, imgsz, imgsz]})
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if target == "CPU":
        config.update(INFERENCE_NUM_THREADS=int(num_threads), NUM_STREAMS=1, INFERENCE_PRECISION_HINT="f32")
    if profiling:
        config["PERF_COUNT"] = "YES"
    return c.compile_model(model, target, config)


def threads_of(compiled: openvino.CompiledModel) -> int:
    """The thread count the compiled model runs with (as OpenVINO reports it)."""
    return int(compiled.get_property("INFERENCE_NUM_THREADS"))


def run(compiled: openvino.CompiledModel, x: np.ndarray) -> np.ndarray:
    """The model's first output for input ``x`` (N x 3 x H x W, float32)."""
    request = compiled.create_infer_request()
    request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
    return np.array(request.get_output_tensor(0).data, copy=True)


def forward_fn(compiled: openvino.CompiledModel, x: np.ndarray) -> Callable[[], None]:
    """The callable a benchmark times: one synchronous inference on a fixed input, on a request made once."""
    request = compiled.create_infer_request()
    feed = {0: np.ascontiguousarray(x, dtype=np.float32)}

    def forward() -> None:
        request.infer(feed)

    return forward


def validator_model(onnx_path: Path) -> Path:
    """The ONNX file as an OpenVINO IR folder ultralytics' validator loads (``<stem>_openvino_model/``), cached.

    ultralytics runs OpenVINO from an IR folder with a ``metadata.yaml`` (class names, stride, image size), not from
    an ONNX file (which it sends to ONNX Runtime), so an OpenVINO cell's mAP needs this folder. Weights stay FP32
    (``compress_to_fp16=False``) so the cell is scored as it is timed; the folder's name carries the ONNX file's
    sha256, so a rebuilt ONNX file gets a new folder.
    """
    import ast

    import onnx
    import openvino as ov
    import yaml

    from slimbench.model.checkpoint import sha256_of

    folder = onnx_path.parent / f"{onnx_path.stem}-{sha256_of(onnx_path)[:12]}_openvino_model"
    xml = folder / f"{onnx_path.stem}.xml"
    meta_file = folder / "metadata.yaml"
    if xml.is_file() and xml.with_suffix(".bin").is_file() and meta_file.is_file():
        return folder
    meta: dict[str, Any] = {}
    for prop in onnx.load(str(onnx_path), load_external_data=False).metadata_props:
        try:
            meta[prop.key] = ast.literal_eval(prop.value)
        except (ValueError, SyntaxError):
            meta[prop.key] = prop.value
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(tmp / xml.name), compress_to_fp16=False)
    (tmp / meta_file.name).write_text(yaml.safe_dump(meta, sort_keys=False))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder
