"""What the pruner can handle, checked in milliseconds before any graph is built.

torch-pruning traces whatever it is given and may misread (or never finish on) a block nobody rewrote for it. So
every module of the model must be one the rewrites and the head handling know: YOLOv8, YOLO11 and YOLO26 detectors
(Detect head, DFL or end-to-end). Anything else is refused with one line naming the module and what is unsupported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn
from ultralytics.nn.modules import block, conv, head

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from ultralytics import YOLO

# Exact types only: a subclass may change forward (Segment, Pose, OBB, v10Detect all subclass Detect).
SUPPORTED = frozenset(
    {
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.SiLU,
        nn.ReLU,
        nn.Identity,
        nn.MaxPool2d,
        nn.Upsample,
        nn.Sequential,
        nn.ModuleList,
        conv.Conv,
        conv.DWConv,
        conv.Concat,
        block.C2f,
        block.C3k2,
        block.C3k,
        block.Bottleneck,
        block.SPPF,
        block.C2PSA,
        block.PSABlock,
        block.Attention,
        block.DFL,
        head.Detect,
    }
)

_HEADS = {
    "Segment": "segmentation head",
    "Segment26": "segmentation head",
    "Pose": "pose head",
    "Pose26": "pose head",
    "OBB": "oriented-box (OBB) head",
    "OBB26": "oriented-box (OBB) head",
    "RTDETRDecoder": "RT-DETR decoder head",
    "v10Detect": "YOLOv10 head",
    "WorldDetect": "YOLO-World head",
    "YOLOEDetect": "YOLOE head",
    "Classify": "classification head",
}


class UnsupportedModelError(SlimbenchError):
    """The model holds a module the pruner does not handle; the message names it."""


def check_prunable(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming the first module the pruner cannot handle.

    ``model`` is a ``DetectionModel`` (or any ultralytics model: its head is checked first, so a Segment model is
    refused for its head, not for some block inside it).
    """
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or len(layers) == 0:
        raise UnsupportedModelError(f"{type(model).__name__}: not an ultralytics model (no layer list)")
    last = layers[-1]
    kind = _HEADS.get(type(last).__name__)
    if kind or type(last) is not head.Detect:
        what = kind or f"head {type(last).__name__}"
        raise UnsupportedModelError(
            f"model.{len(layers) - 1} ({type(last).__name__}): {what} is not supported; "
            "slimbench prunes detectors with a Detect head (YOLOv8, YOLO11, YOLO26)"
        )
    for name, m in layers.named_modules(prefix="model"):
        if type(m) not in SUPPORTED and m is not layers:
            raise UnsupportedModelError(
                f"{name} ({type(m).__name__}): unknown block, not supported; slimbench prunes the blocks of "
                "YOLOv8, YOLO11 and YOLO26 detectors only (Conv, C2f, C3k2, C3k, SPPF, C2PSA, Detect)"
            )


def load_prunable(path: str | Path) -> YOLO:
    """Load a detector to prune; a checkpoint holding another task's model is refused naming its head.

    :func:`model.checkpoint.load_detector` already refuses non-detectors; when ultralytics can load the file as
    some other model (Segment, Pose, OBB, RT-DETR), the error says which module is unsupported instead.
    """
    from slimbench.model.checkpoint import load_detector

    try:
        return load_detector(path)
    except SlimbenchError:
        other = _load_any(path) if Path(path).is_file() else None  # never let ultralytics fetch a missing name
        if other is not None:
            try:
                check_prunable(other)
            except UnsupportedModelError as e:
                raise UnsupportedModelError(f"{path}: {e}") from None
        raise


def _load_any(path: str | Path) -> nn.Module | None:
    from ultralytics import YOLO

    try:
        return YOLO(str(path)).model
    except Exception:  # noqa: BLE001 - load_detector's own message is the one to show
        return None
