"""Detections of a deployed file in any runtime, decoded as ultralytics' predictor decodes them.

ultralytics' predictor runs ONNX files only through ONNX Runtime, yet every cell of the deployment matrix
(OpenVINO, INT8) needs its own detections to be scored against the FP32 checkpoint. Here the runtime is just a
function from an input batch to the raw output; preprocessing is the export's (:func:`runtimes.quantize.preprocess`,
a square letterbox) and decoding is ultralytics' own NMS and box scaling, so a cell's boxes are what the
predictor would give on the same input.

This module measures; it does not gate. The INT8 gate is in the shipped suite's ``suite/test_matrix.py``:
``test_cell_agreement`` scores a cell's detections (:meth:`bench.matrix.DeployMatrix.agreement`, with
:func:`slimbench.measure.agreement.agreement_score`) and ``test_cell_map`` measures its mAP, and both hand the figure
to the suite session's ``judge`` (bench/), which holds it against ``min_int8_agreement_map50`` /
``max_int8_map50_95_drop`` as ``core/metric_specs.py`` declares them.
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
