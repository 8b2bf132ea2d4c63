"""INT8 versions of the exported variants: post-training static quantization with ONNX Runtime's own tools.

Edge users ship INT8, so the deployment view must time and score the INT8 file, not only the FP32 export.

- **Method**: ``onnxruntime.quantization.quantize_static``, QDQ format (QuantizeLinear/DequantizeLinear pairs that
  ONNX Runtime fuses into integer kernels and that OpenVINO also executes in INT8, so one file serves both),
  per-channel symmetric INT8 weights, UINT8 activations with MinMax ranges from calibration images. The ONNX shape
  inference and graph clean-up of ``quant_pre_process`` run first (as ONNX Runtime advises; when it fails on a
  graph the original file is quantized and the reason recorded).
- **Types, checked on the bundled fine-tuned variant at 256 px (mean abs error of the boxes vs the checkpoint)**:
  signed INT8 activations suit ONNX Runtime (0.93 px) but not OpenVINO (7.3 px: it wants unsigned asymmetric
  activations); UINT8 activations with full-range per-channel weights lose accuracy in both (3.1 px) on a CPU
  without VNNI (AVX2's u8 x s8 multiply-add saturates 16-bit sums); UINT8 activations with 7-bit weights
  (``reduce_range``) give 0.90 px in ONNX Runtime and 0.91 px in OpenVINO. That is the default: one file, both
  runtimes, any x86 CPU.
- **The Detect head's decoding stays FP32**: its final Concat puts box coordinates (0..imgsz) and class scores
  (0..1) in one tensor; one INT8 scale for both rounds every score to 0 or a few coarse steps (checked: no
  detections at all). Every node of the head except its conv towers (``cv2``/``cv3``) is excluded, as
  ultralytics' own OpenVINO INT8 export excludes the same part from NNCF.
- **Calibration**: images preprocessed exactly as the export's input (letterbox to imgsz with grey 114 padding,
  BGR to RGB, /255, NCHW float32), batch 1. An empty folder or an image that does not decode is one
  :class:`SlimbenchError` line naming the path.
- **Cache** (``<cache>/int8/``), like :mod:`runtimes.export`: keyed by the FP32 export's key (checkpoint sha256,
  imgsz, ultralytics version), the onnxruntime version, the calibration set's sha256 and the settings' digest; a
  sidecar JSON holds the INT8 file's sha256, checked before every use (a tampered file is rebuilt, never loaded).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import IMAGE_SUFFIXES, images_in
from slimbench.model.checkpoint import sha256_of
from slimbench.runtimes.export import SIDECAR_SUFFIX, _read_sidecar, store_in_cache, verify

SUBDIR = "int8"
HEAD_TOWERS = ("cv2.", "cv3.", "cv4.")
"""Conv towers of ultralytics' Detect head (box, class; cv4 for pose/segment heads): quantized like the backbone."""


@dataclass(frozen=True)
class QuantSettings:
    """How the INT8 file is made; every field is part of the cache key and printed in the report."""

    calibrate_method: str = "MinMax"  # onnxruntime.quantization.CalibrationMethod name
    per_channel: bool = True
    weight_type: str = "QInt8"  # QuantType name; symmetric (ORT's default for signed weights)
    activation_type: str = "QUInt8"  # asymmetric; what OpenVINO's INT8 kernels take (see module doc)
    quant_format: str = "QDQ"
    reduce_range: bool = True  # 7-bit weights: no 16-bit saturation on CPUs without VNNI
    max_images: int = 64  # calibration images used (the first, by sorted path)
    preprocess: bool = True  # quant_pre_process: shape inference and graph clean-up first
    keep_head_fp32: bool = True  # the Detect head's decoding is not quantized (see module doc)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """One line for the report: method, per-channel setting, types."""
        per = "per-channel" if self.per_channel else "per-tensor"
        head = ", Detect head decoding in FP32" if self.keep_head_fp32 else ""
        bits = " (7-bit range)" if self.reduce_range else ""
        return (
            f"ONNX Runtime static {self.quant_format}, {self.calibrate_method} calibration, {per} {self.weight_type}"
            f"{bits} weights, {self.activation_type} activations{head}"
        )


DEFAULT_SETTINGS = QuantSettings()


# --------------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A calibration image set: the files (sorted, at most ``max_images``) and their combined sha256."""

    source: Path
    files: tuple[Path, ...]
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "calibration": str(self.source),
            "calibration_images": len(self.files),
            "calibration_sha256": self.sha256,
        }


def calibration_set(
    source: str | Path | Sequence[str | Path], max_images: int = DEFAULT_SETTINGS.max_images
) -> Calibration:
    """The calibration images of a folder (recursively), one image, or a list of files; hashed by name and content.

    An empty folder or a missing path is one :class:`SlimbenchError` line naming it.
    """
    if isinstance(source, (str, Path)):
        root = Path(source)
        if not root.exists():
            raise SlimbenchError(f"{root}: calibration images not found")
        files = [root] if root.is_file() else images_in(root)
        if not files:
            raise SlimbenchError(f"{root}: no calibration images in the folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
    else:
        files = sorted(Path(p) for p in source)
        if not files:
            raise SlimbenchError("no calibration images given")
        root = files[0].parent
    files = files[: max(1, max_images)]
    h = hashlib.sha256()
    for f in files:
        if not f.is_file():
            raise SlimbenchError(f"{f}: calibration image not found")
        h.update(f.name.encode() + b"\0" + sha256_of(f).encode() + b"\n")
    return Calibration(root, tuple(files), h.hexdigest())


def preprocess(image_bgr: np.ndarray, imgsz: int) -> np.ndarray:
    """One image as the exported model takes it: letterbox to ``imgsz`` (grey 114), RGB, /255, ``1x3xHxW`` float32."""
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox((imgsz, imgsz), auto=False)(image=image_bgr)
    rgb = np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))
    return (rgb.astype(np.float32) / 255.0)[None]


def load_calibration(calibration: Calibration, imgsz: int) -> list[np.ndarray]:
    """Every calibration image decoded and preprocessed; one that does not decode is one line naming it."""
    from slimbench.model.detections import read_image

    out = []
    for f in calibration.files:
        try:
            out.append(preprocess(read_image(f), imgsz))
        except SlimbenchError as e:
            raise SlimbenchError(f"{f}: calibration image does not decode ({str(e).split(': ', 1)[-1]})") from None
    return out


def data_reader(batches: Iterable[np.ndarray], input_name: str) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over preprocessed batches (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = list(batches)
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(self.batches):
                return None
            self.i += 1
            return {input_name: self.batches[self.i - 1]}

        def rewind(self) -> None:
            self.i = 0

        def __len__(self) -> int:
            return len(self.batches)

    return _Reader()


# --------------------------------------------------------------------------------------------- graph facts


def head_prefix(model: Any) -> str | None:
    """Name prefix of the Detect head's nodes in an ultralytics export (``/model.22/``), found by its DFL conv."""
    for node in model.graph.node:
        if "/dfl/" in node.name:
            return node.name[: node.name.index("dfl/")]
    return None


def head_nodes_to_exclude(model: Any) -> list[str]:
    """The Detect head's nodes other than its conv towers: its decoding stays FP32."""
    prefix = head_prefix(model)
    if prefix is None:
        return []
    return [
        n.name
        for n in model.graph.node
        if n.name.startswith(prefix) and not n.name[len(prefix) :].startswith(HEAD_TOWERS)
    ]


@dataclass(frozen=True)
class GraphCounts:
    """What an ONNX file holds: INT8 initializers, QDQ nodes, convolutions and how many take INT8 weights."""

    int8_initializers: int
    quantize_linear: int
    dequantize_linear: int
    convs: int
    int8_convs: int
    fp32_initializers: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    int8_bytes: int = 0  # bytes of the INT8 initializers: the quantized weights, the same on every run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_counts(path: str | Path) -> GraphCounts:
    """Count INT8 weights and QDQ nodes of an ONNX file (the proof that quantization produced an INT8 graph)."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    int8_types = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    int8_inits = {t.name for t in g.initializer if t.data_type in int8_types}
    int8_bytes = sum(int(np.prod(t.dims, dtype=np.int64)) for t in g.initializer if t.data_type in int8_types)
    fp32 = sum(1 for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT)
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    dq_from_int8 = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in int8_inits}
    convs = [n for n in g.node if n.op_type == "Conv"]
    return GraphCounts(
        int8_initializers=len(int8_inits),
        quantize_linear=ops.get("QuantizeLinear", 0),
        dequantize_linear=ops.get("DequantizeLinear", 0),
        convs=len(convs),
        int8_convs=sum(1 for n in convs if len(n.input) > 1 and n.input[1] in dq_from_int8),
        fp32_initializers=fp32,
        ops=ops,
        int8_bytes=int8_bytes,
    )


# --------------------------------------------------------------------------------------------- quantize + cache


@dataclass(frozen=True)
class Quantized:
    """An INT8 ONNX file in the cache, verified, with how it was made."""

    path: Path
    sha256: str
    size_mb: float
    built: bool
    seconds: float
    key: str
    settings: QuantSettings
    calibration: dict[str, Any]
    preprocess_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "int8_path": str(self.path),
            "int8_sha256": self.sha256,
            "int8_size_mb": self.size_mb,
            "int8_built": self.built,
            "int8_seconds": self.seconds,
            "quantization": self.settings.describe(),
            "per_channel": self.settings.per_channel,
            "calibrate_method": self.settings.calibrate_method,
            **self.calibration,
        }


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def cache_key(fp32_key: str, calibration_sha256: str, settings: QuantSettings, version: str | None = None) -> str:
    """``<fp32 key>-int8-o<onnxruntime>-c<calibration[:12]>-q<settings[:8]>``."""
    v = version or ort_version()
    return f"{fp32_key}-int8-o{v}-c{calibration_sha256[:12]}-q{settings.digest()[:8]}"


def quantize_onnx(
    fp32_path: str | Path,
    fp32_key: str,
    checkpoint_sha256: str,
    imgsz: int,
    calibration: Calibration,
    cache_dir: str | Path,
    settings: QuantSettings = DEFAULT_SETTINGS,
    name: str = "model",
) -> Quantized:
    """The verified INT8 (QDQ) version of an FP32 export, from the cache or built now.

    A failed quantization or an undecodable calibration image is one :class:`SlimbenchError` line naming ``name``
    or the image.
    """
    folder = Path(cache_dir) / SUBDIR
    key = cache_key(fp32_key, calibration.sha256, settings)
    target = folder / f"{key}.onnx"
    expected = {
        "checkpoint_sha256": checkpoint_sha256,
        "imgsz": imgsz,
        "onnxruntime": ort_version(),
        "calibration_sha256": calibration.sha256,
        "settings": settings.as_dict(),
    }
    if verify(target, expected) is None:
        meta = _read_sidecar(target.with_suffix(SIDECAR_SUFFIX)) or {}
        return Quantized(
            target,
            str(meta["onnx_sha256"]),
            target.stat().st_size / 1e6,
            False,
            0.0,
            key,
            settings,
            calibration.as_dict(),
            str(meta.get("preprocess_note", "")),
        )
    batches = load_calibration(calibration, imgsz)  # undecodable images: one line, before any work
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".int8-{key}-", dir=folder))
    try:
        out, note = _run_quantizer(Path(fp32_path), tmp, batches, settings, name)
        data = out.read_bytes()
        digest = store_in_cache(target, data, {**expected, "preprocess_note": note})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    return Quantized(target, digest, len(data) / 1e6, True, seconds, key, settings, calibration.as_dict(), note)


def _run_quantizer(
    fp32: Path, tmp: Path, batches: list[np.ndarray], settings: QuantSettings, name: str
) -> tuple[Path, str]:
    """quant_pre_process (when asked, falling back to the raw file) then quantize_static into ``tmp``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    source, note = fp32, ""
    if settings.preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = tmp / "pre.onnx"
        try:
            # ONNX shape inference and ORT's graph clean-up; its symbolic (sympy) shape inference is skipped: on the
            # export's dynamic axes it takes ~30 s even for a tiny model and fails without auto_merge
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            source = pre
        except Exception as e:  # noqa: BLE001 - pre-processing is an optimisation; say why it was skipped
            note = f"quant_pre_process skipped ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    out = tmp / "int8.onnx"
    try:
        model = onnx.load(str(source))
        exclude = head_nodes_to_exclude(model) if settings.keep_head_fp32 else []
        quantize_static(
            model,
            str(out),
            data_reader(batches, model.graph.input[0].name),
            quant_format=QuantFormat[settings.quant_format],
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=QuantType[settings.activation_type],
            weight_type=QuantType[settings.weight_type],
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod[settings.calibrate_method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    except SlimbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - the quantizer's reason, in one line, naming the variant
        msg = " ".join(str(e).split()) or type(e).__name__
        raise SlimbenchError(f"{name}: INT8 quantization failed ({type(e).__name__}: {msg[:300]})") from e
    if not out.is_file() or out.stat().st_size == 0:
        raise SlimbenchError(f"{name}: INT8 quantization failed (the quantizer wrote no file)")
    return out, note
