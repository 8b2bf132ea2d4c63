"""Structural channel pruning of a YOLOv8, YOLO11 or YOLO26 DetectionModel with torch-pruning.

Three steps kept apart (see STYLE.md): rewrite the blocks torch-pruning misreads so the graph is simple
(:mod:`slimbench.pruning.c2f` for C2f/C3k2, :mod:`slimbench.pruning.psa` for C2PSA and attention, which is kept
whole), score channels by BatchNorm scale (Network Slimming), remove them with torch-pruning's dependency graph under
a deadline (:mod:`slimbench.pruning.deadline`), then fold the rewrites back so the result is a plain ultralytics model.
Unsupported models are refused before any graph is built (:mod:`slimbench.pruning.support`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.block import Attention

from slimbench.model.static_metrics import channels_removed_pct, conv_channels, count_params
from slimbench.pruning.c2f import fold_c2f, split_c2f
from slimbench.pruning.deadline import run_with_deadline
from slimbench.pruning.kept import head_output_layers, head_towers, kept_unpruned
from slimbench.pruning.psa import KeptWhole, fold_c2psa, kept_whole, opaque_attention, split_c2psa
from slimbench.pruning.support import check_prunable

__all__ = ["PruneResult", "count_params", "head_output_layers", "kept_unpruned", "prune_detection_model"]

DEFAULT_DEADLINE_S = 300.0


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
    kept_reasons: dict[str, str] = field(default_factory=dict)  # conv name -> why it is kept whole
    seconds: float = 0.0

    @property
    def prunable_channels_before(self) -> int:
        return sum(self.channels_before[k] for k in self.prunable_layers)

    @property
    def prunable_channels_after(self) -> int:
        return sum(self.channels_after.get(k, 0) for k in self.prunable_layers)

    @property
    def prunable_layers(self) -> list[str]:
        """Layers whose width changed or could have: every conv outside the kept ones."""
        return [k for k in self.channels_before if not k.startswith(self.kept_layers)]

    @property
    def channels_removed_pct(self) -> float:
        """The suite's figure (:func:`model.static_metrics.channels_removed_pct`): share of prunable channels."""
        b = self.prunable_channels_before
        return channels_removed_pct(b, self.prunable_channels_after) if b else 0.0


def trace_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """What torch-pruning traces: backbone and neck as ultralytics' ``_predict_once`` runs them, then every head
    tower (one-to-many and one-to-one). Leaving out the decode (DFL softmax, anchors, YOLO26's top-k) keeps the graph
    to the convolutions whose channels can change."""
    y: list[torch.Tensor | None] = []
    layers = model.model
    for m in layers[:-1]:
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x if m.i in model.save else None)
    head = layers[-1]
    feats = [x if j == -1 else y[j] for j in head.f]
    return [tower(f) for towers in head_towers(head) for tower, f in zip(towers, feats, strict=True)]


@contextlib.contextmanager
def split_prune_fold(model: nn.Module, result: PruneResult, example_imgsz: int) -> Iterator[torch.Tensor]:
    """The frame both pruning rules run in: record ``result``'s channels and params before, split the blocks
    torch-pruning misreads (C2f/C3k2, C2PSA), make every parameter require grad (torch-pruning's graph leaves out the
    others) and hand over an example input; after the body, fold the rewrites back into plain ultralytics modules,
    put the model in eval mode and record the figures after.

    When the body raises (a deadline, a refused group) the model is left split and half-pruned: the caller discards
    it (the CLI writes nothing)."""
    result.channels_before = conv_channels(model)
    result.params_before = count_params(model)
    split_c2f(model)
    split_c2psa(model)
    for p in model.parameters():
        p.requires_grad_(True)
    yield torch.randn(1, 3, example_imgsz, example_imgsz, device=next(model.parameters()).device)
    fold_c2psa(model)
    fold_c2f(model)
    model.eval()
    result.channels_after = conv_channels(model)
    result.params_after = count_params(model)


def prune_detection_model(
    model: nn.Module,
    ratio: float,
    *,
    global_pruning: bool = False,
    round_to: int | None = 8,
    max_layer_ratio: float = 0.9,
    example_imgsz: int = 160,
    deadline_s: float = DEFAULT_DEADLINE_S,
    on_group: Callable[[tp.Group], None] | None = None,
) -> PruneResult:
    """Remove ``ratio`` of the prunable channels of a YOLOv8/YOLO11/YOLO26 ``DetectionModel`` in place, by BN scale.

    The Detect head's outputs (and YOLO26's one-to-one towers' outputs) are kept; its towers' input and hidden
    channels still shrink with the neck. Attention is kept whole (see :mod:`slimbench.pruning.psa`). Unsupported
    models raise :class:`pruning.support.UnsupportedModelError` before any work; graph building and
    pruning run under ``deadline_s`` (:class:`pruning.deadline.DeadlineExceeded` past it). ``on_group``
    sees each group just before it is pruned (tests mask the same channels in a twin). The model comes back as plain
    ultralytics modules, in eval mode, in FP32.
    """
    import time

    if not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be in (0, 1), got {ratio}")
    check_prunable(model)
    t0 = time.perf_counter()
    model.float().eval()
    reasons = kept_unpruned(model)
    result = PruneResult(
        ratio=ratio,
        global_pruning=global_pruning,
        round_to=round_to,
        kept_layers=tuple(reasons),
        kept_reasons=reasons,
    )

    def build_and_prune(example: torch.Tensor) -> None:
        with opaque_attention(model):
            pruner = tp.pruner.BasePruner(
                model,
                example,
                importance=tp.importance.BNScaleImportance(),
                global_pruning=global_pruning,
                pruning_ratio=ratio,
                max_pruning_ratio=max_layer_ratio,
                ignored_layers=head_output_layers(model) + kept_whole(model),
                customized_pruners={Attention: KeptWhole()},
                round_to=round_to,
                forward_fn=trace_outputs,
            )
        for group in pruner.step(interactive=True):
            if on_group is not None:
                on_group(group)
            group.prune()

    with split_prune_fold(model, result, example_imgsz) as example:
        # past the deadline the model is left half-pruned and split: the caller discards it (the CLI writes nothing)
        run_with_deadline(
            lambda: build_and_prune(example),
            deadline_s,
            "torch-pruning's dependency graph (build and group collection)",
        )
    result.seconds = time.perf_counter() - t0
    return result
