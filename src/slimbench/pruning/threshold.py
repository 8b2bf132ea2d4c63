"""Network Slimming's pruning rule: remove every channel whose BN scale is below a global threshold.

Beside :func:`slimbench.pruning.structural.prune_detection_model` (a ratio per layer or a global ratio), this is
the paper's rule after sparsity training: a channel goes when its |gamma| is below ``threshold`` x the max |gamma|
of its layer (or, with ``target_ratio``, below the global quantile that removes that share). Channels coupled by
a residual add, a concat, a depthwise conv or a head tower form one torch-pruning group
(:mod:`slimbench.pruning.groups`, the graph sparsity training targets too); a group channel goes only when *every*
BN scale in it is small (the max over the group), since one live copy still carries signal. Per layer, at most
``max_layer_ratio`` is removed and the kept width is rounded *up* to a multiple of ``round_to``, so only channels
below the threshold go. Every family the ratio pruner handles is handled alike: YOLOv8 (C2f), YOLO11 and YOLO26
(C3k2 with C3k, Bottleneck or attention inside, C2PSA's FFN, YOLO26's one-to-one towers); attention is kept whole
(:mod:`slimbench.pruning.psa` says why).

With ``compensate``, each removed channel's constant output act(beta) is folded into its consumers
(:mod:`slimbench.pruning.compensation`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slimbench.pruning.compensation import capture_constants, compensate_group, zero_scales
from slimbench.pruning.deadline import run_with_deadline
from slimbench.pruning.groups import build_graph, group_scores, prunable_groups
from slimbench.pruning.kept import kept_unpruned
from slimbench.pruning.structural import DEFAULT_DEADLINE_S, PruneResult, split_prune_fold, trace_outputs
from slimbench.pruning.support import check_prunable


@dataclass
class ThresholdResult(PruneResult):
    """A :class:`PruneResult` plus what the threshold found: channels below it, and how many the cap kept."""

    threshold: float = 0.0
    below_threshold: int = 0  # group channels below the threshold
    removed: int = 0  # group channels removed (below, minus those the cap and round_to kept)
    group_channels: int = 0  # all channels of the prunable groups
    compensated: bool = False


def _n_removable(n_below: int, width: int, max_layer_ratio: float, round_to: int | None) -> int:
    """How many of ``n_below`` candidates go: at most the cap, keeping a width that is a multiple of ``round_to``."""
    n = min(n_below, int(math.floor(max_layer_ratio * width)))
    keep = width - n
    if round_to:
        keep = max(round_to, int(math.ceil(keep / round_to)) * round_to)
    return max(0, width - keep)


def threshold_prune(
    model: nn.Module,
    threshold: float | None = 0.01,
    *,
    target_ratio: float | None = None,
    max_layer_ratio: float = 0.9,
    round_to: int | None = 8,
    compensate: bool = True,
    example_imgsz: int = 160,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> ThresholdResult:
    """Prune a YOLOv8/YOLO11/YOLO26 ``DetectionModel`` in place by a global BN-scale threshold; FP32, eval mode,
    plain ultralytics.

    ``threshold`` is relative to each layer's max |gamma|; ``target_ratio`` instead picks the threshold that puts that
    share of group channels below it. The Detect head's outputs, the DFL and attention are kept. Graph building and
    pruning run under ``deadline_s`` (:class:`pruning.deadline.DeadlineExceeded` past it; the model is then left
    half-pruned and the caller discards it).
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
    t0 = time.perf_counter()
    model.float().eval()
    reasons = kept_unpruned(model)
    result = ThresholdResult(
        ratio=target_ratio or 0.0,
        global_pruning=True,
        round_to=round_to,
        kept_layers=tuple(reasons),
        kept_reasons=reasons,
        compensated=compensate,
    )
    with split_prune_fold(model, result, example_imgsz) as example:
        run_with_deadline(
            lambda: _prune_below(model, example, result, threshold, target_ratio, max_layer_ratio),
            deadline_s,
            "threshold pruning (torch-pruning's dependency graph)",
        )
    result.seconds = time.perf_counter() - t0
    return result


def _prune_below(
    model: nn.Module,
    example: torch.Tensor,
    result: ThresholdResult,
    threshold: float | None,
    target_ratio: float | None,
    max_layer_ratio: float,
) -> None:
    """The rule on the split model: score every group, plan the removals, compensate, prune."""
    dg = build_graph(model, example)
    groups = [(g, s) for g in prunable_groups(dg, model) if (s := group_scores(g)) is not None]
    if target_ratio is not None:
        all_scores = torch.cat([s for _, s in groups])
        k = max(1, int(round(target_ratio * all_scores.numel())))
        threshold = float(torch.kthvalue(all_scores.cpu(), k).values) * (1 + 1e-6) + 1e-12
    assert threshold is not None
    result.threshold = threshold
    plan: list[tuple[nn.Module, Any, list[int]]] = []
    for group, scores in groups:
        result.group_channels += scores.numel()
        n_below = int((scores < threshold).sum())
        result.below_threshold += n_below
        n = _n_removable(n_below, scores.numel(), max_layer_ratio, result.round_to)
        if n > 0:
            root_idxs = torch.as_tensor(group[0].idxs, dtype=torch.long)
            order = torch.argsort(scores.cpu())[:n]
            plan.append((group[0].dep.target.module, group[0].dep.handler, root_idxs[order].tolist()))
            result.removed += n
    consts = {}
    if result.compensated:
        zero_scales(dg, plan)
        consts = capture_constants(model, example, trace_outputs)
    for root, handler, idxs in plan:
        group = dg.get_pruning_group(root, handler, idxs)
        if result.compensated:
            compensate_group(model, group, consts)
        group.prune()
