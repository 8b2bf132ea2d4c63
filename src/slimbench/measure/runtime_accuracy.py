"""Detections of a deployed file in any runtime, and the INT8 accuracy gate.

ultralytics' predictor runs ONNX files only through ONNX Runtime, yet every cell of the deployment matrix
(OpenVINO, INT8) needs its own detections to be scored against the FP32 checkpoint. Here the runtime is just a
function from an input batch to the raw output; preprocessing is the export's (:func:`runtimes.quantize.preprocess`,
a square letterbox) and decoding is ultralytics' own NMS and box scaling, so a cell's boxes are what the
predictor would give on the same input.

INT8 parity is not exact, so INT8 cells are gated by accuracy, not by raw outputs: ``max_int8_map50_95_drop``
(the FP32 checkpoint's mAP50-95 minus the INT8 file's, on the dataset) and ``min_int8_agreement_map50`` (the INT8
file's detections scored against the checkpoint's boxes, :func:`slimbench.measure.accuracy.agreement_score`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from slimbench.model.detections import Detections

Infer = Callable[[np.ndarray], np.ndarray]
"""A runtime as seen here: ``1x3xHxW`` float32 in, the model's first output (``1 x (4 + nc) x anchors``) out."""


def decode(
    output: np.ndarray, image_shape: tuple[int, ...], imgsz: int, conf: float, iou: float, max_det: int = 300
) -> Detections:
    """Boxes of one image from the raw output: ultralytics' NMS, then boxes scaled back to the original image."""
    import torch
    from ultralytics.utils import nms, ops

    pred = nms.non_max_suppression(torch.from_numpy(np.asarray(output, np.float32)), conf, iou, max_det=max_det)[0]
    if pred.shape[0] == 0:
        return Detections()
    boxes = ops.scale_boxes((imgsz, imgsz), pred[:, :4].clone(), tuple(image_shape[:2])).numpy()
    confs = pred[:, 4].numpy()
    order = np.argsort(-confs, kind="stable")
    return Detections(boxes[order], pred[:, 5].numpy().astype(np.int64)[order], confs[order])


def runtime_detections(
    infer: Infer, images: Sequence[np.ndarray], imgsz: int, conf: float, iou: float
) -> list[Detections]:
    """Detections of a runtime on each BGR image (one image per call: batch 1, as deployed)."""
    from slimbench.runtimes.quantize import preprocess

    return [decode(infer(preprocess(img, imgsz)), img.shape, imgsz, conf, iou) for img in images]


def defined(x: float | None) -> float | None:
    """A figure for JSON and gates: NaN (undefined, e.g. the reference found no boxes) becomes None."""
    return None if x is None or x != x else float(x)


def int8_violations(
    variant: str,
    cell: str,
    map50_95_drop: float | None,
    agreement_map50: float | None,
    max_drop: float | None,
    min_agreement: float | None,
    note: str = "",
) -> list[str]:
    """The INT8 gate's broken limits, one line each naming the variant and the cell (``ort-int8``, ``ov-int8``).

    A limit of None is not gated; a figure that could not be measured (None/NaN) against a limit is a violation.
    """
    from slimbench.config.suite import violation

    lines = [
        violation(f"{variant} {cell}", "INT8 mAP50-95 drop", map50_95_drop, max_drop, "max", "{:.3f}", note),
        violation(f"{variant} {cell}", "INT8 agreement mAP50", agreement_map50, min_agreement, "min", "{:.3f}", note),
    ]
    return [line for line in lines if line]
