"""Training through ultralytics' own trainer, with the two changes pruning needs.

- :class:`SparsityTrainer`: Network Slimming. After each backward pass, ``lambda * sign(gamma)`` is added to every
  BatchNorm weight gradient, the subgradient of an L1 penalty on the BN scales, so unimportant channels drift to
  zero before pruning. No ultralytics callback runs between ``backward()`` and the optimizer step, so it lives in an
  ``optimizer_step`` override. Float16 AMP is off (a scaled gradient would scale the penalty too); bfloat16 needs no
  scaler.
- :class:`ShapeKeepingTrainer`: fine-tuning, which needs a loaded checkpoint, trained as it is. Every trainer here
  trains a pruned checkpoint as it is (:mod:`slimbench.pruning.given_model`): ultralytics' own rebuilds the model
  from its YAML and copies matching weights, which silently undoes pruning.

Both work under ultralytics' multi-GPU launcher (``device=0,1``): it cloudpickles the trainer class (with its
settings as class attributes), args, model and callbacks into a file each worker loads, rebuilds the trainer from it
and sets its model to the pickled one, so each rank trains the model ``get_model`` returned in the launching process
(the pruned one) and ``setup_model`` rebuilds nothing. The penalty is added to the all-reduced gradients, the same on
every rank, so the ranks stay identical (:mod:`slimbench.pruning.sparsity` for the proximal step).

On the CPU, ultralytics' ``select_device`` sets torch to ``min(8, cpus - 1)`` threads, leaving one core for data
workers, yet it runs no workers on the CPU: on 2 cores it trains on one thread with the other core idle. ``train``
states its thread count instead (default: every CPU this process may use); measured here, one epoch of 1000 images
at 256 px took 131 s on 1 thread and 92 s on 2.

``channels_last`` (CPU only) trains the model in NHWC memory layout, which oneDNN's convolutions run faster on an
AVX-512 CPU (yolo26n at batch 32, 256 px, forward and backward: 1.00 s against 1.35 s a step; an epoch about 15%
shorter, docs/bundled-variants.md). The EMA, which ultralytics validates and saves, stays in the usual layout, so the
checkpoints are the same kind of file. The floats differ in the last bits, so a run is another run than without it.
``bf16`` (CPU only) trains in bfloat16 mixed precision; the weights and the loss stay float32. What a step gains, and on
which CPUs, is measured in :mod:`slimbench.pruning.cpu_bf16`'s docstring.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer

from slimbench.core.errors import SlimbenchError
from slimbench.pruning.cpu_bf16 import check_cpu_only, cpu_bf16_autocast, float32_loss
from slimbench.pruning.given_model import GivenModelTrainer, trainable
from slimbench.pruning.sparsity import HISTORY_FILE, RECIPE_TRAIN_ARGS, SparsityRecipe, proximal_trainer

os.environ.setdefault("YOLO_OFFLINE", "1")


class SparsityTrainer(GivenModelTrainer):
    """A trainer of the given model adding an L1 penalty on BN scales; set ``sparsity`` with :func:`sparsity_trainer`.

    Under DDP the penalty goes onto the gradients after DDP has all-reduced them, so every rank steps alike.
    """

    sparsity: float = 1e-3

    def optimizer_step(self) -> None:
        lam = float(self.sparsity)
        if lam > 0:
            with torch.no_grad():
                for m in self.model.modules():
                    if isinstance(m, nn.BatchNorm2d) and m.weight is not None and m.weight.grad is not None:
                        m.weight.grad.add_(lam * torch.sign(m.weight.detach()))
        super().optimizer_step()


def sparsity_trainer(strength: float) -> type[SparsityTrainer]:
    """A SparsityTrainer class with the given L1 strength (ultralytics instantiates the class itself)."""
    if strength < 0:
        raise SlimbenchError(f"--sparsity must be >= 0, got {strength}")
    return type("SparsityTrainer", (SparsityTrainer,), {"sparsity": float(strength)})


class ShapeKeepingTrainer(GivenModelTrainer):
    """Fine-tunes the given (pruned) model as it is; a model YAML is refused.

    A DDP worker gets the model this returned in the launching process, pickled, and trains it as it is.
    """

    def get_model(self, cfg: Any = None, weights: nn.Module | None = None, verbose: bool = True) -> nn.Module:
        if not isinstance(weights, nn.Module):
            raise SlimbenchError("fine-tuning needs a loaded checkpoint (a .pt file), not a model YAML")
        return trainable(weights)


@dataclass
class TrainOutcome:
    """Where training left its best checkpoint, and the final validation metrics."""

    best: Path
    metrics: dict[str, float]
    last: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per-epoch sparsity progress, when recorded


def train(
    model: str | Path,
    data: str | Path,
    *,
    epochs: int,
    imgsz: int,
    batch: int,
    project: str | Path,
    name: str,
    device: str = "cpu",
    sparsity: float = 0.0,
    keep_shape: bool = False,
    recipe: SparsityRecipe | None = None,
    seed: int = 0,
    threads: int | None = None,
    callbacks: dict[str, list[Any]] | None = None,
    channels_last: bool = False,
    bf16: bool = False,
    **overrides: Any,
) -> TrainOutcome:
    """Train ``model`` (a YAML or a .pt) on ``data`` offline; return the best checkpoint and its metrics.

    ``sparsity > 0`` trains with the BN L1 subgradient; ``recipe`` with the proximal sparsity step and its training
    settings (:mod:`slimbench.pruning.sparsity`; ``overrides`` still win); ``keep_shape`` fine-tunes a pruned
    checkpoint as it is. ``threads``: torch threads on the CPU (default: every CPU this process may use).
    ``callbacks``: ultralytics event -> callbacks to add (e.g. :class:`pruning.convergence.StopWhenConverged`).
    ``channels_last``: train in NHWC layout; ``bf16``: in bfloat16 mixed precision (both CPU only; see the
    module's docstring).
    """
    from ultralytics import YOLO

    from slimbench.measure.timing import available_cpus

    if (sparsity > 0 or recipe is not None) and keep_shape:
        raise SlimbenchError("sparsity training and shape-keeping fine-tuning are separate stages")
    if channels_last:
        check_cpu_only("--channels-last", device)
    if bf16:
        check_cpu_only("--bf16", device)
    if sparsity > 0 and recipe is not None:
        raise SlimbenchError("choose one sparsity method: the subgradient (sparsity) or the proximal recipe")
    trainer: type[DetectionTrainer] = GivenModelTrainer  # a pruned checkpoint trains as it is
    if recipe is not None:
        trainer = proximal_trainer(recipe)
        overrides = {**RECIPE_TRAIN_ARGS, "nbs": batch, **overrides}
    elif sparsity > 0:
        trainer = sparsity_trainer(sparsity)
    elif keep_shape:
        trainer = ShapeKeepingTrainer
    args: dict[str, Any] = {
        "data": str(data),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "project": str(Path(project).resolve()),
        "name": name,
        "exist_ok": True,
        "plots": False,  # plots fetch a font at run time; nothing may download here
        "amp": "bf16" if bf16 else False,
        "seed": seed,
        "deterministic": True,
        "verbose": False,
        **overrides,
    }
    yolo = YOLO(str(model), task="detect")
    n_threads = threads or available_cpus()
    if n_threads < 1:
        raise SlimbenchError(f"training threads must be >= 1, got {n_threads}")
    before = torch.get_num_threads()
    # after select_device (trainer __init__), before the first batch
    yolo.add_callback("on_pretrain_routine_end", lambda _trainer: torch.set_num_threads(n_threads))
    if channels_last:  # the optimizer and the EMA exist by now: the same parameters, their data in NHWC
        yolo.add_callback("on_pretrain_routine_end", _to_channels_last)
    if bf16:
        yolo.add_callback("on_pretrain_routine_end", float32_loss)
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            yolo.add_callback(event, fn)
    print(f"[train] {name}: {n_threads} torch thread(s) on the CPU", flush=True)
    try:
        with cpu_bf16_autocast() if bf16 else nullcontext():
            yolo.train(trainer=trainer, **args)
    finally:
        torch.set_num_threads(before)
    best = Path(yolo.trainer.best if yolo.trainer.best.exists() else yolo.trainer.last)
    # after a DDP run the trainer here validated nothing: ultralytics reads the metrics back from the checkpoint
    metrics = getattr(yolo.trainer, "metrics", None) or (yolo.metrics if isinstance(yolo.metrics, dict) else {})
    return TrainOutcome(
        best=best,
        metrics={k: float(v) for k, v in metrics.items()},
        last=Path(yolo.trainer.last),
        history=list(getattr(yolo.trainer, "history", [])) or (saved_history(yolo.trainer.save_dir) if recipe else []),
    )


def _to_channels_last(trainer: Any) -> None:
    trainer.model.to(memory_format=torch.channels_last)


def saved_history(run_dir: str | Path) -> list[dict[str, float]]:
    """The per-epoch sparsity records a run wrote (a DDP worker's rank 0 does; the launching trainer has none)."""
    import json

    path = Path(run_dir) / HISTORY_FILE
    return list(json.loads(path.read_text())) if path.is_file() else []
