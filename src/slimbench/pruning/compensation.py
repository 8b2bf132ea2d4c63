"""Compensation: fold a removed channel's constant output into whatever consumes it.

A channel whose BN scale is (about) zero outputs the constant ``act(beta)`` at every pixel, whatever its input.
Removing it drops that constant from each consumer conv; adding ``sum_k W[o, c, k] * act(beta_c)`` to the consumer's
bias (or subtracting it from the following BN's running mean, which is the same thing) puts it back. The constant
reaching a consumer is measured, not derived: with the removed scales set to exactly zero, one forward pass records
each conv's input, and a removed channel's input there is constant even through concat, upsampling, max-pooling and
residual adds (every coupled scale in the group is zeroed too).

Exact except at the borders of a consumer with a kxk kernel, k > 1: its zero padding multiplies part of the kernel by
zero instead of by the constant, so the folded bias is slightly off there, and later layers spread that border error
inwards by one pixel per 3x3 conv. 1x1 consumers are exact everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch_pruning as tp
from torch import nn


def zero_scales(dg: tp.DependencyGraph, plan: list[tuple[nn.Module, Any, list[int]]]) -> int:
    """Set every BN scale that a planned group removes to exactly zero; return how many were set."""
    n = 0
    with torch.no_grad():
        for root, handler, idxs in plan:
            for dep, di in dg.get_pruning_group(root, handler, idxs):
                if dep.handler == tp.prune_batchnorm_out_channels:
                    dep.target.module.weight[torch.as_tensor(di, dtype=torch.long)] = 0.0
                    n += len(di)
    return n


@torch.no_grad()
def capture_constants(
    model: nn.Module, example: torch.Tensor, forward: Callable[[nn.Module, torch.Tensor], Any] | None = None
) -> dict[nn.Conv2d, torch.Tensor]:
    """Each conv's input, averaged over the batch and the image: the constant of every zero-scale channel.

    ``forward(model, x)`` (default ``model(x)``) must reach every conv: the pruner's trace runs all head towers,
    YOLO26's one-to-many ones included, which its eval forward skips."""
    consts: dict[nn.Conv2d, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp: consts.__setitem__(mod, inp[0].float().mean(dim=(0, 2, 3))))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        model.eval()
        forward(model, example) if forward is not None else model(example)
    finally:
        for h in hooks:
            h.remove()
    return consts


@torch.no_grad()
def fold_constant_inputs(
    conv: nn.Conv2d, idxs: list[int], values: torch.Tensor, bn: nn.BatchNorm2d | None
) -> torch.Tensor:
    """Fold constant inputs ``values`` on in-channels ``idxs`` of ``conv`` into ``bn``'s running mean or the bias.

    Returns the per-output shift that was folded. Call it before those in-channels are removed.
    """
    if conv.groups != 1:
        raise ValueError("compensation through grouped or depthwise convs is not supported")
    idx = torch.as_tensor(idxs, dtype=torch.long)
    shift = (conv.weight[:, idx].float().sum(dim=(2, 3)) * values.to(conv.weight.device)).sum(dim=1)
    if bn is not None:
        bn.running_mean.sub_(shift.to(bn.running_mean.dtype))
    elif conv.bias is not None:
        conv.bias.add_(shift.to(conv.bias.dtype))
    else:
        conv.bias = nn.Parameter(shift.to(conv.weight.dtype))
    return shift


def compensate_group(model: nn.Module, group: Any, consts: dict[nn.Conv2d, torch.Tensor]) -> int:
    """Before ``group.prune()``: fold the removed channels' constants into every consumer conv of the group.

    ``consts`` (from :func:`capture_constants`) is kept in step with the pruning: the removed positions are dropped.
    Returns the number of consumer in-channels compensated.
    """
    from slimbench.pruning.groups import bn_after

    bn_of = bn_after(model)
    per_conv: dict[nn.Conv2d, set[int]] = {}
    for dep, idxs in group:  # one conv may appear more than once (a concat that repeats a channel group)
        if dep.handler == tp.prune_conv_in_channels:
            per_conv.setdefault(dep.target.module, set()).update(int(i) for i in idxs)
    n = 0
    for conv, idx_set in per_conv.items():
        idxs = sorted(idx_set)
        vec = consts[conv]
        fold_constant_inputs(conv, idxs, vec[torch.as_tensor(idxs, dtype=torch.long)], bn_of.get(conv))
        keep = torch.ones(vec.numel(), dtype=torch.bool)
        keep[torch.as_tensor(idxs, dtype=torch.long)] = False
        consts[conv] = vec[keep]
        n += len(idxs)
    return n
