"""The sparsity shares that take a model to the widths of a pruned copy of it (``make-fixtures --widths-from``).

A cut that served once (a bundled set's, or one found by iterative rounds) can then be trained again from another
start in one round, without timing a latency plan: each coupled unit loses what the pruned copy lost.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimbench.core.errors import SlimbenchError


def bn_widths(model: nn.Module) -> dict[str, int]:
    """Each BatchNorm's name -> its channels."""
    return {n: m.num_features for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def shares_to_widths(
    start: nn.Module, target: nn.Module, round_to: int, max_share: float = 0.9, *, where: str = "--widths-from"
) -> tuple[tuple[str, float], ...]:
    """(layer, share) pairs, one per coupled unit of ``start`` (:func:`slimbench.pruning.sparsity.coupled_units`),
    whose kept widths (:func:`~slimbench.pruning.sparsity.kept_width`) are ``target``'s.

    Refused in one line, naming ``where``, when ``target`` is not a pruned copy of ``start``'s architecture (another
    layer set, a layer wider than the start's), narrows a layer no unit holds (the pruner never removes those),
    keeps a width the build's ``round_to`` steps cannot reach, or takes more than ``max_share`` of a unit (the most
    the sparsity stage pushes and the threshold rule removes).
    """
    from slimbench.pruning.sparsity import coupled_units

    have, want = bn_widths(start), bn_widths(target)
    other = sorted(set(have) ^ set(want))
    if other:
        raise SlimbenchError(f"{where}: not a pruned copy of this architecture ({other[0]} is in only one of them)")
    wider = [n for n in have if want[n] > have[n]]
    if wider:
        raise SlimbenchError(f"{where}: {wider[0]} has {want[wider[0]]} channels, more than the {have[wider[0]]} here")
    names = {m: n for n, m in start.named_modules()}
    shares: dict[str, float] = {}
    covered: set[str] = set()
    for unit in coupled_units(start):
        for bn, _ in unit:
            covered.add(names[bn])
        bn, part = unit[0]
        name = names[bn]
        width = torch.arange(bn.num_features)[part].numel()
        kept = width * want[name] / have[name]  # a split cv1's halves each keep half of the pruned copy's layer
        if kept != int(kept) or (kept < width and int(kept) % round_to):
            raise SlimbenchError(
                f"{where}: {name} keeps {kept:g} of {width} channels, which steps of {round_to} do not reach"
            )
        if width - kept > int(max_share * width):
            raise SlimbenchError(
                f"{where}: {name} keeps {kept:g} of {width} channels, more than the {max_share:.0%} of a unit the "
                "build removes"
            )
        # a hair over the exact share, so kept_width's ceil lands on ``kept`` and not one step above it
        shares[name.removesuffix(".bn")] = 0.0 if kept == width else (width - int(kept)) / width + 1e-9
    fixed = [n for n in have if n not in covered and want[n] != have[n]]
    if fixed:
        raise SlimbenchError(f"{where}: {fixed[0]} is narrower, but the pruner keeps that layer whole")
    return tuple(shares.items())


def widths_plan(
    start: nn.Module, checkpoint: Any, round_to: int, max_share: float = 0.9
) -> tuple[tuple[str, float], ...]:
    """:func:`shares_to_widths` for a checkpoint file named on the command line."""
    from slimbench.model.checkpoint import load_detector

    target = load_detector(checkpoint).model
    return shares_to_widths(start, target, round_to, max_share, where=f"--widths-from {checkpoint}")
