"""The C2f rewrite must not change what the model computes: split, prune-able, and folded back exactly."""

from __future__ import annotations

import copy

import pytest
import torch
import torch_pruning as tp
from ultralytics.nn.modules.block import C2f
from ultralytics.nn.tasks import DetectionModel

from slimbench.pruning.c2f import C2fSplit, fold_c2f, split_c2f


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so a wrongly copied mean/var/eps shows up in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
            m.eps = 1e-3


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolov8s.yaml"])
def test_split_and_fold_give_identical_outputs(cfg: str) -> None:
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=3, verbose=False).eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)[0]
    n_c2f = sum(type(m) is C2f for m in model.modules())
    assert n_c2f == 8

    assert split_c2f(model) == n_c2f
    assert not model.training, "split must keep eval mode (new modules start in training mode)"
    assert not any(type(m) is C2f for m in model.modules())
    split = next(m for m in model.modules() if isinstance(m, C2fSplit))
    assert split.cv0.bn.eps == 1e-3 and split.cv1.bn.momentum == split.cv0.bn.momentum
    with torch.no_grad():
        out_split = model(x)[0]
    torch.testing.assert_close(out_split, ref, rtol=1e-5, atol=1e-5)

    assert fold_c2f(model) == n_c2f
    assert sum(type(m) is C2f for m in model.modules()) == n_c2f
    with torch.no_grad():
        out_fold = model(x)[0]
    assert torch.equal(out_fold, out_split)


@pytest.mark.parametrize("shortcut", [False, True])
@pytest.mark.parametrize("half", ["cv0", "cv1"])
def test_fold_pads_unequal_halves_exactly(shortcut: bool, half: str) -> None:
    """Global pruning can leave cv0 and cv1 with different widths; folding must still be exact."""
    torch.manual_seed(1)
    block = torch.nn.Sequential(C2f(16, 32, n=2, shortcut=shortcut)).eval()
    _randomise_bn(block, seed=3)
    split_c2f(block)
    s = block[0]
    x = torch.randn(1, 16, 20, 20)
    dg = tp.DependencyGraph().build_dependency(block, example_inputs=x)
    target = getattr(s, half).conv
    group = dg.get_pruning_group(target, tp.prune_conv_out_channels, idxs=[0, 3, 5, 9, 10, 14])
    group.prune()
    assert s.cv0.conv.out_channels != s.cv1.conv.out_channels
    with torch.no_grad():
        before = block(x)
    fold_c2f(block)
    assert isinstance(block[0], C2f) and block[0].c == 16
    with torch.no_grad():
        after = block(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_split_does_not_touch_other_modules() -> None:
    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False).eval()
    before = {n for n, m in model.named_modules() if not isinstance(m, C2f)}
    twin = copy.deepcopy(model)
    split_c2f(twin)
    fold_c2f(twin)
    after = {n for n, m in twin.named_modules() if not isinstance(m, C2f)}
    assert before == after


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo26n.yaml", "yolo11m.yaml"])
def test_c3k2_and_c2psa_split_and_fold_back_to_their_own_classes(cfg: str) -> None:
    """C3k2 (a C2f subclass: Bottleneck, C3k or attention inside) and C2PSA split and fold exactly, and come back as
    ultralytics' own classes (the pickle must not name slimbench)."""
    from ultralytics.nn.modules.block import C2PSA, C3k2

    from slimbench.pruning.psa import C2PSASplit, fold_c2psa, split_c2psa

    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=3, verbose=False).eval()
    _randomise_bn(model)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)[0]
    n_c3k2 = sum(type(m) is C3k2 for m in model.modules())
    assert n_c3k2 == 8 and split_c2f(model) == n_c3k2
    assert split_c2psa(model) == 1
    assert not any(type(m) in (C3k2, C2PSA) for m in model.modules())
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref, rtol=1e-5, atol=1e-5)
    assert fold_c2psa(model) == 1 and fold_c2f(model) == n_c3k2
    assert sum(type(m) is C3k2 for m in model.modules()) == n_c3k2
    assert not any(isinstance(m, C2fSplit | C2PSASplit) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref, rtol=1e-5, atol=1e-5)


def test_fold_pads_unequal_halves_around_c3k_exactly() -> None:
    """Global pruning with C3k inner blocks (YOLO11 m/l/x): a narrower half is padded and C3k reads it exactly."""
    from ultralytics.nn.modules.block import C3k2

    torch.manual_seed(2)
    block = torch.nn.Sequential(C3k2(16, 32, n=1, c3k=True)).eval()
    _randomise_bn(block, seed=4)
    split_c2f(block)
    s = block[0]
    x = torch.randn(1, 16, 20, 20)
    dg = tp.DependencyGraph().build_dependency(block, example_inputs=x)
    dg.get_pruning_group(s.cv1.conv, tp.prune_conv_out_channels, idxs=[1, 2, 7]).prune()
    assert s.cv0.conv.out_channels != s.cv1.conv.out_channels
    with torch.no_grad():
        before = block(x)
    fold_c2f(block)
    assert type(block[0]) is C3k2
    with torch.no_grad():
        torch.testing.assert_close(block(x), before, rtol=1e-5, atol=1e-6)
