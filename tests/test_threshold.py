"""Network Slimming's threshold rule (per-layer cap, round_to) and compensation of removed channels' act(beta)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from slimbench.cli import main
from slimbench.model.checkpoint import save_detector
from slimbench.model.static_metrics import count_params
from slimbench.pruning.threshold import threshold_prune


def _model(seed: int = 0) -> DetectionModel:
    """yolov8n (nc=2) with BN scales in [0.5, 1.5]: nothing below a 1% threshold until a test plants it."""
    torch.manual_seed(seed)
    m = DetectionModel("yolov8n.yaml", nc=2, verbose=False).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.data.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
            bn.running_mean.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
    return m


def test_threshold_prune_respects_cap_and_round_to() -> None:
    """model.1 (32 channels, all below): the 0.75 cap keeps 8. model.3 (64, 13 below): keeping 51 rounds up to 56."""
    model = _model()
    with torch.no_grad():
        model.model[1].bn.weight.zero_()
        model.model[3].bn.weight[:13] = 1e-4
    p0 = count_params(model)
    result = threshold_prune(model, 0.01, max_layer_ratio=0.75, round_to=8, compensate=False)
    assert result.below_threshold == 32 + 13
    assert result.removed == 24 + 8
    assert result.channels_after["model.1.conv"] == 8  # capped: 32 * (1 - 0.75)
    assert result.channels_after["model.3.conv"] == 56  # only whole multiples of 8, all below the threshold
    changed = {k for k in result.channels_before if result.channels_after[k] != result.channels_before[k]}
    assert changed == {"model.1.conv", "model.3.conv"}
    for name in result.prunable_layers:
        before, after = result.channels_before[name], result.channels_after[name]
        assert after % 8 == 0 and after >= math.ceil((1 - 0.75) * before), name
    assert count_params(model) < p0


def test_threshold_prune_by_global_target_ratio() -> None:
    """target_ratio picks the global quantile: about that share of group channels goes, never more."""
    model = _model(seed=3)
    result = threshold_prune(model, None, target_ratio=0.5, max_layer_ratio=0.9, round_to=8, compensate=False)
    share = result.removed / result.group_channels
    assert 0.3 < share <= 0.5 + 1e-9, share
    assert result.below_threshold >= result.removed


def _head_maps(model: DetectionModel, x: torch.Tensor) -> list[torch.Tensor]:
    """Raw head outputs (box distributions and class logits) per level, as (C, H, W) maps."""
    with torch.no_grad():
        raw = model(x)[1]
    t = torch.cat([raw["boxes"], raw["scores"]], 1)[0]
    maps, off, side = [], 0, x.shape[-1]
    for stride in (8, 16, 32):
        h = side // stride
        maps.append(t[:, off : off + h * h].reshape(-1, h, h))
        off += h * h
    return maps


def test_compensation_is_exact_off_the_borders_when_removed_scales_are_zero() -> None:
    """Removing channels whose BN scale is exactly zero, with act(beta) folded into the consumers, leaves the head's
    outputs as they were, except within 2 cells of the border: a 3x3 consumer's zero padding multiplies part of its
    kernel by 0 instead of by the constant, and later 3x3 convs spread that inwards (measured: exact to 1e-4 from 2
    cells in, at every level). The interior is compared at atol 1e-3 (float32 sums over hundreds of channels, outputs
    up to ~10). Without compensation the same interior is off by far more."""
    model = _model(seed=5)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.weight[torch.rand(bn.num_features, generator=g) < 0.5] = 0.0
    ref = copy.deepcopy(model)
    plain = copy.deepcopy(model)
    x = torch.rand(1, 3, 320, 320, generator=g)
    r = threshold_prune(model, 0.01, compensate=True)
    threshold_prune(plain, 0.01, compensate=False)
    assert r.removed > 0.3 * r.group_channels and r.compensated
    border = 2
    worst_plain = 0.0
    for a, b, c in zip(_head_maps(ref, x), _head_maps(model, x), _head_maps(plain, x), strict=True):
        inner = (slice(None), slice(border, -border), slice(border, -border))
        torch.testing.assert_close(b[inner], a[inner], rtol=0, atol=1e-3)
        worst_plain = max(worst_plain, float((c[inner] - a[inner]).abs().max()))
    assert worst_plain > 0.1, worst_plain


def test_prune_cli_threshold_reports_channels_below(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model()
    with torch.no_grad():
        model.model[1].bn.weight.zero_()
    src = save_detector(model, tmp_path / "m.pt", half=False)
    out = tmp_path / "p.pt"
    assert main(["prune", str(src), "--threshold", "0.01", "--max-layer-ratio", "0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "32 of" in text and "16 removed" in text, text
    assert out.is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["--ratio", "0.5", "--threshold", "0.01"],
        ["--threshold", "1.5"],
        ["--threshold", "0.01", "--max-layer-ratio", "1"],
    ],
)
def test_prune_cli_bad_threshold_is_one_line(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_detector(_model(), tmp_path / "m.pt")
    with pytest.raises(SystemExit) as e:
        main(["prune", str(src), *args, "--out", str(tmp_path / "p.pt")])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "error:" in err[0], err
    assert not (tmp_path / "p.pt").exists()
