"""The suite on YOLO26's NMS-free outputs: an untrained yolo26n (nc=3) in end-to-end mode, original and pruned.

YOLO26's head has one-to-one towers whose top-k output (B, 300, 6: x1, y1, x2, y2, score, class) needs no NMS.
ultralytics 8.4 uses it when the model's ``end2end`` is set (or ``nms=False``); a checkpoint saved in that mode must go
through detections, agreement, ONNX export and parity as it is.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import tiny_models
import torch
from ultralytics import YOLO

from slimbench.model.checkpoint import load_detector, save_detector, sha256_of
from slimbench.model.detections import agreement, detect, read_image
from slimbench.pruning.structural import prune_detection_model
from slimbench.runtimes import export
from slimbench.runtimes import onnx_runtime as ort_runtime

IMGSZ = 160


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """yolo26n checkpoints in end-to-end mode: the original and a 50%-pruned copy, and a scene image."""
    root = tmp_path_factory.mktemp("yolo26")
    net = tiny_models.build_detector("yolo26n.yaml", nc=3, class_bias=1.0)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # untrained features vanish (~1e-6), so every score ties and top-k order is arbitrary
        for bn in net.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.bias.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
    net.end2end = True
    pruned = copy.deepcopy(net)
    prune_detection_model(pruned, 0.5)
    pruned.end2end = True
    return {
        "original": save_detector(net, root / "original.pt", half=False),
        "pruned": save_detector(pruned, root / "pruned.pt", half=False),
        "scene": tiny_models.write_scene(root / "scene.jpg", IMGSZ),
    }


@pytest.mark.parametrize("variant", ["original", "pruned"])
def test_forward_and_predict_on_the_nms_free_head(e2e: dict[str, Path], variant: str) -> None:
    """The raw output is the one-to-one top-k (B, 300, 6), and ultralytics' predictor turns it into detections."""
    yolo = load_detector(e2e[variant])
    assert yolo.model.end2end, "the end-to-end mode must survive save and load"
    with torch.no_grad():
        raw = copy.deepcopy(yolo.model).eval()(torch.rand(2, 3, IMGSZ, IMGSZ))[0]
    assert raw.shape == (2, 300, 6)
    assert set(raw[..., 5].unique().tolist()) <= {0.0, 1.0, 2.0}
    dets = detect(copy.deepcopy(yolo), e2e["scene"], imgsz=IMGSZ, conf=0.002)
    assert 0 < dets.count <= 300 and set(np.unique(dets.classes)) <= {0, 1, 2}
    img = torch.from_numpy(read_image(e2e["scene"])[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():  # the scene is IMGSZ square: no letterbox; NMS-free = every top-k row above conf is kept
        top_k = copy.deepcopy(yolo.model).eval()(img)[0][0]
    assert dets.count == int((top_k[:, 4] > 0.002).sum())
    np.testing.assert_allclose(np.sort(dets.confs), np.sort(top_k[top_k[:, 4] > 0.002, 4].numpy()), atol=1e-5)
    assert (dets.boxes >= 0).all() and (dets.boxes <= IMGSZ).all()


def _rows_match(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a row of ``a`` to its nearest row of ``b``. Top-k may order near-equal scores either
    way, and a row tied with the 300th may fall on either side of the cut, so rows at the cut are left out."""
    a = a[a[:, 4] > b[:, 4].min() + 1e-4]
    d = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    return float(d.min(1).max())


def test_agreement_between_nms_free_variants(e2e: dict[str, Path]) -> None:
    ref = detect(load_detector(e2e["original"]), e2e["scene"], imgsz=IMGSZ, conf=0.002)
    again = detect(load_detector(e2e["original"]), e2e["scene"], imgsz=IMGSZ, conf=0.002)
    same = agreement(ref, again)
    assert (same.recall, same.precision) == (1.0, 1.0)
    other = agreement(ref, detect(load_detector(e2e["pruned"]), e2e["scene"], imgsz=IMGSZ, conf=0.002))
    assert 0.0 <= other.recall <= 1.0 and other.matched <= ref.count


@pytest.mark.parametrize("variant", ["original", "pruned"])
def test_onnx_export_keeps_the_nms_free_head_with_parity(e2e: dict[str, Path], variant: str, tmp_path: Path) -> None:
    """The suite's export keeps the one-to-one head (same output as the checkpoint), ONNX Runtime agrees with torch,
    and ultralytics' predictor on the ONNX file finds the checkpoint's detections."""
    yolo = load_detector(e2e[variant])
    exported = export.export_onnx(yolo, sha256_of(e2e[variant]), IMGSZ, tmp_path, name=variant)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        ref = copy.deepcopy(yolo.model).eval()(x)[0].numpy()
    out = ort_runtime.run(ort_runtime.session(exported.path), x.numpy())
    assert out.shape == ref.shape == (2, 300, 6)
    for i in range(2):  # same rows; order only where scores tie within float noise
        assert _rows_match(out[i], ref[i]) < 1e-2 and _rows_match(ref[i], out[i]) < 1e-2
    np.testing.assert_allclose(np.sort(out[..., 4], -1), np.sort(ref[..., 4], -1), atol=1e-4)
    torch_dets = detect(load_detector(e2e[variant]), e2e["scene"], imgsz=IMGSZ, conf=0.002)
    onnx_dets = detect(YOLO(str(exported.path), task="detect"), e2e["scene"], imgsz=IMGSZ, conf=0.002)
    a = agreement(torch_dets, onnx_dets, iou_threshold=0.9)
    assert torch_dets.count > 0 and (a.recall, a.precision) == (1.0, 1.0)
