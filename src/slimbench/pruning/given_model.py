"""Train the model a checkpoint holds, not one rebuilt from its YAML.

ultralytics' trainer builds a fresh model from the checkpoint's YAML and copies the tensors whose shapes fit. A pruned
checkpoint keeps the YAML of the model it was pruned from, so the rebuilt model has the unpruned widths, most tensors
do not fit, and training would start a full-width model from random weights while the log says only "Transferred
116/499 items". Every trainer here (sparsity, recovery, fine-tuning) trains such a checkpoint as it is.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import RANK

from slimbench.core.errors import SlimbenchError
from slimbench.model.static_metrics import count_params


def trainable(model: nn.Module) -> nn.Module:
    """The loaded model in FP32 with every parameter trainable (a checkpoint is saved in FP16, gradients off)."""
    model = model.float()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def untransferred(given: nn.Module, built: nn.Module) -> list[str]:
    """Tensors of ``given`` outside the detection head that ultralytics' load did not copy into ``built``: its own
    criterion (``intersect_dicts``: the same name and shape)."""
    from ultralytics.utils.torch_utils import intersect_dicts

    head = f"model.{len(built.model) - 1}." if hasattr(built, "model") else "\0"
    body = {k: v for k, v in given.state_dict().items() if not k.startswith(head)}
    copied = intersect_dicts(body, built.state_dict())
    return [k for k in body if k not in copied]


class GivenModelTrainer(DetectionTrainer):
    """DetectionTrainer that trains a loaded checkpoint as it is when it does not fit its own YAML (a pruned one).

    A checkpoint that fits is rebuilt and loaded as ultralytics does, tensor for tensor the same model (and the same
    random draws, so a build from an unpruned original trains as it always has); with another class count than the
    data's it gets a new head. A pruned checkpoint with another class count is refused in one line: its other tensors
    fit no rebuilt model. A model YAML (training from scratch) is built as ultralytics builds it.
    """

    def get_model(self, cfg: Any = None, weights: nn.Module | None = None, verbose: bool = True) -> nn.Module:
        model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        if not isinstance(weights, nn.Module):
            return model
        lost = untransferred(weights, model)
        if not lost:
            return model
        if getattr(weights, "nc", None) == self.data["nc"]:
            if RANK in {-1, 0}:  # ultralytics has just printed the rebuilt model and "Transferred k/n items"
                kept = count_params(weights)
                print(f"[train] the checkpoint does not fit its YAML (pruned): trained as it is, {kept:,} parameters")
            return trainable(weights)
        raise SlimbenchError(
            f"the checkpoint has {weights.nc} classes and the data {self.data['nc']}, and {len(lost)} of its tensors "
            f"(e.g. {lost[0]}) do not fit a model rebuilt from its YAML (a pruned model): train it on data with its "
            "own classes"
        )
