"""Sparsity training that sparsifies: a proximal L1 step on BatchNorm scales, applied before the EMA update.

Why not the plain subgradient (``lambda * sign(gamma)`` added to the gradient, as torch-pruning's
``BNScalePruner.regularize()`` and ``GrowingRegPruner.regularize()`` do)? Measured here: in a few hundred steps it
never lands a scale on zero (it oscillates around it), it passes through ultralytics' global gradient clip at norm
10 together with the loss, and under Adam it is normalised away. The proximal (soft-threshold) step
``gamma <- sign(gamma) * max(|gamma| - lr * lambda_c, 0)`` after each optimizer step puts scales exactly on zero
unless the loss pulls them out by more than ``lr * lambda_c``: the loss can out-pull it for the channels that matter.

Per channel, ``lambda_c = lambda(t) * s_c``, with ``lambda(t)`` rising linearly and ``s_c`` GrowingRegPruner's
standardised weight ``(max - |gamma_c|) / (max - min)`` within the layer (computed here on the BN weights alone, so
no dependency graph is built inside the trainer): the largest scale of a layer is never pushed, small ones are
pushed hardest, so the distribution turns bimodal instead of shrinking uniformly (which the uniform shrink did:
0.05% below 1% of the layer max and mAP 0).

The step runs between the optimizer step and the EMA update, so the EMA (what ultralytics validates and saves)
averages the thresholded weights. Each epoch, :func:`report_epoch` prints lambda, the share of BN channels below
``threshold`` x their layer's max *on the EMA*, and mAP.

Under ultralytics' multi-GPU launcher (``device=0,1``) each rank runs :meth:`ProximalSparsityTrainer.optimizer_step`
after ``backward()``, when DDP has all-reduced the gradients: every rank starts from the same weights (DDP broadcasts
rank 0's), sees the same gradients, lr and step count, so the optimizer step, the Taylor scores, the targeted
channels and the proximal step are the same on every rank, and so is each rank's EMA update of the parameters. The
ranks stay identical and rank 0's EMA, the one ultralytics saves, is the sparse one. The launcher rebuilds the trainer
in each worker from a cloudpickle of its class (with its ``recipe``), args, model and callbacks.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from ultralytics.utils import RANK

from slimbench.core.errors import SlimbenchError
from slimbench.core.files import atomic_write_bytes
from slimbench.pruning.given_model import GivenModelTrainer

if TYPE_CHECKING:
    from slimbench.pruning.groups import Unit

HISTORY_FILE = "sparsity_history.json"  # report_epoch's records, beside the run's weights/ (read back after DDP)


@dataclass(frozen=True)
class SparsityRecipe:
    """The knobs of proximal sparsity training; stored in the manifest."""

    lam: float = 1.0  # final lambda (per unit of the BN group's learning rate)
    ramp: float = 0.5  # lambda rises linearly from 0 over this fraction of the optimizer steps
    relative: bool = True  # GrowingReg-style per-channel weight (max - score) / (max - min) within each layer
    taylor: bool = False  # score = running mean of |gamma * dL/dgamma| (first-order Taylor) instead of |gamma|
    target: float = 0.0  # > 0: push only the globally lowest-scoring share of channels, rising to this (see below)
    max_layer_target: float = 0.9  # with ``target``: at most this share of one layer is pushed
    per_layer: bool = False  # with ``target``: that share of *each* layer instead of a global ranking
    round_to: int = 8  # with ``per_layer``: each layer keeps a multiple of this (as the pruning step will)
    threshold: float = 0.01  # "near zero": |gamma| below this fraction of the layer's max
    # with ``per_layer``: (module name, share) pairs that replace ``target`` for the units under that module (e.g.
    # ("model.22", 0.75): the Detect head), as torch-pruning's pruning_ratio_dict does for its pruners
    layer_targets: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise SlimbenchError(f"sparsity lambda must be >= 0, got {self.lam}")
        if not 0.0 <= self.ramp <= 1.0:
            raise SlimbenchError(f"sparsity ramp must be in [0, 1], got {self.ramp}")
        if not 0.0 <= self.target < 1.0:
            raise SlimbenchError(f"sparsity target share must be in [0, 1), got {self.target}")
        if not 0.0 < self.threshold < 1.0:
            raise SlimbenchError(f"sparsity threshold must be in (0, 1), got {self.threshold}")
        for name, share in self.layer_targets:
            if not 0.0 <= share < 1.0:
                raise SlimbenchError(f"sparsity layer target {name}={share:g}: the share must be in [0, 1)")
            if not self.per_layer or self.target <= 0:
                raise SlimbenchError(f"sparsity layer target {name}={share:g} needs a per-layer target share")

    def ramp_at(self, step: int, total: int) -> float:
        """The schedule's rise: 0 -> 1 linearly over ``ramp`` of the steps, then 1."""
        if self.ramp <= 0 or total <= 0:
            return 1.0
        return min(1.0, step / (self.ramp * total))

    def lam_at(self, step: int, total: int) -> float:
        """lambda after ``step`` of ``total`` optimizer steps: a linear rise, then flat."""
        if self.target > 0:  # the targeted share rises instead; each targeted channel gets the full lambda
            return self.lam
        return self.lam * self.ramp_at(step, total)


# Training overrides that let the loss defend the channels that matter: SGD (Adam normalises the L1 pull away), a
# gentle constant lr, no warm-up (its bias lr of 0.1 wrecks a trained model), no mosaic, one step per batch.
RECIPE_TRAIN_ARGS: dict[str, Any] = {
    "optimizer": "SGD",
    "lr0": 0.002,
    "lrf": 1.0,
    "momentum": 0.9,
    "warmup_epochs": 0,
    "mosaic": 0.0,
    "close_mosaic": 0,
}


def batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The BatchNorm layers whose scales Network Slimming ranks (every one in a YOLOv8: the head outputs have none)."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]


def bn_gammas(model: nn.Module) -> torch.Tensor:
    """All BatchNorm scales of a model, flattened (what Network Slimming ranks channels by)."""
    parts = [bn.weight.detach().float().abs().flatten().cpu() for bn in batchnorms(model)]
    return torch.cat(parts) if parts else torch.empty(0)


def share_below(model: nn.Module, threshold: float = 0.01) -> float:
    """Share of BN channels with |gamma| below ``threshold`` x the max |gamma| of their own layer."""
    below = total = 0
    for bn in batchnorms(model):
        g = bn.weight.detach().float().abs()
        below += int((g < threshold * g.max()).sum())
        total += g.numel()
    return below / total if total else 0.0


def gamma_stats(model: nn.Module, threshold: float = 0.01) -> dict[str, float]:
    """Summary of |gamma| for the manifest: share below ``threshold`` x layer max, quantiles, channel count."""
    g = bn_gammas(model)
    q = torch.quantile(g, torch.tensor([0.1, 0.5, 0.9])).tolist() if g.numel() else [0.0] * 3
    return {
        "channels": int(g.numel()),
        "share_below_threshold": round(share_below(model, threshold), 4),
        "threshold_of_layer_max": threshold,
        "p10": round(q[0], 5),
        "median": round(q[1], 5),
        "p90": round(q[2], 5),
        "max": round(float(g.max()) if g.numel() else 0.0, 5),
    }


@torch.no_grad()
def prox_bn_(
    model: nn.Module,
    step: float,
    relative: bool = True,
    scores: dict[nn.Module, torch.Tensor] | None = None,
    weights: dict[nn.Module, torch.Tensor] | None = None,
) -> None:
    """Soft-threshold every BN scale in place by ``step`` x the channel's standardised weight (1 unless ``relative``).

    The weight ranks channels within their layer by ``scores`` (default |gamma|): the top one is not pushed.
    ``weights`` (e.g. :func:`targeted_weights`) replaces that weight.
    """
    for bn in batchnorms(model):
        w = bn.weight
        a = w.abs()
        if weights is not None:
            shrink = step * weights[bn].to(a)
        elif relative:
            sc = scores.get(bn, a) if scores else a
            lo, hi = sc.min(), sc.max()
            shrink = step * (hi - sc) / (hi - lo + 1e-12)
        else:
            shrink = torch.full_like(a, step)
        w.copy_(torch.sign(w) * torch.clamp(a - shrink, min=0.0))


@torch.no_grad()
def targeted_weights(
    model: nn.Module,
    share: float,
    scores: dict[nn.Module, torch.Tensor] | None = None,
    max_layer: float = 0.9,
    per_layer: bool = False,
    round_to: int = 1,
    layer_shares: dict[str, float] | None = None,
    units: list[Unit] | None = None,
) -> dict[nn.Module, torch.Tensor]:
    """1 for the globally lowest ``share`` of BN channels, 0 for the rest: the only ones the proximal step pushes.

    Scores (default |gamma|) are divided by their layer's mean so that layers compare; at most ``max_layer`` of a
    layer is targeted. The untargeted channels keep their function while the loss adapts to losing the targeted ones.
    ``per_layer`` targets the lowest ``share`` of every layer instead: a global ranking leaves the wide, cheap deep
    layers with most of the zeros (GFLOPs fell only to 0.32x at 60% of channels), a per-layer share thins the
    high-resolution layers that cost the FLOPs as much as the rest; each layer then keeps a multiple of ``round_to``
    channels, so no channel is zeroed that the pruning step's rounding would keep. ``layer_shares`` (module name ->
    share, with ``per_layer``) replaces ``share`` for the units under that module. ``units`` (from
    :func:`coupled_units`, computed once per model by the trainer) saves tracing the graph at every step.
    """
    if per_layer:
        units = coupled_units(model) if units is None else units
        return _per_unit_weights(model, share, scores, max_layer, round_to, layer_shares or {}, units)
    bns = batchnorms(model)
    norm = []
    for bn in bns:
        sc = (scores or {}).get(bn, bn.weight.detach().abs()).float()
        norm.append(sc / sc.mean().clamp_min(1e-12))
    allv = torch.cat(norm)
    k = int(share * allv.numel())
    out: dict[nn.Module, torch.Tensor] = {}
    if k <= 0:
        return {bn: torch.zeros_like(n) for bn, n in zip(bns, norm, strict=True)}
    cut = torch.kthvalue(allv, k).values
    for bn, n in zip(bns, norm, strict=True):
        w = (n <= cut).float()
        cap = int(max_layer * n.numel())
        if int(w.sum()) > cap:
            w = torch.zeros_like(n)
            w[torch.argsort(n)[:cap]] = 1.0
        out[bn] = w
    return out


def coupled_units(model: nn.Module) -> list[Unit]:
    """The BN channel units that pruning removes together, read from torch-pruning's graph of the split model
    (:func:`slimbench.pruning.groups.coupled_units`): both halves of every C2f/C3k2 ``cv1`` apart (targeted as one
    layer, the halves lost unequal counts and the fold padded the difference with zero channels that still cost FLOPs:
    120 in the neck's C2f blocks, GFLOPs 0.256x), each residual stream as one unit (targeted apart, the zeros never
    lined up: the backbone's streams kept every channel, GFLOPs 0.31x instead of 0.25x), a depthwise conv with the
    conv feeding it, the neck outputs with every head tower reading them. Attention and the head outputs are in no
    unit: they are never pruned, so never pushed. A model the pruner does not trace (no Detect head: a bare stack of
    layers in a test) has each BN layer as its own unit."""
    from slimbench.pruning.groups import coupled_units as graph_units
    from slimbench.pruning.support import UnsupportedModelError, check_prunable

    try:
        check_prunable(model)
    except UnsupportedModelError:
        return [[(bn, torch.arange(bn.num_features))] for bn in batchnorms(model)]
    return graph_units(model)


def under(name: str, prefix: str) -> bool:
    """Whether module ``name`` is ``prefix`` or inside it (``model.2`` holds ``model.2.cv1``, not ``model.22``)."""
    return name == prefix or name.startswith(prefix + ".")


def unit_share(name: str, share: float, layer_shares: dict[str, float]) -> float:
    """The share for the unit whose first BN is ``name``: the longest matching ``layer_shares`` prefix, else
    ``share``."""
    hits = [p for p in layer_shares if under(name, p)]
    return layer_shares[max(hits, key=len)] if hits else share


def unmatched_layer_targets(model: nn.Module, names: list[str] | tuple[str, ...]) -> list[str]:
    """The names in ``names`` that hold no BatchNorm of ``model``: a typo would otherwise target nothing, silently."""
    bn_names = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    return [p for p in names if not any(under(n, p) for n in bn_names)]


def kept_width(width: int, share: float, round_to: int) -> int:
    """The channels a unit of ``width`` keeps when ``share`` of it is pushed to zero: rounded up to a multiple of
    ``round_to`` (at least one step), so a share moves the width in jumps (64 wide at 0.7 keeps 24, at 0.75 16)."""
    return max(round_to, math.ceil((1 - share) * width / round_to) * round_to)


def _per_unit_weights(
    model: nn.Module,
    share: float,
    scores: dict[nn.Module, torch.Tensor] | None,
    max_layer: float,
    round_to: int,
    layer_shares: dict[str, float],
    units: list[Unit],
) -> dict[nn.Module, torch.Tensor]:
    """The lowest ``share`` of each coupled unit (scores: the max over the unit's layers, each over its layer's mean,
    as the pruning rule takes the max of the group), keeping a multiple of ``round_to`` channels; ``layer_shares``
    replace ``share`` for the units under their module."""
    out = {bn: torch.zeros_like(bn.weight.detach(), dtype=torch.float32) for bn in batchnorms(model)}
    names = {m: n for n, m in model.named_modules()}
    for unit in units:
        u_share = unit_share(names[unit[0][0]], share, layer_shares)
        per_layer = []
        for bn, sl in unit:
            sc = (scores or {}).get(bn, bn.weight.detach().abs()).float()
            per_layer.append((sc / sc.mean().clamp_min(1e-12))[sl])
        n = torch.stack(per_layer).amax(0)
        keep = kept_width(n.numel(), u_share, round_to)
        k = max(0, min(int(max_layer * n.numel()), n.numel() - keep))
        mask = torch.zeros_like(n)
        mask[torch.argsort(n)[:k]] = 1.0
        for bn, sl in unit:
            out[bn][sl] = mask
    return out


@torch.no_grad()
def update_taylor_(model: nn.Module, scores: dict[nn.Module, torch.Tensor], beta: float = 0.9) -> None:
    """Running mean of |gamma * dL/dgamma| per BN channel: what the loss would lose, to first order, without it.

    A channel the loss needs keeps a large score as it shrinks (its gradient grows), so it stops being pushed.
    """
    for bn in batchnorms(model):
        if bn.weight.grad is None:
            continue
        t = (bn.weight * bn.weight.grad).abs().float()
        prev = scores.get(bn)
        scores[bn] = t if prev is None else beta * prev + (1 - beta) * t


def bare_model(model: nn.Module) -> nn.Module:
    """The model inside DDP's (or DataParallel's) wrapper, whose module names (``model.22``) the layer targets use."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class ProximalSparsityTrainer(GivenModelTrainer):
    """A trainer of the given model with a proximal L1 step on BN scales after each optimizer step, before the EMA
    update.

    Set ``recipe`` with :func:`proximal_trainer` (ultralytics instantiates the class itself). ``history`` collects
    one record per epoch (lambda, share below the threshold on the EMA, mAP50-95 where validated). Under DDP the
    step runs on every rank, on the all-reduced gradients, identically (module docstring); a DDP worker gets the
    launching trainer's callbacks, so :func:`report_epoch` is added only once.
    """

    recipe: SparsityRecipe = SparsityRecipe()
    _units: tuple[nn.Module, list[Unit]] | None = None  # the coupled units, with the net they were read from

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prox_steps = 0
        self.taylor: dict[nn.Module, torch.Tensor] = {}
        self.history: list[dict[str, float]] = []
        if report_epoch not in self.callbacks["on_fit_epoch_end"]:
            self.add_callback("on_fit_epoch_end", report_epoch)
        if RANK in {-1, 0}:  # a former run's records, in a reused run folder (exist_ok)
            (Path(self.save_dir) / HISTORY_FILE).unlink(missing_ok=True)

    def validate(self) -> Any:
        """Ultralytics' validation, noting the epoch: with ``val=False`` it skips all but the last, whose metrics
        the other epochs' records must not repeat."""
        out = super().validate()
        self.validated_epoch = self.epoch
        return out

    def _total_steps(self) -> int:
        nb = len(self.train_loader) if getattr(self, "train_loader", None) is not None else 1
        return max(1, self.epochs * nb // max(1, getattr(self, "accumulate", 1)))

    def current_lambda(self) -> float:
        return self.recipe.lam_at(self.prox_steps, self._total_steps())

    def optimizer_step(self) -> None:
        """Step, then soft-threshold the BN scales, then update the EMA: on every rank alike under DDP."""
        net = bare_model(self.model)
        if self.recipe.taylor:
            update_taylor_(net, self.taylor)
        ema, self.ema = self.ema, None  # step without the EMA update; it follows the proximal step
        try:
            super().optimizer_step()
        finally:
            self.ema = ema
        lr = next((g["lr"] for g in self.optimizer.param_groups if g.get("param_group") == "bn"), None)
        if lr is None:
            lr = self.optimizer.param_groups[0]["lr"]
        self.prox_steps += 1
        scores = self.taylor if self.recipe.taylor else None
        weights = None
        if self.recipe.target > 0:
            if self.recipe.per_layer and (self._units is None or self._units[0] is not net):
                self._units = (net, coupled_units(net))
            rise = self.recipe.ramp_at(self.prox_steps, self._total_steps())
            weights = targeted_weights(
                net,
                self.recipe.target * rise,
                scores,
                self.recipe.max_layer_target,
                self.recipe.per_layer,
                self.recipe.round_to,
                {name: share * rise for name, share in self.recipe.layer_targets},
                self._units[1] if self._units else None,
            )
        prox_bn_(net, lr * self.current_lambda(), self.recipe.relative, scores, weights)
        if self.ema:
            self.ema.update(self.model)


def report_epoch(trainer: Any) -> None:
    """Per-epoch progress of sparsity training, measured on the EMA (what is validated and saved).

    Ultralytics fires the same callback once more after training, for its final validation of best.pt: skipped; so
    are DDP ranks other than 0 (same weights). The records are also written to the run folder (:data:`HISTORY_FILE`):
    after a DDP run the launching process has no trainer that recorded them.
    """
    if trainer.epoch >= trainer.epochs or RANK > 0:
        return
    net = trainer.ema.ema if getattr(trainer, "ema", None) else trainer.model
    rec = {
        "epoch": int(trainer.epoch) + 1,
        "lambda": trainer.current_lambda(),
        "share_below": share_below(net, trainer.recipe.threshold),
    }
    if getattr(trainer, "validated_epoch", None) == trainer.epoch:  # with val=False: the last epoch only
        rec["map50_95"] = float((trainer.metrics or {}).get("metrics/mAP50-95(B)", float("nan")))
    trainer.history.append(rec)
    if getattr(trainer, "save_dir", None):
        atomic_write_bytes(Path(trainer.save_dir) / HISTORY_FILE, json.dumps(trainer.history).encode())
    accuracy = f"mAP50-95 {rec['map50_95']:.3f}" if "map50_95" in rec else "not validated (val=False)"
    print(
        f"[sparsify] epoch {rec['epoch']}/{trainer.epochs}  lambda {rec['lambda']:.3g}  "
        f"BN channels below {trainer.recipe.threshold:g} x layer max (EMA): {100 * rec['share_below']:.1f}%  "
        f"{accuracy}",
        flush=True,
    )


def proximal_trainer(recipe: SparsityRecipe) -> type[ProximalSparsityTrainer]:
    """A ProximalSparsityTrainer class bound to ``recipe``."""
    return type("ProximalSparsityTrainer", (ProximalSparsityTrainer,), {"recipe": recipe})


@dataclass
class SparsityLog:
    """What a sparsity run did, epoch by epoch (for the CLI summary and the manifest)."""

    recipe: dict[str, Any]
    epochs: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def of(cls, recipe: SparsityRecipe, history: list[dict[str, float]]) -> SparsityLog:
        return cls(recipe=asdict(recipe), epochs=list(history))
