"""How long one training step takes on the CPU per precision and memory layout: what ``--bf16`` and
``--channels-last`` buy before a build is started with them.

    python tools/train_step_time.py [--model yolo26n.yaml] [--batch 32] [--imgsz 256] [--threads 2] [--rounds 3]

One step is what ultralytics' trainer does per batch: the model's forward in training mode and its detection loss
on random targets (the model's own criterion) under the mode's autocast, then the backward. Modes: ``fp32`` (the
usual NCHW layout), ``nhwc`` (model and input channels-last), ``bf16`` (CPU bfloat16 autocast), ``bf16+nhwc``. The
modes alternate round by round (5 steps each after 2 of warm-up) so that a drifting machine tilts none of them; it
prints each mode's median step in seconds and its ratio to ``fp32``. docs/bundled-variants.md gives what it measured.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

MODES = ("fp32", "nhwc", "bf16", "bf16+nhwc")


def fake_batch(batch: int, imgsz: int, classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images with 8 random boxes each, in the layout ultralytics' loss reads."""
    g = torch.Generator().manual_seed(seed)
    n = batch * 8
    xy = torch.rand(n, 2, generator=g) * 0.8 + 0.1
    wh = torch.rand(n, 2, generator=g) * 0.15 + 0.05
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "cls": torch.randint(0, classes, (n, 1), generator=g).float(),
        "bboxes": torch.cat([xy, wh], 1),
        "batch_idx": torch.arange(batch).repeat_interleave(8).float(),
    }


def step_seconds(model: torch.nn.Module, batch: dict[str, torch.Tensor], mode: str, steps: int) -> list[float]:
    """Seconds per training step in ``mode`` (forward, loss, backward; gradients zeroed between)."""
    layout = torch.channels_last if "nhwc" in mode else torch.contiguous_format
    model.to(memory_format=layout)
    b = {**batch, "img": batch["img"].contiguous(memory_format=layout)}
    out = []
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in mode else nullcontext():
            loss, _ = model.loss(b)
        loss.sum().backward()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="yolo26n.yaml")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = DetectionModel(a.model, nc=a.classes, verbose=False).train()
    model.args = get_cfg()  # the loss gains (box, cls, dfl) ultralytics' trainer sets
    batch = fake_batch(a.batch, a.imgsz, a.classes)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(a.rounds):
        for mode in MODES if r % 2 == 0 else reversed(MODES):
            times[mode] += step_seconds(model, batch, mode, 7)[2:]
    base = statistics.median(times["fp32"])
    print(f"{a.model}, batch {a.batch}, {a.imgsz} px, {a.threads} thread(s), {a.rounds} rounds of 5 steps per mode")
    for mode in MODES:
        med = statistics.median(times[mode])
        print(f"  {mode:10s} {med:6.3f} s a step   {med / base:5.2f}x fp32")


if __name__ == "__main__":
    main()
