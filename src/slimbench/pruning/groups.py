"""The pruning groups of a YOLOv8, YOLO11 or YOLO26 detector: one dependency graph for pruning and for sparsity.

Both pruning rules and sparsity training must agree on which BatchNorm channels go together (a residual add, both
halves of a split ``cv1``, a depthwise conv and the conv feeding it, the neck output and every head tower reading
it). Rather than list those couplings per block family by hand, they are read from torch-pruning's dependency graph,
built the way the pruner builds it: on the split model (:mod:`slimbench.pruning.c2f`, :mod:`slimbench.pruning.psa`),
traced through :func:`slimbench.pruning.structural.trace_outputs` (backbone, neck and every head tower, YOLO26's
one-to-one towers included), with attention one opaque, kept-whole layer.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.block import Attention
from ultralytics.nn.modules.conv import Conv

from slimbench.pruning.c2f import C2fSplit, split_c2f
from slimbench.pruning.kept import head_output_layers
from slimbench.pruning.psa import C2PSASplit, KeptWhole, kept_whole, opaque_attention, split_c2psa

Unit = list[tuple[nn.BatchNorm2d, torch.Tensor]]
"""BN channels that one pruning group shares, position by position: they go together or not at all."""


def build_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of a *split* model, as both pruning rules build it."""
    from slimbench.pruning.structural import trace_outputs

    with opaque_attention(model):
        return tp.DependencyGraph().build_dependency(
            model,
            example_inputs=example,
            forward_fn=trace_outputs,
            customized_pruners={Attention: KeptWhole()},
            verbose=False,
        )


def never_pruned(model: nn.Module) -> list[nn.Module]:
    """What no group may change: the head's outputs, the DFL, attention and the halves around its stream."""
    return head_output_layers(model) + kept_whole(model)


def prunable_groups(dg: tp.DependencyGraph, model: nn.Module) -> list[tp.Group]:
    """Every group rooted at a conv that touches none of :func:`never_pruned` (full channel ranges)."""
    return list(dg.get_all_groups(ignored_layers=never_pruned(model), root_module_types=[nn.Conv2d]))


def bn_after(model: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """Each ultralytics Conv's conv -> the BN right after it (a bare Conv2d, e.g. a head output, has none)."""
    return {m.conv: m.bn for m in model.modules() if isinstance(m, Conv) and isinstance(m.bn, nn.BatchNorm2d)}


def group_scores(group: tp.Group) -> torch.Tensor | None:
    """Per group channel: the max over the group's BN layers of |gamma| / that layer's max |gamma| (None: no BN).
    One live copy still carries signal, so a channel is only as unimportant as its most important copy."""
    scores = None
    for bn, idxs in group_batchnorms(group):
        g = bn.weight.detach().float().abs()
        rel = g / g.max().clamp_min(1e-12)
        s = rel[torch.as_tensor(idxs, dtype=torch.long, device=rel.device)]
        scores = s if scores is None else torch.maximum(scores, s)
    return scores


def group_batchnorms(group: tp.Group) -> list[tuple[nn.BatchNorm2d, list[int]]]:
    """The group's BatchNorm layers with their channel indices, aligned with the root's channels."""
    return [(dep.target.module, list(idxs)) for dep, idxs in group if dep.handler == tp.prune_batchnorm_out_channels]


def split_origins(split: nn.Module) -> dict[nn.BatchNorm2d, tuple[str, int]]:
    """Each BN of a split model -> (its name in the unsplit model, channel offset): a ``cv0``/``cv1`` half of a
    C2fSplit or C2PSASplit at ``X`` is ``X.cv1.bn`` from 0 or from the first half's width."""
    origins = {m: (n, 0) for n, m in split.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for n, m in split.named_modules():
        if isinstance(m, (C2fSplit, C2PSASplit)):
            origins[m.cv0.bn] = (f"{n}.cv1.bn", 0)
            origins[m.cv1.bn] = (f"{n}.cv1.bn", m.cv0.conv.out_channels)
    return origins


def coupled_units(model: nn.Module, imgsz: int = 64) -> list[Unit]:
    """The pruning groups of an *unsplit* ``model``, as BN channel units of ``model`` itself (for sparsity
    training's targets). A deep copy is split and traced; ``model`` is not touched. Each unit starts with its root
    conv's BN, whose name places the unit under a layer (``layer_targets``)."""
    split = copy.deepcopy(model).float().eval()
    split_c2f(split)
    split_c2psa(split)
    for p in split.parameters():
        p.requires_grad_(True)
    with torch.enable_grad():  # the trainer may call this under no_grad; the tracer needs autograd
        dg = build_graph(split, torch.zeros(1, 3, imgsz, imgsz, device=next(split.parameters()).device))
    origins = split_origins(split)
    bn_of = bn_after(split)
    live = dict(model.named_modules())
    units: list[Unit] = []
    for group in prunable_groups(dg, split):
        bns = group_batchnorms(group)
        if not bns:
            continue
        root_bn = bn_of.get(group[0].dep.target.module)
        bns.sort(key=lambda b: b[0] is not root_bn)  # stable: the root's BN first
        unit: Unit = []
        for bn, idxs in bns:
            name, offset = origins[bn]
            unit.append((live[name], torch.as_tensor(idxs, dtype=torch.long) + offset))
        units.append(unit)
    return units
