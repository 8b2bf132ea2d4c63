"""Which convolutions keep their output channels under pruning, and why.

One list for the pruning step (what torch-pruning must leave alone) and for the suite's "channels removed" (whose
denominator is every other convolution, :func:`model.static_metrics.prunable_channels`). Needs ultralytics, not
torch-pruning, so the suite can ask without importing the pruner.
"""

from __future__ import annotations

from torch import nn
from ultralytics.nn.modules.block import DFL, Attention
from ultralytics.nn.modules.head import Detect


def head_towers(head: Detect) -> list[nn.ModuleList]:
    """The head's box and class towers, YOLO26's one-to-one ones included."""
    names = ("cv2", "cv3", "one2one_cv2", "one2one_cv3")
    return [t for t in (getattr(head, n, None) for n in names) if t is not None]


def head_output_layers(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs must not change: each Detect tower's final 1x1 conv (one-to-many and, in YOLO26,
    one-to-one), and the DFL (YOLO26 has none: reg_max 1)."""
    kept: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, Detect):
            kept += [tower[-1] for towers in head_towers(m) for tower in towers]
            if isinstance(m.dfl, DFL):
                kept.append(m.dfl)
    return kept


def kept_unpruned(model: nn.Module) -> dict[str, str]:
    """Conv name -> why its output channels are kept, for an unsplit ultralytics model (reported by the CLI, left out of
    :func:`model.static_metrics.prunable_channels`)."""
    reasons: dict[str, str] = {}
    names = {m: n for n, m in model.named_modules()}
    for m in head_output_layers(model):
        why = "fixed DFL projection" if isinstance(m, DFL) else "Detect output: boxes/classes keep their meaning"
        reasons[names[m] + (".conv" if isinstance(m, DFL) else "")] = why
    for n, m in model.named_modules():
        if isinstance(m, Attention):
            for sub in ("qkv", "proj", "pe"):
                reasons[f"{n}.{sub}.conv"] = "attention kept whole (heads, stream width and softmax scale tied)"
        elif type(m).__name__ == "C2PSA":
            reasons[f"{n}.cv1.conv"] = "C2PSA split((c, c)): second half is the attention stream"
        elif type(m).__name__ == "C3k2" and any(type(b).__name__ == "PSABlock" for b in m.m.modules()):
            reasons[f"{n}.cv1.conv"] = "C3k2 with attention: chunk(2) needs equal halves, the second is the stream"
    return reasons
