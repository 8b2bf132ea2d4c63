"""Network Slimming's pruning rule: remove every channel whose BN scale is below a global threshold.

Beside :func:`slimbench.pruning.structural.prune_detection_model` (a ratio per layer or a global ratio), this is
the paper's rule after sparsity training: a channel goes when its |gamma| is below ``threshold`` x the max |gamma|
of its layer (or, with ``target_ratio``, below the global quantile that removes that share). Channels coupled by
a residual add or a concat form one torch-pruning group; a group channel goes only when *every* BN scale in it is
small (the max over the group), since one live copy still carries signal. Per layer, at most ``max_layer_ratio`` is
removed and the kept width is rounded *up* to a multiple of ``round_to``, so only channels below the threshold go.

With ``compensate``, each removed channel's constant output act(beta) is folded into its consumers
(:mod:`slimbench.pruning.compensation`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.block import C2PSA, C3k2
from ultralytics.nn.modules.head import Detect

from slimbench.core.errors import SlimbenchError
from slimbench.pruning.compensation import capture_constants, compensate_group, zero_scales
from slimbench.pruning.structural import PruneResult, head_output_layers, split_prune_fold
from slimbench.pruning.support import check_prunable


@dataclass
class ThresholdResult(PruneResult):
    """A :class:`PruneResult` plus what the threshold found: channels below it, and how many the cap kept."""

    threshold: float = 0.0
    below_threshold: int = 0  # group channels below the threshold
    removed: int = 0  # group channels removed (below, minus those the cap and round_to kept)
    group_channels: int = 0  # all channels of the prunable groups
    compensated: bool = False


@contextlib.contextmanager
def _export_mode(model: nn.Module) -> Iterator[None]:
    """Detect returns one plain tensor in export mode: the graph torch-pruning traces ends at the head's convs.

    Kept here rather than imported, so this module does not depend on structural.py's private helpers."""
    heads = [m for m in model.modules() if isinstance(m, Detect)]
    old = [h.export for h in heads]
    for h in heads:
        h.export = True
    try:
        yield
    finally:
        for h, o in zip(heads, old, strict=True):
            h.export = o


def _group_scores(group: tp.dependency.Group) -> torch.Tensor | None:
    """Per group channel: the max over the group's BN layers of |gamma| / that layer's max |gamma|."""
    scores = None
    for dep, idxs in group:
        if dep.handler == tp.prune_batchnorm_out_channels:
            g = dep.target.module.weight.detach().float().abs()
            rel = g / g.max().clamp_min(1e-12)
            s = rel[torch.as_tensor(idxs, dtype=torch.long)]
            scores = s if scores is None else torch.maximum(scores, s)
    return scores


def _n_removable(n_below: int, width: int, max_layer_ratio: float, round_to: int | None) -> int:
    """How many of ``n_below`` candidates go: at most the cap, keeping a width that is a multiple of ``round_to``."""
    n = min(n_below, int(math.floor(max_layer_ratio * width)))
    keep = width - n
    if round_to:
        keep = max(round_to, int(math.ceil(keep / round_to)) * round_to)
    return max(0, width - keep)


def threshold_unsupported(model: nn.Module) -> str | None:
    """Why the threshold rule cannot prune ``model`` yet, or None: the C3k2/C2PSA rewrites and opaque attention
    are wired into :func:`pruning.structural.prune_detection_model` only, so far."""
    newer = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (C3k2, C2PSA))})
    if newer:
        return f"threshold pruning supports YOLOv8 (C2f) models only so far; this one has {', '.join(newer)}"
    return None


def threshold_prune(
    model: nn.Module,
    threshold: float | None = 0.01,
    *,
    target_ratio: float | None = None,
    max_layer_ratio: float = 0.9,
    round_to: int | None = 8,
    compensate: bool = True,
    example_imgsz: int = 160,
) -> ThresholdResult:
    """Prune a YOLOv8 ``DetectionModel`` in place by a global BN-scale threshold; FP32, eval mode, plain ultralytics.

    ``threshold`` is relative to each layer's max |gamma|; ``target_ratio`` instead picks the threshold that puts that
    share of group channels below it. The Detect head's outputs and DFL are kept.
    """
    if (threshold is None) == (target_ratio is None):
        raise ValueError("give exactly one of threshold and target_ratio")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1) (a fraction of the layer's max |gamma|), got {threshold}")
    if target_ratio is not None and not 0.0 < target_ratio < 1.0:
        raise ValueError(f"target ratio must be in (0, 1), got {target_ratio}")
    if not 0.0 < max_layer_ratio < 1.0:
        raise ValueError(f"max_layer_ratio must be in (0, 1), got {max_layer_ratio}")
    check_prunable(model)
    why = threshold_unsupported(model)
    if why:
        raise SlimbenchError(f"{why}: use --ratio")
    model.float().eval()
    names = {m: n for n, m in model.named_modules()}
    kept = head_output_layers(model)
    result = ThresholdResult(
        ratio=target_ratio or 0.0,
        global_pruning=True,
        round_to=round_to,
        kept_layers=tuple(names[m] for m in kept),
        compensated=compensate,
    )
    with split_prune_fold(model, result, example_imgsz) as example, _export_mode(model):
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        groups = [
            (g, s)
            for g in dg.get_all_groups(ignored_layers=kept, root_module_types=[nn.Conv2d])
            if (s := _group_scores(g)) is not None
        ]
        if target_ratio is not None:
            all_scores = torch.cat([s for _, s in groups])
            k = max(1, int(round(target_ratio * all_scores.numel())))
            threshold = float(torch.kthvalue(all_scores, k).values) * (1 + 1e-6) + 1e-12
        assert threshold is not None
        result.threshold = threshold
        plan: list[tuple[nn.Module, Any, list[int]]] = []
        for group, scores in groups:
            result.group_channels += scores.numel()
            n_below = int((scores < threshold).sum())
            result.below_threshold += n_below
            n = _n_removable(n_below, scores.numel(), max_layer_ratio, round_to)
            if n > 0:
                root_idxs = torch.as_tensor(group[0].idxs, dtype=torch.long)
                plan.append(
                    (group[0].dep.target.module, group[0].dep.handler, root_idxs[torch.argsort(scores)[:n]].tolist())
                )
                result.removed += n
        consts = {}
        if compensate:
            zero_scales(dg, plan)
            consts = capture_constants(model, example)
        for root, handler, idxs in plan:
            group = dg.get_pruning_group(root, handler, idxs)
            if compensate:
                compensate_group(model, group, consts)
            group.prune()
    return result
