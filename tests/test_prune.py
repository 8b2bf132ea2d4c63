"""Structural pruning removes channels for real and leaves a plain, loadable ultralytics checkpoint."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import ultralytics
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops

from slimbench.model.checkpoint import load_detector, save_detector
from slimbench.model.static_metrics import channels_removed_pct, prunable_channels
from slimbench.pruning.c2f import C2fSplit
from slimbench.pruning.structural import count_params, prune_detection_model
from slimbench.pruning.threshold import threshold_prune

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


def _model(cfg: str = "yolov8n.yaml", nc: int = 2) -> DetectionModel:
    """An untrained model from ultralytics' YAML (offline, seconds), with distinct BN scales."""
    torch.manual_seed(0)
    m = DetectionModel(cfg, nc=nc, verbose=False).eval()
    g = torch.Generator().manual_seed(1)
    for bn in m.modules():  # distinct BN scales so the importance ranking is not a tie
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=g))
    return m


@pytest.mark.parametrize(
    ("cfg", "global_pruning"), [("yolov8n.yaml", False), ("yolov8n.yaml", True), ("yolov8s.yaml", False)]
)
def test_prune_lowers_params_and_flops_and_keeps_outputs(cfg: str, global_pruning: bool) -> None:
    model = _model(cfg)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        shape_before = model(x)[0].shape
    p0, f0 = count_params(model), get_flops(model, 640)
    prunable_before = prunable_channels(model)
    result = prune_detection_model(model, 0.5, global_pruning=global_pruning, round_to=8)
    with torch.no_grad():
        shape_after = model(x)[0].shape
    assert shape_after == shape_before, "Detect outputs (boxes + classes) must be kept"
    assert result.params_before == p0 and result.params_after == count_params(model)
    assert count_params(model) < 0.45 * p0
    assert get_flops(model, 640) < 0.5 * f0
    assert result.channels_removed_pct >= 45.0
    assert result.prunable_layers == list(prunable_before)  # the suite's definition of prunable
    assert result.channels_removed_pct == channels_removed_pct(prunable_before, prunable_channels(model))
    assert not any(isinstance(m, C2fSplit) for m in model.modules()), "C2f must be folded back"
    kept = [n for n in result.channels_before if n.startswith(result.kept_layers)]
    assert len(kept) == 7  # 3 box convs, 3 class convs, the DFL conv
    for name in kept:
        assert result.channels_after[name] == result.channels_before[name], name
    for name in result.prunable_layers:
        assert result.channels_after[name] % 8 == 0, f"{name}: {result.channels_after[name]} not a multiple of 8"


def test_ratio_outside_open_interval_is_refused() -> None:
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            prune_detection_model(_model(), bad)


def test_pruned_checkpoint_loads_with_plain_ultralytics_and_predicts(tmp_path: Path) -> None:
    model = _model()
    prune_detection_model(model, 0.5)
    path = save_detector(model, tmp_path / "pruned.pt")
    with zipfile.ZipFile(path) as z:
        pickled = b"".join(z.read(n) for n in z.namelist() if n.endswith(".pkl"))
    assert b"slimbench" not in pickled, "the checkpoint must not need slimbench to unpickle"
    yolo = ultralytics.YOLO(str(path))
    assert count_params(yolo.model) == count_params(model)
    res = yolo.predict(str(BUS), imgsz=160, conf=0.0, verbose=False)
    assert res[0].boxes is not None and len(res[0].boxes) > 0  # conf=0: an untrained model still emits boxes
    assert load_detector(path).model.yaml["nc"] == 2


def test_fp16_save_is_about_half_the_fp32_save(tmp_path: Path) -> None:
    model = _model()
    f16 = save_detector(model, tmp_path / "a16.pt", half=True).stat().st_size
    f32 = save_detector(model, tmp_path / "a32.pt", half=False).stat().st_size
    assert 0.45 < f16 / f32 < 0.55


def test_pruned_checkpoint_exports_to_onnx_with_same_outputs(tmp_path: Path) -> None:
    """Exports like any checkpoint: ultralytics' own ONNX exporter, offline, and ONNX Runtime agrees with torch."""
    import numpy as np
    import onnxruntime as ort

    model = _model()
    prune_detection_model(model, 0.5)
    path = save_detector(model, tmp_path / "pruned.pt", half=False)
    onnx_path = ultralytics.YOLO(str(path)).export(format="onnx", imgsz=128, simplify=False, dynamic=False)
    assert Path(onnx_path).is_file()
    x = torch.rand(1, 3, 128, 128)
    net = load_detector(path).model.eval()
    with torch.no_grad():
        ref = net(x)[0].numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)


N_MODELS = ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml"]
ALL_MODELS = [*N_MODELS, "yolo11m.yaml", "yolo26s.yaml"]  # m: every C3k2 holds C3k; s: YOLO26 at another width


def _masking_twin(model: DetectionModel):
    """A split copy of ``model`` and an ``on_group`` that silences in it every BN channel the pruner removes."""
    import copy

    import torch_pruning as tp

    from slimbench.pruning.c2f import split_c2f
    from slimbench.pruning.psa import split_c2psa

    twin = copy.deepcopy(model)
    split_c2f(twin)
    split_c2psa(twin)
    by_name = dict(twin.named_modules())
    names: dict[torch.nn.Module, str] = {}
    silenced = [0]

    def on_group(group) -> None:  # noqa: ANN001 - a torch-pruning Group
        if not names:
            names.update({m: n for n, m in model.named_modules()})
        for dep, idxs in group:
            if dep.handler == tp.prune_batchnorm_out_channels:
                bn = by_name[names[dep.target.module]]
                bn.weight.data[idxs] = 0
                bn.bias.data[idxs] = 0
                silenced[0] += len(idxs)

    return twin, on_group, silenced


@pytest.mark.parametrize("cfg", ALL_MODELS)
def test_pruning_equals_masking_the_removed_channels(cfg: str) -> None:
    """Index correctness end to end: removing channels (through the C2f/C3k2/C2PSA splits and folds, around kept
    attention) computes exactly what the unpruned model computes with those channels silenced (BN gamma = beta = 0,
    so SiLU outputs 0). Every head tower is compared (YOLO26: one-to-many and one-to-one), and the decoded output."""
    from slimbench.pruning.structural import trace_outputs

    model = _model(cfg, nc=3)
    g = torch.Generator().manual_seed(2)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.bias.data.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
    masked, on_group, silenced = _masking_twin(model)
    prune_detection_model(model, 0.3, on_group=on_group)
    assert silenced[0] > 500
    assert not any(isinstance(m, C2fSplit) for m in model.modules())
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        pruned_towers, masked_towers = trace_outputs(model.eval(), x), trace_outputs(masked.eval(), x)
        pruned_out, masked_out = model(x)[0], masked(x)[0]
    assert count_params(model) < count_params(masked)
    assert len(pruned_towers) == (12 if cfg.startswith("yolo26") else 6)
    for p, m in zip(pruned_towers, masked_towers, strict=True):
        torch.testing.assert_close(p, m, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(pruned_out, masked_out, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("cfg", ALL_MODELS)
def test_every_family_loses_params_and_keeps_output_shapes(cfg: str) -> None:
    """At ratio 0.5 per layer: parameters and GFLOPs go down, the head's outputs keep their shapes, the rewrites are
    folded back into ultralytics' own classes, and attention is kept whole (its convs keep their widths)."""
    from ultralytics.nn.modules.block import C2PSA, C3k2

    from slimbench.pruning.psa import C2PSASplit

    model = _model(cfg, nc=3)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        before = model(x)
    p0, f0 = count_params(model), get_flops(model, 640)
    n_c3k2 = sum(type(m) is C3k2 for m in model.modules())
    result = prune_detection_model(model, 0.5)
    with torch.no_grad():
        after = model(x)
    assert after[0].shape == before[0].shape
    for key in ("one2many", "one2one"):
        if key in before[1]:
            for k in ("boxes", "scores"):
                assert after[1][key][k].shape == before[1][key][k].shape, (key, k)
    assert count_params(model) < (0.30 if cfg.startswith("yolov8") else 0.45) * p0
    assert get_flops(model, 640) < 0.5 * f0
    assert result.channels_removed_pct >= 40.0
    assert not any(isinstance(m, C2fSplit | C2PSASplit) for m in model.modules())
    assert sum(type(m) is C3k2 for m in model.modules()) == n_c3k2
    for name, why in result.kept_reasons.items():
        assert result.channels_after[name] == result.channels_before[name], (name, why)
    for name, conv in model.named_modules():  # per-layer pruning never needs zero padding at fold time
        if isinstance(conv, torch.nn.Conv2d):
            assert (conv.weight.detach().flatten(1).abs().sum(1) > 0).all(), f"{name}: zero output channels"
    if not cfg.startswith("yolov8"):
        assert any("attention" in why for why in result.kept_reasons.values())
        assert sum(type(m) is C2PSA for m in model.modules()) == 1


@pytest.mark.parametrize("rule", ["ratio", "threshold"])
@pytest.mark.parametrize("cfg", N_MODELS)
def test_pruned_checkpoint_loads_in_a_process_without_slimbench(cfg: str, rule: str, tmp_path: Path) -> None:
    """A fresh interpreter that never imports slimbench loads, predicts, validates and exports the pruned checkpoint
    (by ratio, or by Network Slimming's threshold with compensation); ONNX Runtime then agrees with the checkpoint."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np
    import onnxruntime as ort

    from slimbench.data.synthetic import make_dataset

    model = _model(cfg, nc=3)
    if rule == "ratio":
        prune_detection_model(model, 0.5)
    else:
        with torch.no_grad():
            for bn in model.modules():
                if isinstance(bn, torch.nn.BatchNorm2d):
                    bn.weight[bn.weight < 0.5] = 0.0  # about half of every layer (scales are uniform in [0, 1))
        result = threshold_prune(model, 0.01)
        assert result.removed > 0.3 * result.group_channels
    path = save_detector(model, tmp_path / "pruned.pt", half=False)
    data = make_dataset(tmp_path / "data", train=2, val=2, imgsz=64, seed=0)
    script = f"""
import json, sys
from ultralytics import YOLO
m = YOLO({str(path)!r})
r = m.predict({str(BUS)!r}, imgsz=128, conf=0.0, verbose=False)
v = m.val(data={str(data)!r}, imgsz=64, batch=2, plots=False, verbose=False, workers=0,
          project={str(tmp_path / "val")!r})
onnx = YOLO({str(path)!r}).export(format="onnx", imgsz=128, simplify=False, dynamic=False)
print(json.dumps({{"boxes": len(r[0].boxes), "map": float(v.box.map), "onnx": str(onnx),
                  "slimbench": [k for k in sys.modules if k.startswith("slimbench")]}}))
"""
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["slimbench"] == [] and out["boxes"] > 0
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        ref = load_detector(path).model.eval()(x)[0].numpy()
    sess = ort.InferenceSession(out["onnx"], providers=["CPUExecutionProvider"])
    (onnx_out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert onnx_out.shape == ref.shape
    np.testing.assert_allclose(onnx_out, ref, rtol=1e-3, atol=1e-3)
