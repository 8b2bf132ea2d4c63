"""Structural channel pruning of a YOLOv8 DetectionModel with torch-pruning.

Three steps kept apart (see STYLE.md): rewrite C2f so the graph is prunable (:mod:`slimbench.pruning.c2f`),
score channels by BatchNorm scale (Network Slimming), remove them with torch-pruning's dependency graph, then fold
the rewrite back so the result is a plain ultralytics model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.head import Detect

from slimbench.metrics import conv_channels, count_params
from slimbench.pruning.c2f import fold_c2f, split_c2f

__all__ = ["PruneResult", "count_params", "head_output_layers", "prune_detection_model"]


@dataclass
class PruneResult:
    """What a pruning run changed: per-layer output channels and totals before and after."""

    ratio: float
    global_pruning: bool
    round_to: int | None
    channels_before: dict[str, int] = field(default_factory=dict)
    channels_after: dict[str, int] = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    kept_layers: tuple[str, ...] = ()

    @property
    def prunable_channels_before(self) -> int:
        return sum(self.channels_before[k] for k in self.prunable_layers)

    @property
    def prunable_channels_after(self) -> int:
        return sum(self.channels_after.get(k, 0) for k in self.prunable_layers)

    @property
    def prunable_layers(self) -> list[str]:
        """Layers whose width changed or could have: every conv outside the kept head outputs."""
        return [k for k in self.channels_before if not k.startswith(self.kept_layers)]

    @property
    def channels_removed_pct(self) -> float:
        b = self.prunable_channels_before
        return 100.0 * (b - self.prunable_channels_after) / b if b else 0.0


def head_output_layers(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs must not change: each Detect tower's final 1x1 conv, and the DFL."""
    kept: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, Detect):
            for towers in (m.cv2, m.cv3, getattr(m, "one2one_cv2", None), getattr(m, "one2one_cv3", None)):
                if towers is None:
                    continue
                for tower in towers:
                    kept.append(tower[-1])
            kept.append(m.dfl)
    return kept


@contextlib.contextmanager
def _export_mode(model: nn.Module):
    """Detect returns a plain tensor in export mode: a simpler graph for torch-pruning to trace."""
    heads = [m for m in model.modules() if isinstance(m, Detect)]
    old = [h.export for h in heads]
    for h in heads:
        h.export = True
    try:
        yield
    finally:
        for h, o in zip(heads, old, strict=True):
            h.export = o


def prune_detection_model(
    model: nn.Module,
    ratio: float,
    *,
    global_pruning: bool = False,
    round_to: int | None = 8,
    max_layer_ratio: float = 0.9,
    example_imgsz: int = 160,
) -> PruneResult:
    """Remove ``ratio`` of the prunable channels of a YOLOv8 ``DetectionModel`` in place, by BN-scale importance.

    The Detect head's outputs are kept (its towers' input and hidden channels still shrink with the neck). The
    model comes back as plain ultralytics modules, in eval mode, in FP32.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be in (0, 1), got {ratio}")
    model.float().eval()
    names = {m: n for n, m in model.named_modules()}
    kept = head_output_layers(model)
    result = PruneResult(
        ratio=ratio,
        global_pruning=global_pruning,
        round_to=round_to,
        kept_layers=tuple(names[m] for m in kept),
    )
    result.channels_before = conv_channels(model)
    result.params_before = count_params(model)

    split_c2f(model)
    for p in model.parameters():
        p.requires_grad_(True)
    example = torch.randn(1, 3, example_imgsz, example_imgsz, device=next(model.parameters()).device)
    with _export_mode(model):
        pruner = tp.pruner.BasePruner(
            model,
            example,
            importance=tp.importance.BNScaleImportance(),
            global_pruning=global_pruning,
            pruning_ratio=ratio,
            max_pruning_ratio=max_layer_ratio,
            ignored_layers=kept,
            round_to=round_to,
        )
        pruner.step()
    fold_c2f(model)
    model.eval()
    result.channels_after = conv_channels(model)
    result.params_after = count_params(model)
    return result
