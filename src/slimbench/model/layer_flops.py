"""GFLOPs per attribution row (:mod:`slimbench.model.layers`): what a layer's latency ratio is read against.

Counted with forward hooks on every convolution and linear layer (2 x multiply-accumulates, ultralytics' unit), the
fallback count of :func:`slimbench.model.static_metrics.gflops`, on one image at ``imgsz``: within about 2% of
ultralytics' total for YOLO detectors. Left out, as there: BatchNorm, activations, pooling, concatenation and the
head's decode arithmetic, and an attention block's matrix products (YOLO11/YOLO26's C2PSA), so a row without
convolutions reads 0 GFLOPs and has no GFLOPs ratio.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from torch import nn

    from slimbench.model.layers import LayerName


def layer_gflops(model: Any, imgsz: int, names: list[LayerName] | None = None) -> dict[str, float]:
    """GFLOPs of one image (batch 1, ``imgsz`` pixels) per row key; every row of ``names`` present (0.0 for none).

    Runs a private FP32 CPU copy in eval mode, so the caller's model is untouched.
    """
    import torch

    from slimbench.model.layers import key_of_path, layer_names
    from slimbench.model.static_metrics import counts_macs, input_channels, module_macs, unwrap

    net: nn.Module = copy.deepcopy(unwrap(model)).float().cpu().eval()
    rows = names if names is not None else layer_names(net)
    macs = {n.key: 0 for n in rows}
    handles = []
    for path, module in net.named_modules():
        key = key_of_path(path, rows) if counts_macs(module) else None
        if key is None:
            continue

        def hook(m: nn.Module, _inp: Any, out: Any, key: str = key) -> None:
            macs[key] += module_macs(m, out)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            net(torch.zeros(1, input_channels(net), imgsz, imgsz))
    except Exception as e:  # noqa: BLE001 - said in one line, naming the size
        raise SlimbenchError(
            f"cannot count per-layer GFLOPs at imgsz {imgsz}: {type(e).__name__}: {str(e)[:200]}"
        ) from e
    finally:
        for h in handles:
            h.remove()
    return {k: 2 * v / 1e9 for k, v in macs.items()}
