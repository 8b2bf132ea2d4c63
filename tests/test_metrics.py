"""Static metrics: cross-checked with ultralytics' own model.info(), and fake pruning seen through."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import tiny_models
import torch

from slimbench.bench.session import SuiteSession
from slimbench.config.suite import load_config
from slimbench.core.errors import SlimbenchError
from slimbench.model import static_metrics as metrics
from slimbench.model.checkpoint import load_detector, save_detector

FIXTURES = Path(os.environ.get("SLIMBENCH_FIXTURES") or Path(__file__).resolve().parents[1] / "fixtures")


@pytest.fixture(scope="module")
def nano():
    return tiny_models.build_detector("yolov8n.yaml", nc=2)


@pytest.fixture(scope="module")
def small_width():
    return tiny_models.build_detector("yolov8n.yaml", nc=2, width=0.125)


@pytest.mark.parametrize("cfg, imgsz", [("yolov8n.yaml", 640), ("yolov8n.yaml", 160), ("yolov8s.yaml", 640)])
def test_params_and_gflops_match_ultralytics_info(cfg, imgsz):
    net = tiny_models.build_detector(cfg, nc=2)
    _layers, params, _grads, flops = net.info(verbose=True, imgsz=imgsz)
    assert metrics.count_params(net) == params
    assert metrics.gflops(net, imgsz) == pytest.approx(flops, rel=1e-9)


def test_gflops_scale_with_image_area(nano):
    g640, g320 = metrics.gflops(nano, 640), metrics.gflops(nano, 320)
    assert g640 == pytest.approx(4 * g320, rel=0.02)
    assert 7.5 < g640 < 9.0, "YOLOv8n with 2 classes is about 8.2 GFLOPs at 640"


def test_metrics_leave_the_model_untouched(nano):
    net = copy.deepcopy(nano).half().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    metrics.static_metrics(net, imgsz=160)
    assert net.training and all(m.training for m in net.modules())
    assert next(net.parameters()).dtype == torch.float16
    assert not net.is_fused()
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_gflops_fallback_counts_convolutions(nano, monkeypatch):
    exact = metrics.gflops(nano, 320)
    monkeypatch.setattr("ultralytics.utils.torch_utils.get_flops", lambda *a, **k: 0.0)
    approx = metrics.gflops(nano, 320)
    assert approx != exact and approx == pytest.approx(exact, rel=0.03)


def test_conv_channels(nano, small_width):
    ch = metrics.conv_channels(nano)
    convs = [m for m in nano.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(ch) == len(convs)
    assert ch["model.0.conv"] == 16 and ch["model.22.dfl.conv"] == 1
    assert metrics.total_channels(nano) == sum(m.out_channels for m in convs)
    small = metrics.conv_channels(small_width)
    assert small.keys() == ch.keys() and small["model.0.conv"] == 8
    removed = metrics.channels_removed_pct(ch, small)
    assert removed == pytest.approx(100 * (1 - sum(small.values()) / sum(ch.values())))
    assert 30 < removed < 60
    assert metrics.channels_removed_pct(ch, ch) == 0.0
    assert metrics.channels_removed_pct(100, 150) == -50.0
    with pytest.raises(SlimbenchError):
        metrics.channels_removed_pct({}, ch)


def test_zeroed_channels_on_a_masked_model(nano):
    assert metrics.total_zeroed_channels(nano) == 0
    masked, n = tiny_models.masked_copy(nano, fraction=0.5, every=2)
    assert n > 0
    zeroed = metrics.zeroed_channels(masked)
    assert sum(zeroed.values()) == n == metrics.total_zeroed_channels(masked)
    assert zeroed["model.0.conv"] == 8, "half of the first conv's 16 channels"
    assert zeroed["model.1.conv"] == 0, "every second block only"
    # mask-only pruning changes nothing that a size or speed figure would show
    assert metrics.count_params(masked) == metrics.count_params(nano)
    assert metrics.total_channels(masked) == metrics.total_channels(nano)
    assert metrics.gflops(masked, 160) == metrics.gflops(nano, 160)


def test_zeroed_by_weights_alone_or_by_batchnorm_alone(nano):
    net = copy.deepcopy(nano)
    with torch.no_grad():
        net.model[0].conv.weight[:3] = 0  # weights only (torch.nn.utils.prune style)
        net.model[1].bn.weight[:2] = 0  # BN gamma and beta both zero (slimming masks)
        net.model[1].bn.bias[:2] = 0
        net.model[2].cv1.bn.weight[:4] = 0  # gamma alone: the output is beta, not zero -> not counted
        net.model[2].cv1.bn.bias[:4] = 0.5
    z = metrics.zeroed_channels(net)
    assert (z["model.0.conv"], z["model.1.conv"], z["model.2.cv1.conv"]) == (3, 2, 0)
    with torch.no_grad():
        net.model[3].conv.weight[:5] = 1e-6
    assert metrics.zeroed_channels(net)["model.3.conv"] == 0
    assert metrics.zeroed_channels(net, atol=1e-5)["model.3.conv"] == 5


def test_zeroed_channels_survive_an_fp16_checkpoint(nano, tmp_path):
    masked, n = tiny_models.masked_copy(nano)
    model = load_detector(save_detector(masked, tmp_path / "masked.pt"))
    assert metrics.total_zeroed_channels(model) == n


def test_sizes_compare_like_for_like(small_width, tmp_path):
    fp16 = save_detector(small_width, tmp_path / "fp16.pt", half=True)
    fp32 = save_detector(small_width, tmp_path / "fp32.pt", half=False)
    a, b = load_detector(fp16), load_detector(fp32)
    assert metrics.file_size_mb(fp32) > 1.8 * metrics.file_size_mb(fp16), "FP32 file is about twice as large"
    assert metrics.normalized_size_mb(a) == metrics.normalized_size_mb(b), "normalised size ignores the file dtype"
    assert metrics.normalized_size_mb(a) == pytest.approx(metrics.count_values(a) * 2 / 1e6)
    assert metrics.stored_dtype(fp16) == "float16" and metrics.stored_dtype(fp32) == "float32"
    assert metrics.main_dtype(a) == "float32", "ultralytics loads as FP32 whatever the file holds"
    assert metrics.file_size_mb(fp16) == pytest.approx(fp16.stat().st_size / 1e6)


def test_stored_dtype_checks_the_pin(small_width, tmp_path):
    p = save_detector(small_width, tmp_path / "m.pt")
    with pytest.raises(SlimbenchError, match="sha256 mismatch"):
        metrics.stored_dtype(p, sha256="0" * 64)


def test_yolo_wrapper_and_module_give_the_same_figures(nano, tmp_path):
    model = load_detector(save_detector(nano, tmp_path / "n.pt"))
    assert metrics.unwrap(model) is model.model
    assert metrics.unwrap(model.model) is model.model
    assert metrics.count_params(model) == metrics.count_params(nano)
    assert metrics.conv_channels(model) == metrics.conv_channels(nano)
    with pytest.raises(SlimbenchError, match="not a torch model"):
        metrics.unwrap("yolov8n.pt")


def test_static_metrics_record(nano, small_width, tmp_path):
    p = save_detector(small_width, tmp_path / "s.pt")
    st = metrics.static_metrics(load_detector(p), p, imgsz=160)
    assert st["params"] == metrics.count_params(small_width)
    assert st["gflops"] == pytest.approx(metrics.gflops(small_width, 160))
    assert "GFLOPs" in st["gflops_unit"] and "160" in st["gflops_unit"]
    assert st["total_channels"] == sum(st["conv_channels"].values())
    assert st["prunable_channels"] == sum(metrics.prunable_channels(small_width).values())
    assert st["zeroed_channels"] == {} and st["total_zeroed_channels"] == 0
    assert st["file_size_mb"] == pytest.approx(p.stat().st_size / 1e6)
    assert "file_size_mb" not in metrics.static_metrics(nano, imgsz=64)


def test_prunable_channels_leave_out_what_pruning_keeps(nano):
    prunable, every = metrics.prunable_channels(nano), metrics.conv_channels(nano)
    left_out = set(every) - set(prunable)
    assert left_out == {f"model.22.{t}.{i}.2" for t in ("cv2", "cv3") for i in range(3)} | {"model.22.dfl.conv"}
    assert all(prunable[k] == every[k] for k in prunable)


def test_suite_and_manifest_agree_on_channels_removed():
    """One definition: the suite's figure for the bundled pruned variant is the one make-fixtures wrote."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["pruning"]
    session = SuiteSession(load_config(FIXTURES / "slimbench.toml"))
    static = session.static("pruned")
    assert static["prunable_channels"] == manifest["prunable_channels_after"]
    assert session.static("original")["prunable_channels"] == manifest["prunable_channels_before"]
    assert round(static["channels_removed_pct"], 2) == manifest["channels_removed_pct"]
