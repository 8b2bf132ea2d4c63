"""tools/depth_cut.py: a residual block whose branch is zero is cut exactly (its chunk folded onto the input's
weights), every family's C3k2 blocks cut to a checkpoint plain ultralytics loads and runs, and a name that is not a
C3k2 layer is one line, exit 2."""

from __future__ import annotations

import pytest
import tiny_models
import torch

from slimbench.model.checkpoint import save_detector

depth_cut = tiny_models.load_tool("depth_cut")


def test_a_zero_residual_branch_is_cut_exactly():
    net = tiny_models.build_detector("yolo11n.yaml", nc=3)
    block = net.model[2]  # C3k2 with one residual Bottleneck at this scale
    bottleneck = block.m[0]
    assert bottleneck.add
    with torch.no_grad():
        bottleneck.cv2.bn.weight.zero_()
        bottleneck.cv2.bn.bias.zero_()  # f(b) = SiLU(0) = 0: the block computes cv2(cat(a, b, b))
    x = torch.rand(1, block.cv1.conv.in_channels, 16, 16)
    with torch.no_grad():
        before = block(x)
        assert depth_cut.cut_layers(net, ["model.2"]) == ["model.2"]
        after = block(x)
        assert len(block.m) == 0 and block.cv2.conv.in_channels == 2 * block.c
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
        net(torch.rand(1, 3, 64, 64))  # the whole detector still runs


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo26n.yaml"])
def test_every_c3k2_cut_loads_and_predicts_with_plain_ultralytics(tmp_path, cfg, capsys):
    from ultralytics import YOLO

    src = save_detector(tiny_models.build_detector(cfg, nc=3), tmp_path / "src.pt")
    assert depth_cut.main([str(src), str(tmp_path / "cut.pt"), "--layers", "all"]) == 0
    line = capsys.readouterr().out
    before, after = (int(s.replace(",", "")) for s in line.split("params ")[1].split(";")[0].split(" -> "))
    assert after < before, line
    if cfg == "yolo26n.yaml":
        assert "kept whole (attention, or not one residual block): model.22;" in line, line
    model = YOLO(str(tmp_path / "cut.pt"))
    assert sum(p.numel() for p in model.model.parameters()) == after
    result = model.predict(str(tiny_models.write_scene(tmp_path / "scene.jpg")), imgsz=64, verbose=False)
    assert result[0].boxes is not None


def test_a_layer_that_is_not_c3k2_is_one_line(tmp_path, capsys):
    src = save_detector(tiny_models.build_detector("yolo11n.yaml", nc=3), tmp_path / "src.pt")
    assert depth_cut.main([str(src), str(tmp_path / "cut.pt"), "--layers", "model.2,model.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("depth_cut: --layers: not a C3k2 layer: model.3 (") and "\n" not in err
    assert not (tmp_path / "cut.pt").exists()
    before = src.read_bytes()
    assert depth_cut.main([str(src), str(src), "--layers", "all", "--force"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and src.read_bytes() == before
