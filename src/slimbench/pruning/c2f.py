"""Make C2f and YOLO11/YOLO26's C3k2 prunable, and fold them back afterwards.

torch-pruning mis-indexes channels through ``cv1(x).chunk(2, 1)`` (and its index mapping never finishes on the
nested chunks of yolo11/yolo26). :func:`split_c2f` replaces each C2f, and each C3k2 (a C2f subclass with C2f's own
forward and other inner blocks), by :class:`C2fSplit`, whose ``cv0``/``cv1`` are two 1x1 convs carrying the two
halves of the original ``cv1`` (weights and BN statistics, eps and momentum too), so the graph has no ``chunk`` and
outputs are unchanged. :func:`fold_c2f` turns the pruned ``C2fSplit`` back into the class it came from (ultralytics'
own ``C2f`` or ``C3k2``) so that a pruned checkpoint loads where slimbench is not installed. Unequal halves (global
pruning) are padded with zero channels, which keeps the outputs exact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from ultralytics.nn.modules.block import C3, Bottleneck, C2f, C3k2
from ultralytics.nn.modules.conv import Conv

# Attributes ultralytics' parse_model hangs on every layer of DetectionModel.model and reads in _predict_once.
_LAYER_ATTRS = ("i", "f", "type", "np")
# C2f and its subclasses that keep C2f's forward (chunk cv1 in two, chain m on the second half, cat, cv2).
SPLITTABLE = (C2f, C3k2)


class C2fSplit(nn.Module):
    """C2f without ``chunk``: ``cv0`` and ``cv1`` compute the two halves that C2f's ``cv1`` would."""

    def __init__(self, cv0: Conv, cv1: Conv, cv2: Conv, m: nn.ModuleList, origin: type[C2f] = C2f):
        super().__init__()
        self.cv0, self.cv1, self.cv2, self.m = cv0, cv1, cv2, m
        self.origin = origin  # the class fold_c2f rebuilds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def _copy_layer_attrs(src: nn.Module, dst: nn.Module) -> None:
    for a in _LAYER_ATTRS:
        if hasattr(src, a):
            setattr(dst, a, getattr(src, a))


def _conv_like(ref: Conv, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Conv:
    """A ultralytics Conv with the given conv/bn and the activation of ``ref``."""
    new = Conv(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, g=conv.groups)
    new.conv, new.bn, new.act = conv, bn, ref.act
    return new


def _new_conv2d(
    like: nn.Conv2d, in_channels: int, out_channels: int, groups: int | None = None, bias: bool | None = None
) -> nn.Conv2d:
    """A fresh Conv2d with ``like``'s kernel, stride, padding and dilation (its groups and bias unless given), on
    ``like``'s device and dtype; the caller fills the weights."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        like.kernel_size,
        like.stride,
        like.padding,
        like.dilation,
        like.groups if groups is None else groups,
        bias=like.bias is not None if bias is None else bias,
    ).to(like.weight.device, like.weight.dtype)


def _slice_conv(src: Conv, idx: torch.Tensor) -> Conv:
    """A copy of ``src`` keeping only output channels ``idx`` (conv weights and every BN statistic)."""
    w = src.conv.weight.data
    conv = _new_conv2d(src.conv, src.conv.in_channels, len(idx))
    conv.weight.data.copy_(w[idx])
    if src.conv.bias is not None:
        conv.bias.data.copy_(src.conv.bias.data[idx])
    bn0 = src.bn
    bn = nn.BatchNorm2d(
        len(idx),
        eps=bn0.eps,
        momentum=bn0.momentum,
        affine=bn0.affine,
        track_running_stats=bn0.track_running_stats,
    ).to(w.device, w.dtype)
    bn.weight.data.copy_(bn0.weight.data[idx])
    bn.bias.data.copy_(bn0.bias.data[idx])
    bn.running_mean.data.copy_(bn0.running_mean.data[idx])
    bn.running_var.data.copy_(bn0.running_var.data[idx])
    bn.num_batches_tracked.data.copy_(bn0.num_batches_tracked.data)
    return _conv_like(src, conv, bn)


def replace_modules(model: nn.Module, swap: Callable[[nn.Module, str], nn.Module | None]) -> int:
    """Replace, in place, every module inside ``model`` for which ``swap(module, its attribute name)`` returns a
    substitute; return how many were replaced.

    The substitute gets the layer attributes ultralytics' ``parse_model`` set on the original (``i``, ``f``, ``type``,
    ``np``), and the model's train/eval mode is kept (new modules would otherwise start in training mode). The
    modules are listed before the first swap, so a substitute's own children are not visited.
    """
    training = model.training
    n = 0
    for parent, name, child in [(p, k, c) for p in model.modules() for k, c in p.named_children()]:
        new = swap(child, name)
        if new is None:
            continue
        _copy_layer_attrs(child, new)
        setattr(parent, name, new)
        n += 1
    model.train(training)
    return n


def split_halves(cv1: Conv, c: int) -> tuple[Conv, Conv]:
    """Two convs computing ``cv1(x)[:, :c]`` and ``cv1(x)[:, c:2c]``: the halves that chunk/split would give."""
    dev = cv1.conv.weight.device
    return _slice_conv(cv1, torch.arange(0, c, device=dev)), _slice_conv(cv1, torch.arange(c, 2 * c, device=dev))


def join_halves(cv0: Conv, cv1: Conv) -> Conv:
    """One conv whose output is ``cat(cv0(x), cv1(x))``: weights and BN statistics concatenated in that order."""
    w = torch.cat([cv0.conv.weight.data, cv1.conv.weight.data])
    conv = _new_conv2d(cv0.conv, cv0.conv.in_channels, w.shape[0], bias=False)
    conv.weight.data.copy_(w)
    bn = nn.BatchNorm2d(w.shape[0], eps=cv0.bn.eps, momentum=cv0.bn.momentum).to(w.device, w.dtype)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn, name).data.copy_(torch.cat([getattr(cv0.bn, name).data, getattr(cv1.bn, name).data]))
    bn.num_batches_tracked.data.copy_(cv0.bn.num_batches_tracked.data)
    return _conv_like(cv0, conv, bn)


def split_c2f(model: nn.Module) -> int:
    """Replace every ``C2f`` and ``C3k2`` in ``model`` by an equivalent :class:`C2fSplit`, in place; return the count.

    Only exact types are split (a subclass with another forward would be misread). The model's train/eval mode is
    kept (new modules would otherwise start in training mode).
    """

    def swap(child: nn.Module, name: str) -> C2fSplit | None:
        if type(child) not in SPLITTABLE:
            return None
        return C2fSplit(*split_halves(child.cv1, child.c), child.cv2, child.m, origin=type(child))

    return replace_modules(model, swap)


def _pad_conv_out(conv_mod: Conv, width: int) -> Conv:
    """Add zero output channels up to ``width``: zero weights, gamma=beta=0, so they output act(0) = 0 for SiLU."""
    extra = width - conv_mod.conv.out_channels
    if extra <= 0:
        return conv_mod
    c, bn = conv_mod.conv, conv_mod.bn
    if not isinstance(conv_mod.act, nn.SiLU | nn.ReLU | nn.Identity):
        raise ValueError(f"cannot pad a C2f half with activation {type(conv_mod.act).__name__}")
    new_c = _new_conv2d(c, c.in_channels, width)
    new_c.weight.data.zero_()
    new_c.weight.data[: c.out_channels] = c.weight.data
    if c.bias is not None:
        new_c.bias.data.zero_()
        new_c.bias.data[: c.out_channels] = c.bias.data
    new_bn = nn.BatchNorm2d(width, eps=bn.eps, momentum=bn.momentum).to(c.weight.device, c.weight.dtype)
    new_bn.weight.data.zero_()
    new_bn.bias.data.zero_()
    new_bn.running_mean.data.zero_()
    new_bn.running_var.data.fill_(1.0)
    for t_new, t_old in (
        (new_bn.weight, bn.weight),
        (new_bn.bias, bn.bias),
        (new_bn.running_mean, bn.running_mean),
        (new_bn.running_var, bn.running_var),
    ):
        t_new.data[: c.out_channels] = t_old.data
    new_bn.num_batches_tracked.data.copy_(bn.num_batches_tracked.data)
    return _conv_like(conv_mod, new_c, new_bn)


def _pad_conv_in(conv: nn.Conv2d, positions: torch.Tensor, width: int) -> nn.Conv2d:
    """Return ``conv`` with input channels moved to ``positions`` in a wider input of ``width`` (zeros elsewhere)."""
    if conv.groups != 1:
        raise ValueError("cannot re-index the input of a grouped conv")
    new_c = _new_conv2d(conv, width, conv.out_channels, groups=1)
    new_c.weight.data.zero_()
    new_c.weight.data[:, positions] = conv.weight.data
    if conv.bias is not None:
        new_c.bias.data.copy_(conv.bias.data)
    return new_c


def _widen_input(block: nn.Module, positions: torch.Tensor, width: int) -> None:
    """Let an inner block read a zero-padded input: its first convs get zero weights for the padding channels."""
    if isinstance(block, Bottleneck):
        block.cv1.conv = _pad_conv_in(block.cv1.conv, positions, width)
    elif isinstance(block, C3):  # C3k: cv1 and cv2 both read the input
        block.cv1.conv = _pad_conv_in(block.cv1.conv, positions, width)
        block.cv2.conv = _pad_conv_in(block.cv2.conv, positions, width)
    else:
        raise ValueError(f"cannot pad the input of a {type(block).__name__} inside C3k2 (unequal halves)")


def _out_width(block: nn.Module) -> int:
    """Output channels of a C3k2 inner block: Bottleneck, C3k, or YOLO26's Sequential(Bottleneck, PSABlock)."""
    if isinstance(block, nn.Sequential):  # the PSABlock keeps its (residual) width: the Bottleneck's
        return _out_width(block[0])
    return (block.cv3 if isinstance(block, C3) else block.cv2).conv.out_channels


def _fold_one(s: C2fSplit) -> C2f:
    """The C2f (or C3k2) computing what ``s`` computes; a residual inner block must be a Bottleneck to pad it."""
    c0, c1 = s.cv0.conv.out_channels, s.cv1.conv.out_channels
    c = max(c0, c1)
    cv0, cv1 = _pad_conv_out(s.cv0, c), _pad_conv_out(s.cv1, c)
    dev = s.cv2.conv.weight.device
    # cv2 reads cat(cv0, cv1, m0, m1, ...). Padding a half widens the chain of bottlenecks that reads it:
    # each one reads a wider input, and a residual one must also output that width (zero channels).
    real, padded = [c0, c1], [c, c]
    for b in s.m:
        in_real, in_pad = real[-1], padded[-1]
        if in_pad != in_real:
            _widen_input(b, torch.arange(in_real, device=dev), in_pad)
        out_real = _out_width(b)
        out_pad = out_real
        if getattr(b, "add", False) and in_pad != out_real:
            b.cv2 = _pad_conv_out(b.cv2, in_pad)
            out_pad = in_pad
        real.append(out_real)
        padded.append(out_pad)
    cv2 = s.cv2
    if real != padded:
        starts = torch.tensor([0] + padded).cumsum(0)[:-1].tolist()
        positions = torch.cat([torch.arange(st, st + w) for st, w in zip(starts, real, strict=True)]).to(dev)
        cv2.conv = _pad_conv_in(cv2.conv, positions, sum(padded))
    folded = s.origin.__new__(s.origin)
    nn.Module.__init__(folded)
    folded.c = c
    folded.cv1 = join_halves(cv0, cv1)
    folded.cv2 = cv2
    folded.m = s.m
    return folded


def fold_c2f(model: nn.Module) -> int:
    """Replace every :class:`C2fSplit` by the ultralytics class it came from (same function), in place; count them."""
    return replace_modules(model, lambda child, name: _fold_one(child) if isinstance(child, C2fSplit) else None)
