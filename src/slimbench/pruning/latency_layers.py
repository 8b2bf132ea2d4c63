"""Which layers cost a YOLO detector its CPU latency, beyond their share of FLOPs: they get a larger sparsity share.

Measured on the bundled YOLOv8n at 640 (per-layer forward hooks, torch and ONNX Runtime, 2 threads): with the same
share pruned from every layer, the pruned model ran at 0.38-0.44 of the original although its GFLOPs were 0.24x. The
time left was in the high-resolution feature maps (stride 2 to 8: memory-bound convs and activations whose widths
the rounding to multiples of 8 keeps at half), the Detect head's towers (two 3x3 convs per scale at full P3
resolution, cut only to half by the same rounding) and SPPF's cv1 (ahead of its three max-pools). Pruning those
harder (0.75 instead of 0.6; two rebuilds of the bundled set, the suite's interleaved pairs at b1) measured 0.28-0.34
in torch and 0.35-0.37 in ONNX Runtime, at GFLOPs 0.137x; the sparse model's mAP50-95 fell from 0.765 to 0.71 (README).
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.block import SPPF
from ultralytics.nn.modules.head import Detect

from slimbench.core.errors import SlimbenchError
from slimbench.pruning.sparsity import batchnorms

HIGH_RES_STRIDE = 8  # P3, the finest map the head reads


@torch.no_grad()
def output_strides(model: nn.Module, imgsz: int = 64) -> dict[int, int]:
    """Output stride of each top-level layer of a ``DetectionModel`` (one pass at ``imgsz``); the head left out."""
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise SlimbenchError(f"expected an ultralytics DetectionModel, got {type(model).__name__}")
    sizes: dict[int, int] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, i=i: sizes.__setitem__(i, out.shape[-1]))
        for i, m in enumerate(layers)
        if not isinstance(m, Detect)
    ]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters())
        model(torch.zeros(1, 3, imgsz, imgsz, device=param.device, dtype=param.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {i: imgsz // s for i, s in sizes.items()}


def latency_heavy_layers(model: nn.Module) -> list[str]:
    """Module names (``model.<i>``...) to sparsify harder: every layer at stride <= 8, SPPF's cv1, the Detect head.

    Only modules holding a BatchNorm are named (an Upsample or Concat has no channels of its own to prune).
    """
    strides = output_strides(model)
    names: list[str] = []
    for i, layer in enumerate(model.model):
        if isinstance(layer, Detect):
            names.append(f"model.{i}")
        elif isinstance(layer, SPPF):
            names.append(f"model.{i}.cv1")
        elif strides.get(i, 0) and strides[i] <= HIGH_RES_STRIDE and batchnorms(layer):
            names.append(f"model.{i}")
    return names


def heavy_layer_targets(model: nn.Module, share: float) -> tuple[tuple[str, float], ...]:
    """A recipe's ``layer_targets``: ``share`` for each of :func:`latency_heavy_layers`."""
    return tuple((name, share) for name in latency_heavy_layers(model))
