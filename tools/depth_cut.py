"""Cut the residual blocks out of a YOLO detector's C3k2 layers: what fewer layers would buy, and cost.

    python tools/depth_cut.py CHECKPOINT OUT --layers model.2,model.4   (or --layers all)

Channel pruning keeps every layer; on 2 threads the pruned model's thin layers hardly use the second core, so fewer
layers is the lever left. This probe removes, in each named C3k2, its inner block: a C3k's bottlenecks (the C3k then
computes ``cv3(cat(cv1(x), cv2(x)))``), or a lone residual Bottleneck, whose output ``b + f(b)`` becomes ``b``, so
its chunk folds onto ``b``'s weights in ``cv2`` and the concatenation loses it. Exact where ``f`` is zero, an
approximation otherwise, to be fine-tuned (``slimbench finetune``). The result is a plain ultralytics checkpoint
(C3k2 with no inner block is a valid module). docs/bundled-variants.md (Threads) gives what it measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from slimbench.core.errors import SlimbenchError
from slimbench.model.checkpoint import load_detector, save_detector


def cut_layers(net: nn.Module, layers: list[str]) -> list[str]:
    """Remove the inner block of each named C3k2 of ``net`` (a DetectionModel) in place; the names cut, in order."""
    from ultralytics.nn.modules.block import C3k, C3k2

    blocks = {name: m for name, m in net.named_modules() if isinstance(m, C3k2)}
    unknown = [n for n in layers if n not in blocks]
    if unknown:
        raise SlimbenchError(f"--layers: not a C3k2 layer: {', '.join(unknown)} (C3k2 layers: {', '.join(blocks)})")
    cut = []
    for name in layers:
        block = blocks[name]
        inner = block.m[0] if len(block.m) == 1 else None
        if isinstance(inner, C3k):  # its bottlenecks go, residual or not: cv3(cat(cv1(x), cv2(x))) stays valid
            inner.m = nn.Sequential()
        elif inner is not None and getattr(inner, "add", False):  # a residual Bottleneck: b + f(b) -> b
            conv, c = block.cv2.conv, block.c
            w = conv.weight.data
            folded = nn.Conv2d(2 * c, conv.out_channels, 1, 1, 0, bias=False).to(w.dtype)
            folded.weight.data = torch.cat([w[:, :c], w[:, c : 2 * c] + w[:, 2 * c : 3 * c]], 1)
            block.cv2.conv = folded
            block.m = nn.ModuleList()
        else:
            continue  # attention (YOLO26's model.22), a non-residual Bottleneck or several blocks: kept
        cut.append(name)
    return cut


def wanted_names(net: nn.Module, layers: str) -> list[str]:
    """The C3k2 names ``--layers`` asked for (``all``: every C3k2 of ``net``)."""
    from ultralytics.nn.modules.block import C3k2

    names = [s.strip() for s in layers.split(",") if s.strip()]
    return [n for n, m in net.named_modules() if isinstance(m, C3k2)] if names == ["all"] else names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--layers", required=True, help="comma-separated C3k2 layer names (model.N), or all")
    ap.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = ap.parse_args(argv)
    try:
        if Path(args.out).exists() and (not args.force or Path(args.out).resolve() == Path(args.checkpoint).resolve()):
            raise SlimbenchError(f"{args.out}: exists; refusing to overwrite (--force, and never the input checkpoint)")
        yolo = load_detector(args.checkpoint)
        net = yolo.model.float()
        before = sum(p.numel() for p in net.parameters())
        wanted = wanted_names(net, args.layers)
        cut = cut_layers(net, wanted)
    except SlimbenchError as e:
        print(f"depth_cut: {e}", file=sys.stderr)
        return 2
    save_detector(net, args.out)
    after = sum(p.numel() for p in net.parameters())
    kept = [n for n in wanted if n not in cut]
    note = f"; kept whole (attention, or not one residual block): {', '.join(kept)}" if kept else ""
    names = ", ".join(cut) or "none"
    print(f"cut {len(cut)} block(s): {names}{note}; params {before:,} -> {after:,}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
