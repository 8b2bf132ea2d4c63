"""Static metrics of a detector: size, parameters, GFLOPs, channels. Nothing here times anything.

Every function takes an ``ultralytics.YOLO`` wrapper or the bare ``nn.Module`` inside it, never changes the
model (no fusing, no dtype or device change, training flags restored), and works on any width, so the pruning
toolkit and the benchmark suite measure with the same code.

Units, named everywhere because they are easy to confuse:

- GFLOPs: 1e9 floating point operations for one image of ``imgsz x imgsz`` (batch 1), counted as
  ultralytics does (2 x multiply-accumulates; torch-pruning's ``count_ops_and_params`` reports MACs, half this).
- MB: 1e6 bytes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimbench.core.errors import SlimbenchError

if TYPE_CHECKING:
    from torch import nn

MB = 1e6
"""Bytes in one MB as reported by slimbench (decimal, like file managers and ultralytics' exports)."""

NORMALIZED_BYTES_PER_VALUE = 2
"""Sizes are normalised to FP16 (what ultralytics' trainer saves), so FP32 and FP16 files compare like for like."""


def unwrap(model: Any) -> nn.Module:
    """The ``nn.Module`` inside an ``ultralytics.YOLO`` wrapper (or the module itself)."""
    import torch
    from ultralytics.engine.model import Model

    # Only the ultralytics wrapper is unwrapped: a DetectionModel also has a ``.model`` (its layer Sequential).
    net = model.model if isinstance(model, Model) else model
    if not isinstance(net, torch.nn.Module):
        raise SlimbenchError(f"not a torch model: {type(model).__name__} holding {type(net).__name__}")
    return net


def count_params(model: Any) -> int:
    """Number of parameter values (trainable or not), as ultralytics' ``model.info()`` counts them."""
    return sum(p.numel() for p in unwrap(model).parameters())


def count_values(model: Any) -> int:
    """Number of floating point values in parameters and buffers: what a checkpoint has to store."""
    net = unwrap(model)
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() for t in tensors if t.is_floating_point())


def normalized_size_mb(model: Any, bytes_per_value: int = NORMALIZED_BYTES_PER_VALUE) -> float:
    """Size in MB of all floating parameters and buffers stored in one dtype (FP16 by default).

    The file size depends on how the checkpoint was saved (FP32 ``torch.save`` is twice an FP16 ultralytics
    save, and an optimizer state or EMA copy adds more); this number only depends on what the model holds.
    """
    return count_values(model) * bytes_per_value / MB


def file_size_mb(path: str | os.PathLike[str]) -> float:
    """Size of the file as stored, in MB (1e6 bytes)."""
    return Path(path).stat().st_size / MB


def param_dtypes(model: Any) -> dict[str, int]:
    """Parameter values per dtype, e.g. ``{"float16": 3011238}``."""
    counts: dict[str, int] = {}
    for p in unwrap(model).parameters():
        key = str(p.dtype).removeprefix("torch.")
        counts[key] = counts.get(key, 0) + p.numel()
    return counts


def main_dtype(model: Any) -> str:
    """The dtype holding most parameter values ("float16", "float32", ...); "none" for a model without any."""
    counts = param_dtypes(model)
    return max(counts, key=counts.__getitem__) if counts else "none"


def stored_dtype(path: str | os.PathLike[str], sha256: str | None = None) -> str:
    """The dtype the checkpoint's model is stored in (ultralytics converts to FP32 when it loads, so ask the file).

    Unpickles the file: it is checked first (exists, sha256 pin), as :func:`model.checkpoint.load_detector` does.
    """
    import torch

    from slimbench.model.checkpoint import check_file

    p = check_file(path, sha256)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - the user's file, said in one line
        raise SlimbenchError(f"{p}: cannot read checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    net = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    if not isinstance(net, torch.nn.Module):
        raise SlimbenchError(f"{p}: checkpoint holds no model")
    return main_dtype(net)


def conv_channels(model: Any) -> dict[str, int]:
    """Output channels of every convolution, by module name (``"model.0.conv"`` -> 16), in model order.

    Includes the head's output convolutions and the fixed DFL convolution, which pruning keeps: the totals of
    two variants of one architecture then differ exactly by what was removed.
    """
    from torch.nn.modules.conv import _ConvNd

    return {name: int(m.out_channels) for name, m in unwrap(model).named_modules() if isinstance(m, _ConvNd)}


def total_channels(model: Any) -> int:
    """Sum of :func:`conv_channels`."""
    return sum(conv_channels(model).values())


def _bn_after(net: nn.Module) -> dict[str, nn.Module]:
    """Map conv name -> the BatchNorm that normalises its output, for ultralytics-style ``Conv`` blocks.

    ultralytics' ``Conv`` holds ``.conv`` and ``.bn``; other blocks are matched the same way by attribute name.
    """
    import torch

    pairs: dict[str, nn.Module] = {}
    for name, m in net.named_modules():
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if (
            isinstance(conv, torch.nn.modules.conv._ConvNd)
            and isinstance(bn, torch.nn.modules.batchnorm._BatchNorm)
            and bn.num_features == conv.out_channels
        ):
            pairs[f"{name}.conv" if name else "conv"] = bn
    return pairs


def zeroed_channels(model: Any, atol: float = 0.0) -> dict[str, int]:
    """Output channels per convolution that carry nothing, by module name (every conv listed, 0 included).

    A channel is zeroed when its whole weight slice is zero (``|w| <= atol``): that is what
    ``torch.nn.utils.prune`` and other mask-only "pruning" leave behind, with the parameter count, the FLOPs and
    the speed unchanged. A channel whose BatchNorm has gamma == 0 and beta == 0 outputs zero too and is counted.
    """
    import torch

    net = unwrap(model)
    bns = _bn_after(net)
    out: dict[str, int] = {}
    with torch.no_grad():
        for name, m in net.named_modules():
            if not isinstance(m, torch.nn.modules.conv._ConvNd):
                continue
            w = m.weight.detach()
            # ConvTranspose keeps output channels in dim 1 (times groups); Conv in dim 0.
            rows = (
                w.transpose(0, 1).reshape(w.shape[1], -1)
                if m.transposed and m.groups == 1
                else w.reshape(w.shape[0], -1)
            )
            if rows.shape[0] != m.out_channels:  # grouped transposed conv: not worth the index arithmetic
                continue
            dead = rows.abs().amax(dim=1) <= atol
            bn = bns.get(name)
            if bn is not None and bn.weight is not None and bn.bias is not None:
                dead |= (bn.weight.detach().abs() <= atol) & (bn.bias.detach().abs() <= atol)
            out[name] = int(dead.sum())
    return out


def total_zeroed_channels(model: Any, atol: float = 0.0) -> int:
    """Sum of :func:`zeroed_channels`."""
    return sum(zeroed_channels(model, atol).values())


def gflops(model: Any, imgsz: int | tuple[int, int] = 640) -> float:
    """GFLOPs (1e9 FLOPs = 2 x MACs, ultralytics' unit) of one forward pass at batch 1, ``imgsz`` pixels.

    Uses ultralytics' own counter (thop), the number ``model.info()`` prints, on a private FP32 CPU copy so the
    caller's model is untouched whatever its device, dtype or mode. Should that counter fail (it returns 0 then),
    falls back to counting convolution and linear layers with forward hooks, which is within about 2% for YOLO
    detectors (it leaves out BatchNorm, activations and the decoding arithmetic).
    """
    import torch
    from ultralytics.utils.torch_utils import get_flops

    net = copy.deepcopy(unwrap(model)).float().cpu().eval()
    value = float(get_flops(net, list(imgsz) if isinstance(imgsz, tuple) else imgsz))
    if value > 0:
        return value
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    macs = 0

    def hook(m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        macs += module_macs(m, out)

    handles = [m.register_forward_hook(hook) for m in net.modules() if counts_macs(m)]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, input_channels(net), h, w))
    except Exception as e:  # noqa: BLE001 - said in one line, naming the size
        raise SlimbenchError(f"cannot count GFLOPs at imgsz {imgsz}: {type(e).__name__}: {str(e)[:200]}") from e
    finally:
        for hd in handles:
            hd.remove()
    return 2 * macs / 1e9


def counts_macs(m: nn.Module) -> bool:
    """Whether :func:`module_macs` counts this module (a convolution or a linear layer)."""
    import torch

    return isinstance(m, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))


def module_macs(m: nn.Module, out: Any) -> int:
    """Multiply-accumulates of one image through a convolution or linear layer, from its output (a forward hook's
    ``out``); 0 for any other module. The hook-based count of :func:`gflops` and of per-layer GFLOPs."""
    import torch

    if isinstance(m, torch.nn.modules.conv._ConvNd):
        k = 1
        for s in m.kernel_size:
            k *= s
        return out.numel() // out.shape[0] * (m.in_channels // m.groups) * k
    if isinstance(m, torch.nn.Linear):
        return out.numel() // out.shape[0] * m.in_features
    return 0


def input_channels(net: nn.Module) -> int:
    """Input channels the model expects (3 for RGB detectors), read from its first convolution."""
    import torch

    for m in net.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return int(m.in_channels)
    return 3


def prunable_channels(model: Any) -> dict[str, int]:
    """:func:`conv_channels` less the convolutions pruning keeps (Detect outputs, DFL, attention:
    :func:`slimbench.pruning.kept.kept_unpruned`): the channels a pruning step can act on."""
    from slimbench.pruning.kept import kept_unpruned

    kept = kept_unpruned(unwrap(model))
    return {k: c for k, c in conv_channels(model).items() if k not in kept}


def channels_removed_pct(reference: Mapping[str, int] | int, candidate: Mapping[str, int] | int) -> float:
    """Percent of the reference's prunable convolution output channels that the candidate no longer has.

    The one definition of "channels removed", shared by the suite, the fixtures manifest and ``slimbench prune``:
    pass :func:`prunable_channels` of both models (or their totals). Prunable, not all, channels, because the kept
    ones (head outputs, DFL) cannot be removed by any pruning and would only dilute the figure. Compares totals, not
    layer by layer, so a candidate whose modules were renamed (a rewritten C2f) still compares. Negative when the
    candidate is wider.
    """
    ref = sum(reference.values()) if isinstance(reference, Mapping) else int(reference)
    cand = sum(candidate.values()) if isinstance(candidate, Mapping) else int(candidate)
    if ref <= 0:
        raise SlimbenchError("reference model has no convolution channels to compare with")
    return 100.0 * (1.0 - cand / ref)


def static_metrics(model: Any, path: str | os.PathLike[str] | None = None, imgsz: int = 640) -> dict[str, Any]:
    """All static figures of one model as a plain dict (JSON-ready), the record the suite and reports share.

    ``path`` adds the file size as stored; the stored dtype is not read here (see :func:`stored_dtype`).
    """
    channels = conv_channels(model)
    zeroed = zeroed_channels(model)
    figures: dict[str, Any] = {
        "params": count_params(model),
        "gflops": gflops(model, imgsz),
        "gflops_unit": f"GFLOPs (1e9 FLOPs = 2 x MACs), batch 1, {imgsz}x{imgsz}",
        "imgsz": imgsz,
        "normalized_size_mb": normalized_size_mb(model),
        "normalized_dtype": "float16",
        "conv_channels": channels,
        "total_channels": sum(channels.values()),
        "prunable_channels": sum(prunable_channels(model).values()),
        "zeroed_channels": {k: v for k, v in zeroed.items() if v},
        "total_zeroed_channels": sum(zeroed.values()),
    }
    if path is not None:
        figures["file_size_mb"] = file_size_mb(path)
    return figures
