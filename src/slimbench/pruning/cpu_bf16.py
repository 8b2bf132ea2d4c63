"""bfloat16 mixed precision for training on the CPU, through ultralytics' own trainer.

Why: on a CPU with native bfloat16 (AVX-512 BF16 or AMX), oneDNN runs convolutions in bfloat16 much faster than in
float32. yolo26n at batch 32, 256 px, forward, loss and backward, 2 threads on a Zen 4 EPYC: 0.72 s a step in NHWC
with bfloat16 autocast against 1.02 s in NHWC float32 and 1.46 s in the usual layout (``tools/train_step_time.py``;
docs/bundled-variants.md). The
weights, the optimizer and the EMA stay float32 (autocast casts per op), so no gradient scaler is needed and the
L1 penalty and the proximal step act on float32 scales as without it. The loss is computed in float32 too
(:class:`Float32Loss`): under autocast ultralytics' detection loss would decode the boxes and compute IoU in the
predictions' dtype, and bfloat16 (8 significant bits) holds a 256 px coordinate to 1-2 px, which is the precision
mAP50-95 asks for. A YOLO26n original trained with the loss in bfloat16 ran 0.010-0.015 below the float32 one's
curve (means of 10-epoch windows, epochs 41-84; docs/bundled-variants.md).

Ultralytics 8.4 accepts ``amp="bf16"`` but its ``autocast`` helper refuses bfloat16 off CUDA, although torch's CPU
autocast has it. :func:`cpu_bf16_autocast` swaps that helper, in ultralytics' trainer module only and only for the
training call, for one that also opens a CPU bfloat16 autocast; everything else goes to ultralytics' own.
Validation is not affected: ultralytics validates on the CPU in float32 whatever ``amp`` says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from slimbench.core.errors import SlimbenchError


def check_cpu_only(option: str, device: str) -> None:
    """A CPU training option on another device is one line naming both."""
    if str(device).lower() != "cpu":
        raise SlimbenchError(f"{option} is for training on the CPU (--device cpu), got --device {device}")


@contextmanager
def cpu_bf16_autocast() -> Iterator[None]:
    """While open, ultralytics' trainer can autocast to bfloat16 on the CPU (train with ``amp="bf16"``)."""
    import ultralytics.engine.trainer as trainer_module

    own = trainer_module.autocast

    def autocast(enabled: bool | torch.dtype, device: str = "cuda") -> Any:
        if enabled is torch.bfloat16 and device == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return own(enabled, device=device)

    trainer_module.autocast = autocast
    try:
        yield
    finally:
        trainer_module.autocast = own


class Float32Loss:
    """A model's ``loss`` with the network's forward under the caller's autocast and the criterion in float32.

    Set as the trained model's ``loss`` (:func:`float32_loss`); the class's own ``loss`` does the work, so the
    criterion (and its state, such as YOLO26's one-to-many schedule) stays the model's."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __call__(self, batch: dict[str, Any], preds: Any = None) -> Any:
        if preds is None:
            preds = self.model.forward(batch["img"])
        with torch.autocast("cpu", enabled=False):
            return type(self.model).loss(self.model, batch, _as_float32(preds))


def float32_loss(trainer: Any) -> None:
    """An ultralytics callback (``on_pretrain_routine_end``): the trained model computes its loss in float32. The EMA,
    which ultralytics validates and saves, exists by then and keeps the class's own ``loss``."""
    trainer.model.loss = Float32Loss(trainer.model)


def _as_float32(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, dict):
        return {k: _as_float32(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_as_float32(v) for v in x)
    return x
