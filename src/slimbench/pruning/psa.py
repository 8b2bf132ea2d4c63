"""YOLO11/YOLO26 attention (C2PSA, PSABlock, Attention): kept whole, pruned around.

Choice: the attention internals are **not** pruned. ultralytics' ``Attention.forward`` reads the channel count
from its input (``B, C, H, W = x.shape``) and reshapes ``v`` to exactly that width, and every PSABlock adds its
input back (``x + attn(x)``, ``x + ffn(x)``). So ``qkv``'s input, ``v`` (per head), ``pe`` (depthwise), ``proj`` and
the residual stream form one group, and pruning it would need whole heads, an unchanged ``key_dim`` (the softmax
scale) and the stream cut to the same width: a rewrite of the attention math for a block that holds about 2% of the
parameters of yolo11n/yolo26n. We keep that group and prune what sits around it: the PSABlock FFN's hidden width,
C2PSA's output conv, and everything feeding C2PSA.

How, with torch-pruning's own API:

- each ``Attention`` is registered as a customized layer (:class:`KeptWhole`) and listed in ``ignored_layers``, so
  every group that would change its channels is skipped (torch-pruning drops a group that touches an ignored layer);
- while the graph is traced, ``Attention.forward`` runs inside one autograd node (:func:`opaque_attention`), so the
  tracer sees one layer, not the view/split/matmul inside it;
- C2PSA's ``cv1(x).split((c, c))`` is rewritten, as for C2f, into two 1x1 convs (:class:`C2PSASplit`); both halves
  stay whole (``split`` needs equal halves and the second one is the attention stream), and
  :func:`fold_c2psa` joins them back into ultralytics' own ``C2PSA``; the same holds for the halves of YOLO26's
  C3k2 whose inner block carries a PSABlock. Inside it, the Bottleneck's hidden width and the FFN's still shrink.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch_pruning as tp
from torch import nn
from ultralytics.nn.modules.block import C2PSA, Attention, PSABlock
from ultralytics.nn.modules.conv import Conv

from slimbench.pruning.c2f import C2fSplit, join_halves, replace_modules, split_halves


class C2PSASplit(nn.Module):
    """C2PSA without ``split``: ``cv0`` and ``cv1`` compute the two halves that C2PSA's ``cv1`` would."""

    def __init__(self, cv0: Conv, cv1: Conv, cv2: Conv, m: nn.Sequential, c: int):
        super().__init__()
        self.cv0, self.cv1, self.cv2, self.m, self.c = cv0, cv1, cv2, m, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(torch.cat((self.cv0(x), self.m(self.cv1(x))), 1))


def split_c2psa(model: nn.Module) -> int:
    """Replace every exact ``C2PSA`` by an equivalent :class:`C2PSASplit`, in place; return the count."""

    def swap(child: nn.Module, name: str) -> C2PSASplit | None:
        if type(child) is not C2PSA:
            return None
        return C2PSASplit(*split_halves(child.cv1, child.c), child.cv2, child.m, child.c)

    return replace_modules(model, swap)


def fold_c2psa(model: nn.Module) -> int:
    """Replace every :class:`C2PSASplit` by ultralytics' ``C2PSA`` with the same function, in place."""

    def swap(child: nn.Module, name: str) -> C2PSA | None:
        if not isinstance(child, C2PSASplit):
            return None
        if child.cv0.conv.out_channels != child.cv1.conv.out_channels:
            raise ValueError(f"{name}: C2PSA halves were pruned to unequal widths; they must stay whole")
        folded = C2PSA.__new__(C2PSA)
        nn.Module.__init__(folded)
        folded.c = child.cv0.conv.out_channels
        folded.cv1 = join_halves(child.cv0, child.cv1)
        folded.cv2, folded.m = child.cv2, child.m
        return folded

    return replace_modules(model, swap)


def kept_whole(model: nn.Module) -> list[nn.Module]:
    """The layers whose channels must not change: every Attention, and both halves of the ``cv1`` of each C2PSA
    and of each C3k2 holding attention (YOLO26): the second half is the attention stream, and ``split((c, c))`` /
    ``chunk(2)`` need the first one as wide (pruning it alone would only be padded back with zero channels)."""
    kept: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, Attention):
            kept.append(m)
        elif isinstance(m, C2PSASplit) or (
            isinstance(m, C2fSplit) and any(isinstance(b, PSABlock) for b in m.m.modules())
        ):
            kept += [m.cv0.conv, m.cv1.conv]
    return kept


class KeptWhole(tp.pruner.function.BasePruningFunc):
    """torch-pruning's view of an Attention: one layer, input and output of its width, never pruned."""

    TARGET_MODULES = (Attention,)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError("attention is kept whole; its group should have been skipped (ignored_layers)")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.qkv.conv.in_channels

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.qkv.conv.in_channels


class _Opaque(torch.autograd.Function):
    """Run a module without recording its inside: the output's grad_fn leads straight back to the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fn) -> torch.Tensor:  # noqa: ANN001 - autograd signature
        return fn(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN205 - autograd signature
        return grad, None


@contextlib.contextmanager
def opaque_attention(model: nn.Module) -> Iterator[None]:
    """While tracing, each Attention is one autograd node (the tracer records it as the KeptWhole layer)."""
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    for a in layers:
        original = type(a).forward.__get__(a)
        a.forward = lambda x, _f=original: _Opaque.apply(x, _f)
    try:
        yield
    finally:
        for a in layers:
            del a.forward
