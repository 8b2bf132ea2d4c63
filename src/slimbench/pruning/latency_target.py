"""Prune to a measured latency target on the runtime the user ships (``slimbench prune --target-latency R``).

1. Read the pruning units off torch-pruning's graph of the split model (:mod:`slimbench.pruning.groups`; the two
   halves of a C2f/C3k2 ``cv1`` tied), and which convs each unit's width feeds (output or input channels).
2. Measure each conv's latency against its widths on the runtime (:mod:`slimbench.pruning.latency_table`, cached).
3. Plan the kept widths that reach R at the least BN-scale importance lost (:mod:`slimbench.pruning.latency_plan`),
   in multiples of ``step``, at most ``max_layer_ratio`` of any unit removed.
4. Prune a fresh copy to the plan (the least important channels of each group go), measure the real ratio with
   the suite's interleaved pairs, and when it is off by more than ``tolerance``, plan again for a target scaled by
   the model's error; at most ``rounds`` measurements. Everything runs under one deadline.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules.conv import Conv

from slimbench.core.errors import SlimbenchError
from slimbench.pruning import latency_measure
from slimbench.pruning.c2f import C2fSplit
from slimbench.pruning.deadline import DeadlineExceeded
from slimbench.pruning.groups import bn_after, build_graph, group_scores, prunable_groups, split_origins
from slimbench.pruning.kept import kept_unpruned
from slimbench.pruning.latency_plan import Plan, PlanUnit, next_plan_target, plan_widths
from slimbench.pruning.latency_table import ConvModel, ConvShape, LatencyTable, table_path
from slimbench.pruning.structural import PruneResult, split_prune_fold, trace_outputs
from slimbench.pruning.support import check_prunable

RUNTIMES = ("torch", "onnxruntime", "openvino")


@dataclass
class _Member:
    root: nn.Module
    handler: Any
    scores: torch.Tensor  # per root channel: max over the group's BNs of |gamma| / that BN's max
    bn_name: str = ""  # the root's BN in the unsplit model: where sparsity training finds this group's unit


@dataclass
class _Conv:
    name: str
    model: ConvModel | None
    ci: int
    co: int
    ci_terms: dict[str, float] = field(default_factory=dict)  # unit -> input channels lost per channel removed
    co_terms: dict[str, float] = field(default_factory=dict)

    def widths(self, removed: dict[str, int]) -> tuple[float, float]:
        ci = self.ci - sum(m * removed.get(u, 0) for u, m in self.ci_terms.items())
        co = self.co - sum(m * removed.get(u, 0) for u, m in self.co_terms.items())
        return ci, co


@dataclass
class Analysis:
    """The split model's units, their member groups and the convs their widths reach."""

    units: list[PlanUnit]
    members: dict[str, list[_Member]]
    convs: list[_Conv]


def analyse(model: nn.Module, example: torch.Tensor, step: int, max_layer_ratio: float) -> tuple[Any, Analysis]:
    """Units and conv reach of a *split* model (the graph is returned too, to prune with)."""
    dg = build_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    tie_of = {}
    for n, m in model.named_modules():
        if isinstance(m, C2fSplit):
            tie_of[m.cv0.conv] = tie_of[m.cv1.conv] = n
    by_unit: dict[str, list[tuple[Any, _Member]]] = {}
    origins, bn_of = split_origins(model), bn_after(model)
    for group in prunable_groups(dg, model):
        outs = [d.target.module for d, _ in group if dg.is_out_channel_pruning_fn(d.handler)]
        tie = next((tie_of[m] for m in outs if m in tie_of), None)
        root = group[0].dep.target.module
        unit = f"{tie}.cv1" if tie else names[root].removesuffix(".conv")
        root_bn = bn_of.get(root)
        scores = group_scores(group)
        scores = scores if scores is not None else torch.ones(len(group[0].idxs))  # no BN: all alike
        member = _Member(root, group[0].dep.handler, scores, origins[root_bn][0] if root_bn else "")
        by_unit.setdefault(unit, []).append((group, member))
    units, members = [], {}
    reach: dict[nn.Module, dict[str, dict[str, float]]] = {}
    for unit, pairs in by_unit.items():
        width = len(pairs[0][1].scores)
        if any(len(m.scores) != width for _, m in pairs):
            continue  # tied halves of unequal width: leave them whole
        keep = max(step, math.ceil((1 - max_layer_ratio) * width / step) * step)
        costs = tuple(tuple(sorted(m.scores.tolist())) for _, m in pairs)
        units.append(PlanUnit(unit, width, costs, min(keep, width), step))
        members[unit] = [m for _, m in pairs]
        for group, _ in pairs:
            for dep, idxs in group:
                mod = dep.target.module
                if not isinstance(mod, nn.Conv2d):
                    continue
                side = "co" if dg.is_out_channel_pruning_fn(dep.handler) else "ci"
                terms = reach.setdefault(mod, {"ci": {}, "co": {}})[side]
                terms[unit] = terms.get(unit, 0.0) + len(idxs) / width
    convs = [
        _Conv(names[m], None, m.in_channels, m.out_channels, dict(r["ci"]), dict(r["co"]))
        for m, r in ((m, reach.get(m, {"ci": {}, "co": {}})) for m in model.modules() if isinstance(m, nn.Conv2d))
    ]
    return dg, Analysis(units, members, convs)


def conv_shapes(model: nn.Module, batch: int, imgsz: int) -> dict[str, ConvShape]:
    """Each conv's shape (kernel, stride, activation, input size) at ``imgsz``, from one traced pass."""
    act_of = {m.conv: not isinstance(m.act, nn.Identity) for m in model.modules() if isinstance(m, Conv)}
    names = {m: n for n, m in model.named_modules()}
    sizes: dict[nn.Module, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp: sizes.__setitem__(mod, tuple(inp[0].shape[-2:])))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            trace_outputs(model, torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in hooks:
            h.remove()
    return {
        names[m]: ConvShape(
            m.kernel_size[0],
            m.stride[0],
            m.padding[0] if isinstance(m.padding, tuple) else 0,
            m.groups > 1 and m.groups == m.in_channels == m.out_channels,
            act_of.get(m, False),
            hw[0],
            hw[1],
            batch,
        )
        for m, hw in sizes.items()
    }


@dataclass
class LatencyResult(PruneResult):
    """A :class:`PruneResult` with the target, what the model predicted and what each measurement read."""

    target: float = 0.0
    runtime: str = ""
    rounds: list[dict[str, float]] = field(default_factory=list)  # planned-for, predicted, measured per round
    chosen: int = -1  # the round whose candidate is kept: the one measured closest to the target
    plan: dict[str, tuple[int, int]] = field(default_factory=dict)  # unit -> (width, kept)
    table_measured: int = 0
    table_path: str = ""
    member_bns: dict[str, list[str]] = field(default_factory=dict)  # unit -> its groups' root BNs (unsplit names)

    def sparsity_shares(self) -> tuple[tuple[str, float], ...]:
        """The plan as sparsity training's ``layer_targets``: each group's root layer -> the share it loses."""
        shares: dict[str, float] = {}
        for unit, (width, kept) in self.plan.items():
            for bn in self.member_bns.get(unit, []):
                if bn:
                    shares[bn.removesuffix(".bn")] = 1 - kept / width  # unrounded: ceil() in the targets
        return tuple(shares.items())

    @property
    def measured(self) -> float:
        return self.rounds[self.chosen]["measured"] if self.rounds else float("nan")


@dataclass
class LatencySettings:
    runtime: str = "onnxruntime"
    threads: int = 2
    batch: int = 1
    imgsz: int = 640
    step: int = 8
    max_layer_ratio: float = 0.9
    tolerance: float = 0.03
    rounds: int = 6
    pairs: int = 21
    deadline_s: float = 1800.0


class _Clock:
    def __init__(self, seconds: float, what: str) -> None:
        self.end, self.seconds, self.what = time.monotonic() + seconds, seconds, what

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise DeadlineExceeded(f"{self.what} did not finish within {self.seconds:g} s (the deadline); stopped")


def prune_to_latency(
    yolo: Any, target: float, settings: LatencySettings, cache_dir: Path, workdir: Path, log: Any = print
) -> tuple[Any, LatencyResult]:
    """A pruned copy of ``yolo`` (an ultralytics YOLO) whose forward on ``settings.runtime`` measures about
    ``target`` x the original's; ``yolo`` itself is left as it was."""
    s = settings
    if not 0.0 < target < 1.0:
        raise SlimbenchError(
            f"--target-latency must be in (0, 1) (the candidate's time over the original's), got {target}"
        )
    check_prunable(yolo.model)
    clock = _Clock(s.deadline_s, f"pruning to latency {target:g} on {s.runtime}")
    probe = copy.deepcopy(yolo.model).float().eval()
    result = LatencyResult(ratio=0.0, global_pruning=True, round_to=s.step, target=target, runtime=s.runtime)
    with split_prune_fold(probe, PruneResult(0.0, True, s.step), 160) as example:
        _, an = analyse(probe, example, s.step, s.max_layer_ratio)
        shapes = conv_shapes(probe, s.batch, s.imgsz)
    an.convs = [c for c in an.convs if c.name in shapes]  # the decode's (DFL) is outside the trace: a fixed cost
    table = LatencyTable(
        table_path(cache_dir, s.runtime, s.threads, s.batch), latency_measure.conv_measure(s.runtime, s.threads)
    )
    log(
        f"[latency] measuring {len(an.convs)} convs on {s.runtime} ({s.threads} threads, batch {s.batch}, "
        f"{s.imgsz} px); cache {table.path}"
    )
    try:
        for conv in an.convs:
            clock.check()
            conv.model = ConvModel.measure(
                table, shapes[conv.name], conv.ci, conv.co, bool(conv.ci_terms), bool(conv.co_terms), s.step
            )
    finally:
        table.save()
    result.table_measured, result.table_path = table.measured, str(table.path)
    ref_fn = latency_measure.model_forward(yolo, s.runtime, s.threads, s.batch, s.imgsz, workdir)
    full_convs = sum(c.model.predict(c.ci, c.co) for c in an.convs if c.model)
    fixed = max(0.0, latency_measure.model_seconds(ref_fn) - full_convs)
    width_of = {u.name: u.width for u in an.units}
    cache: dict[tuple[str, float, float], float] = {}

    def predict(widths: dict[str, int]) -> float:
        removed = {u: width_of[u] - w for u, w in widths.items() if w != width_of[u]}
        total = fixed
        for c in an.convs:
            ci, co = c.widths(removed)
            key = (c.name, ci, co)
            if key not in cache:
                cache[key] = c.model.predict(ci, co) if c.model else 0.0
            total += cache[key]
        return total

    planned_for = target
    tries: list[tuple[float, Any, Plan]] = []
    for _ in range(max(1, s.rounds)):
        clock.check()
        plan = plan_widths(an.units, predict, planned_for)
        candidate = _pruned_copy(yolo, plan, s)
        cand_fn = latency_measure.model_forward(candidate, s.runtime, s.threads, s.batch, s.imgsz, workdir)
        measured = latency_measure.paired_ratio(ref_fn, cand_fn, s.pairs)
        result.rounds.append({"planned_for": planned_for, "predicted": plan.predicted_ratio, "measured": measured})
        log(f"[latency] planned for {planned_for:.3f}: predicted {plan.predicted_ratio:.3f}, measured {measured:.3f}")
        tries.append((measured, candidate, plan))
        if abs(measured - target) <= s.tolerance or (not plan.reached and measured > target):
            break  # close enough, or the smallest model the limits allow is still slower than the target
        # the correction searches on (predicted, measured): a plan stuck at the model's floor predicts more than it
        # was planned for, and planning below that floor again would only repeat it
        planned_for = next_plan_target([(r["predicted"], r["measured"]) for r in result.rounds], target)
    result.chosen = min(range(len(tries)), key=lambda i: abs(tries[i][0] - target))
    _, candidate, plan = tries[result.chosen]
    result.plan = {u.name: (u.width, plan.widths[u.name]) for u in an.units}
    result.member_bns = {u: [m.bn_name for m in ms] for u, ms in an.members.items()}
    _fill_figures(result, yolo.model, candidate.model)
    return candidate, result


def _pruned_copy(yolo: Any, plan: Plan, s: LatencySettings) -> Any:
    """A deep copy of ``yolo`` pruned to ``plan``'s widths, the least important channels of each group first."""
    return pruned_to_widths(yolo, lambda unit: plan.widths.get(unit.name, unit.width), s.step, s.max_layer_ratio)


def pruned_to_widths(yolo: Any, width_of: Any, step: int, max_layer_ratio: float = 0.9) -> Any:
    """A deep copy of ``yolo`` with each unit (a :class:`PlanUnit`: name, width) pruned to ``width_of(unit)``
    channels, the least important of each group first."""
    candidate = copy.deepcopy(yolo)
    net = candidate.model.float().eval()
    with split_prune_fold(net, PruneResult(0.0, True, step), 160) as example:
        dg, an = analyse(net, example, step, max_layer_ratio)
        for unit in an.units:
            keep = width_of(unit)
            for m in an.members[unit.name]:
                n = unit.width - keep
                if n > 0:  # the root's channels are 0..width-1: the n lowest scores are the ones to drop
                    drop = torch.argsort(m.scores)[:n].tolist()
                    dg.get_pruning_group(m.root, m.handler, drop).prune()
    return candidate


def _fill_figures(result: LatencyResult, before: nn.Module, after: nn.Module) -> None:
    from slimbench.model.static_metrics import conv_channels, count_params

    reasons = kept_unpruned(before)
    result.kept_layers, result.kept_reasons = tuple(reasons), reasons
    result.channels_before, result.channels_after = conv_channels(before), conv_channels(after)
    result.params_before, result.params_after = count_params(before), count_params(after)
