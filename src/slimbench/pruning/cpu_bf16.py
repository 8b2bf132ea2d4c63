"""bfloat16 mixed precision for training on the CPU, through ultralytics' own trainer.

Why: on a CPU with native bfloat16 (AVX-512 BF16 or AMX), oneDNN runs convolutions in bfloat16 much faster than in
float32. yolo26n at batch 32, 256 px, forward and backward, 2 threads on a Zen 4 EPYC: 0.55 s a step in NHWC with
bfloat16 autocast against 0.90 s in NHWC float32 and 1.22 s in the usual layout (docs/bundled-variants.md). The
weights, the optimizer and the EMA stay float32 (autocast casts per op), so no gradient scaler is needed and the
L1 penalty and the proximal step act on float32 scales as without it.

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
