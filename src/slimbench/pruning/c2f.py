"""Make YOLOv8's C2f prunable, and fold it back afterwards.

torch-pruning mis-indexes channels through ``cv1(x).chunk(2, 1)``. :func:`split_c2f` replaces each C2f by
:class:`C2fSplit`, whose ``cv0``/``cv1`` are two 1x1 convs carrying the two halves of the original ``cv1`` (weights
and BN statistics, eps and momentum too), so the graph has no ``chunk`` and outputs are unchanged.
:func:`fold_c2f` turns the pruned ``C2fSplit`` back into ultralytics' own ``C2f`` so that a pruned checkpoint loads
where slimbench is not installed. Unequal halves (global pruning) are padded with zero channels, which keeps the
outputs exact.
"""

from __future__ import annotations

import torch
from torch import nn
from ultralytics.nn.modules.block import C2f
from ultralytics.nn.modules.conv import Conv

# Attributes ultralytics' parse_model hangs on every layer of DetectionModel.model and reads in _predict_once.
_LAYER_ATTRS = ("i", "f", "type", "np")


class C2fSplit(nn.Module):
    """C2f without ``chunk``: ``cv0`` and ``cv1`` compute the two halves that C2f's ``cv1`` would."""

    def __init__(self, cv0: Conv, cv1: Conv, cv2: Conv, m: nn.ModuleList):
        super().__init__()
        self.cv0, self.cv1, self.cv2, self.m = cv0, cv1, cv2, m

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


def _slice_conv(src: Conv, idx: torch.Tensor) -> Conv:
    """A copy of ``src`` keeping only output channels ``idx`` (conv weights and every BN statistic)."""
    w = src.conv.weight.data
    conv = nn.Conv2d(
        src.conv.in_channels,
        len(idx),
        src.conv.kernel_size,
        src.conv.stride,
        src.conv.padding,
        src.conv.dilation,
        src.conv.groups,
        bias=src.conv.bias is not None,
    ).to(w.device, w.dtype)
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


def _iter_parents(root: nn.Module):
    for parent in root.modules():
        for name, child in parent.named_children():
            yield parent, name, child


def split_c2f(model: nn.Module) -> int:
    """Replace every exact ``C2f`` in ``model`` by an equivalent :class:`C2fSplit`, in place; return the count.

    The model's train/eval mode is kept (new modules would otherwise start in training mode).
    """
    training = model.training
    n = 0
    for parent, name, child in list(_iter_parents(model)):
        if type(child) is not C2f:
            continue
        c = child.c
        idx0 = torch.arange(0, c, device=child.cv1.conv.weight.device)
        idx1 = torch.arange(c, 2 * c, device=child.cv1.conv.weight.device)
        new = C2fSplit(_slice_conv(child.cv1, idx0), _slice_conv(child.cv1, idx1), child.cv2, child.m)
        _copy_layer_attrs(child, new)
        setattr(parent, name, new)
        n += 1
    model.train(training)
    return n


def _pad_conv_out(conv_mod: Conv, width: int) -> Conv:
    """Add zero output channels up to ``width``: zero weights, gamma=beta=0, so they output act(0) = 0 for SiLU."""
    extra = width - conv_mod.conv.out_channels
    if extra <= 0:
        return conv_mod
    c, bn = conv_mod.conv, conv_mod.bn
    if not isinstance(conv_mod.act, nn.SiLU | nn.ReLU | nn.Identity):
        raise ValueError(f"cannot pad a C2f half with activation {type(conv_mod.act).__name__}")
    new_c = nn.Conv2d(
        c.in_channels,
        width,
        c.kernel_size,
        c.stride,
        c.padding,
        c.dilation,
        c.groups,
        bias=c.bias is not None,
    ).to(c.weight.device, c.weight.dtype)
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
    new_c = nn.Conv2d(
        width,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        1,
        bias=conv.bias is not None,
    ).to(conv.weight.device, conv.weight.dtype)
    new_c.weight.data.zero_()
    new_c.weight.data[:, positions] = conv.weight.data
    if conv.bias is not None:
        new_c.bias.data.copy_(conv.bias.data)
    return new_c


def _fold_one(s: C2fSplit) -> C2f:
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
            b.cv1.conv = _pad_conv_in(b.cv1.conv, torch.arange(in_real, device=dev), in_pad)
        out_real = b.cv2.conv.out_channels
        out_pad = out_real
        if b.add and in_pad != out_real:
            b.cv2 = _pad_conv_out(b.cv2, in_pad)
            out_pad = in_pad
        real.append(out_real)
        padded.append(out_pad)
    cv2 = s.cv2
    if real != padded:
        starts = torch.tensor([0] + padded).cumsum(0)[:-1].tolist()
        positions = torch.cat([torch.arange(st, st + w) for st, w in zip(starts, real, strict=True)]).to(dev)
        cv2.conv = _pad_conv_in(cv2.conv, positions, sum(padded))
    n = len(s.m)
    folded = C2f.__new__(C2f)
    nn.Module.__init__(folded)
    folded.c = c
    w = torch.cat([cv0.conv.weight.data, cv1.conv.weight.data])
    conv = nn.Conv2d(
        cv0.conv.in_channels,
        2 * c,
        cv0.conv.kernel_size,
        cv0.conv.stride,
        cv0.conv.padding,
        cv0.conv.dilation,
        cv0.conv.groups,
        bias=False,
    ).to(w.device, w.dtype)
    conv.weight.data.copy_(w)
    bn = nn.BatchNorm2d(2 * c, eps=cv0.bn.eps, momentum=cv0.bn.momentum).to(w.device, w.dtype)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn, name).data.copy_(torch.cat([getattr(cv0.bn, name).data, getattr(cv1.bn, name).data]))
    bn.num_batches_tracked.data.copy_(cv0.bn.num_batches_tracked.data)
    folded.cv1 = _conv_like(s.cv0, conv, bn)
    folded.cv2 = cv2
    folded.m = s.m
    assert len(folded.m) == n
    _copy_layer_attrs(s, folded)
    return folded


def fold_c2f(model: nn.Module) -> int:
    """Replace every :class:`C2fSplit` by ultralytics' ``C2f`` with the same function, in place; return the count."""
    training = model.training
    n = 0
    for parent, name, child in list(_iter_parents(model)):
        if isinstance(child, C2fSplit):
            setattr(parent, name, _fold_one(child))
            n += 1
    model.train(training)
    return n
