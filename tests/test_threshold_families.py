"""Network Slimming's threshold rule on YOLO11 and YOLO26 as on YOLOv8: the same graph for sparsity targets and
pruning, exact compensation, equal C3k2 halves, attention kept whole, YOLO26's one-to-one towers pruned with their
one-to-many twins."""

from __future__ import annotations

import copy

import pytest
import torch
from ultralytics.nn.modules.block import C2PSA, Attention, C2f, C3k, PSABlock
from ultralytics.nn.tasks import DetectionModel

from slimbench.pruning.groups import coupled_units
from slimbench.pruning.sparsity import batchnorms, targeted_weights
from slimbench.pruning.structural import trace_outputs
from slimbench.pruning.threshold import threshold_prune

FAMILIES = ["yolo11n.yaml", "yolo26n.yaml"]


def _model(cfg: str, seed: int = 0) -> DetectionModel:
    """An untrained nc=3 detector with BN scales in [0.5, 1.5] and varied shifts: nothing below 1% until planted."""
    torch.manual_seed(seed)
    m = DetectionModel(cfg, nc=3, verbose=False).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for bn in batchnorms(m):
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.data.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
        bn.running_mean.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
    return m


def _zero_random_half(model: DetectionModel, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in batchnorms(model):
            bn.weight[torch.rand(bn.num_features, generator=g) < 0.5] = 0.0


@pytest.mark.parametrize("cfg", FAMILIES)
def test_compensation_is_exact_off_the_borders_on_every_tower(cfg: str) -> None:
    """Half of every BN scale set to exactly zero: removing those channels with act(beta) folded into the consumers
    leaves every head tower's output (YOLO26: one-to-many and one-to-one) as it was, off a 3-cell border (zero padding
    of 3x3 consumers); without compensation the same interior is far off."""
    model = _model(cfg, seed=5)
    _zero_random_half(model, seed=7)
    ref, plain = copy.deepcopy(model), copy.deepcopy(model)
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(8))
    r = threshold_prune(model, 0.01, compensate=True)
    threshold_prune(plain, 0.01, compensate=False)
    assert r.removed > 0.3 * r.group_channels and r.compensated and r.params_after < 0.6 * r.params_before
    with torch.no_grad():
        outs = [trace_outputs(m, x) for m in (ref, model, plain)]
    assert len(outs[0]) == (12 if cfg.startswith("yolo26") else 6)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    worst_plain = 0.0
    for a, b, c in zip(*outs, strict=True):
        torch.testing.assert_close(b[inner], a[inner], rtol=0, atol=1e-3)
        worst_plain = max(worst_plain, float((c[inner] - a[inner]).abs().max()))
    assert worst_plain > 0.1, worst_plain
    model.eval()(x)  # the folded model runs its own forward (decode included)


@pytest.mark.parametrize("cfg", FAMILIES)
def test_units_couple_residual_streams_depthwise_convs_and_every_tower(cfg: str) -> None:
    """The units sparsity training targets are the pruner's groups: C3k's residual stream, a head tower's 1x1 conv
    with the depthwise conv after it, a neck output with every tower that reads it (YOLO26: one2one too)."""
    model = _model(cfg)
    names = {m: n for n, m in model.named_modules()}
    units = [{names[bn] for bn, _ in u} for u in coupled_units(model)]
    c3k = next(n for n, m in model.named_modules() if isinstance(m, C3k))
    stream = {f"{c3k}.cv1.bn", f"{c3k}.m.0.cv2.bn", f"{c3k}.m.1.cv2.bn"}
    assert stream in units
    assert {"model.23.cv3.0.0.1.bn", "model.23.cv3.0.1.0.bn"} in units  # 1x1 conv -> depthwise conv
    towers = {"model.16.cv2.bn", "model.23.cv3.0.0.0.bn"}  # P3 output -> the class tower's depthwise conv
    if cfg.startswith("yolo26"):
        towers.add("model.23.one2one_cv3.0.0.0.bn")
    assert towers in units
    attention = {n for n, m in model.named_modules() if isinstance(m, Attention)}
    assert not any(name.startswith(tuple(attention)) for u in units for name in u), "attention is never pushed"


@pytest.mark.parametrize("cfg", FAMILIES)
def test_targeted_channels_prune_to_equal_c3k2_halves_with_nothing_padded(cfg: str) -> None:
    """Sparsity's per-layer targets take equal counts from both halves of every C3k2 (and C2PSA-free C2f) cv1; with
    exactly those scales at zero, the threshold rule removes them and folds back without one zero-padded channel."""
    model = _model(cfg, seed=2)
    w = targeted_weights(model, 0.5, per_layer=True, round_to=8)
    blocks = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, C2f) and not any(isinstance(b, PSABlock) for b in m.modules())
    }
    assert blocks
    for block in blocks.values():
        c = block.c
        assert int(w[block.cv1.bn][:c].sum()) == int(w[block.cv1.bn][c:].sum()) > 0
    widths = {n: b.c for n, b in blocks.items()}
    targeted = sum(int(w[u[0][0]][u[0][1]].sum()) for u in coupled_units(model))  # once per group
    with torch.no_grad():
        for bn, mask in w.items():
            bn.weight[mask > 0] = 0.0
    r = threshold_prune(model, 0.01, compensate=True)
    assert r.removed == targeted
    for name, block in model.named_modules():  # the folded blocks are new modules: found again by name
        if name in widths:
            assert block.cv1.conv.out_channels == 2 * block.c and block.c < widths[name], name
    for name, conv in model.named_modules():
        if isinstance(conv, torch.nn.Conv2d):
            assert (conv.weight.detach().flatten(1).abs().sum(1) > 0).all(), f"{name}: zero-padded output channels"


@pytest.mark.parametrize("cfg", FAMILIES)
def test_attention_is_kept_whole_and_its_ffn_pruned(cfg: str) -> None:
    """Every scale at zero in C2PSA: attention (qkv, proj, pe), the stream and cv1's halves keep their widths, with
    the reason reported; the FFN's hidden width is pruned (up to the per-layer cap)."""
    model = _model(cfg, seed=3)
    psa = next(m for m in model.modules() if isinstance(m, C2PSA))
    attn = psa.m[0].attn
    before = {k: getattr(attn, k).conv.out_channels for k in ("qkv", "proj", "pe")}
    ffn_hidden = psa.m[0].ffn[0].conv.out_channels
    with torch.no_grad():
        for bn in batchnorms(psa):
            bn.weight.zero_()
    r = threshold_prune(model, 0.01, max_layer_ratio=0.75, compensate=True)
    assert {k: getattr(attn, k).conv.out_channels for k in before} == before
    assert (attn.num_heads, attn.key_dim, attn.head_dim) == (psa.m[0].attn.num_heads, attn.key_dim, attn.head_dim)
    assert psa.cv1.conv.out_channels == 2 * psa.c
    assert psa.m[0].ffn[0].conv.out_channels == ffn_hidden // 4  # 75% removed, the cap
    assert any("attention kept whole" in why for why in r.kept_reasons.values())
    model.eval()(torch.rand(1, 3, 64, 64))
