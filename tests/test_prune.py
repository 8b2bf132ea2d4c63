"""Structural pruning removes channels for real and leaves a plain, loadable ultralytics checkpoint."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import ultralytics
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops

from slimbench.checkpoint import load_detector, save_detector
from slimbench.pruning.c2f import C2fSplit
from slimbench.pruning.structural import count_params, prune_detection_model

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


def _model(cfg: str = "yolov8n.yaml", nc: int = 2) -> DetectionModel:
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
    result = prune_detection_model(model, 0.5, global_pruning=global_pruning, round_to=8)
    with torch.no_grad():
        shape_after = model(x)[0].shape
    assert shape_after == shape_before, "Detect outputs (boxes + classes) must be kept"
    assert result.params_before == p0 and result.params_after == count_params(model)
    assert count_params(model) < 0.45 * p0
    assert get_flops(model, 640) < 0.5 * f0
    assert result.channels_removed_pct >= 45.0
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


def test_pruning_equals_masking_the_removed_channels() -> None:
    """Index correctness end to end: removing channels (through the C2f split and fold) computes exactly what the
    unpruned model computes with those channels silenced (BN gamma = beta = 0, so SiLU outputs 0)."""
    import copy

    import torch_pruning as tp

    from slimbench.pruning.c2f import fold_c2f, split_c2f
    from slimbench.pruning.structural import head_output_layers

    model = _model(nc=6)
    g = torch.Generator().manual_seed(2)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.bias.data.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
    split_c2f(model)
    masked = copy.deepcopy(model)
    twin = dict(masked.named_modules())
    names = {m: n for n, m in model.named_modules()}
    heads = [m for m in model.modules() if hasattr(m, "export") and hasattr(m, "dfl")]
    for h in heads:
        h.export = True
    pruner = tp.pruner.BasePruner(
        model,
        torch.randn(1, 3, 128, 128),
        importance=tp.importance.BNScaleImportance(),
        pruning_ratio=0.3,
        ignored_layers=head_output_layers(model),
        round_to=8,
    )
    silenced = 0
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            if dep.handler == tp.prune_batchnorm_out_channels:
                bn = twin[names[dep.target.module]]
                bn.weight.data[idxs] = 0
                bn.bias.data[idxs] = 0
                silenced += len(idxs)
        group.prune()
    for h in heads:
        h.export = False
    fold_c2f(model)
    assert silenced > 500
    x = torch.rand(1, 3, 192, 192)
    with torch.no_grad():
        pruned_out, masked_out = model.eval()(x)[0], masked.eval()(x)[0]
    assert count_params(model) < count_params(masked)
    torch.testing.assert_close(pruned_out, masked_out, rtol=1e-4, atol=1e-3)
