"""Where the time goes: layer naming, the per-layer attribution in torch, ONNX Runtime and OpenVINO, the comparison
of two models, and ``slimbench profile``.

Nothing here gates on a timing: coverage (attributed time over a separately measured forward) is a timing figure.
The tests check the structure (every layer named, every profiled node mapped to a layer of the model or to a named
extra) and the sums that hold by construction (layers + extras + unattributed = the profiled total).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tiny_models
import torch

from slimbench.measure.attribution import EXTRAS, Attribution, attribute, compare, map_nodes, medians
from slimbench.measure.timing import seeded_input, timing_model
from slimbench.model.checkpoint import load_detector, save_detector, sha256_of
from slimbench.model.layer_flops import layer_gflops
from slimbench.model.layers import LayerName, key_of_path, layer_names
from slimbench.runtimes.profiling import NodeTime, ort_calls

IMGSZ = 96


def _net(cfg: str = "yolov8n.yaml", end2end: bool = False, width: float | None = None) -> torch.nn.Module:
    """A fused timing copy of a tiny detector, as the suite profiles it."""
    net = tiny_models.build_detector(cfg, nc=3, width=width)
    if end2end:
        net.end2end = True
    return timing_model(net)


@pytest.fixture(scope="module")
def v8(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny YOLOv8n checkpoints: an original and a narrower "pruned" one, and their ONNX exports."""
    from slimbench.runtimes.export import export_onnx

    root = tmp_path_factory.mktemp("attribution")
    out: dict[str, Path] = {}
    for name, width in (("original", None), ("pruned", 0.125)):
        ckpt = save_detector(tiny_models.build_detector("yolov8n.yaml", nc=3, width=width), root / f"{name}.pt")
        out[name] = ckpt
        out[f"{name}.onnx"] = export_onnx(load_detector(ckpt), sha256_of(ckpt), IMGSZ, root / "cache", name=name).path
    return out


# ---------------------------------------------------------------- naming


def test_the_attribution_setting_is_a_boolean(tmp_path: Path) -> None:
    from slimbench.config.suite import config_from_dict
    from slimbench.core.errors import SlimbenchError

    base = {"reference": "a", "variants": {"a": {"path": "a.pt"}}}
    assert config_from_dict(base, tmp_path).settings.attribution is True
    assert config_from_dict({**base, "settings": {"attribution": False}}, tmp_path).settings.attribution is False
    with pytest.raises(SlimbenchError, match="settings.attribution: expected true or false"):
        config_from_dict({**base, "settings": {"attribution": "no"}}, tmp_path)


def test_every_top_level_layer_and_head_part_is_named() -> None:
    net = _net()
    names = layer_names(net)
    plain = [n for n in names if not n.part]
    assert [n.index for n in plain] == list(range(len(net.model) - 1))  # every layer before the head, in order
    assert [n.module for n in plain[:3]] == ["Conv", "Conv", "C2f"]
    head = [n for n in names if n.part]
    assert [n.key for n in head] == ["22.cv2", "22.cv3", "22.dfl", "22.decode"]
    assert head[0].label == "22 Detect: box towers (cv2)"
    assert [n.fixed for n in head] == [False, False, True, True]
    assert len({n.key for n in names}) == len(names)


def test_yolo11_head_parts() -> None:
    names = layer_names(_net("yolo11n.yaml"))
    assert [n.key for n in names if n.part] == ["23.cv2", "23.cv3", "23.dfl", "23.decode"]
    assert {n.module for n in names} >= {"C3k2", "C2PSA", "SPPF", "Detect"}


def test_yolo26_end_to_end_head_names_its_one_to_one_towers() -> None:
    names = layer_names(_net("yolo26n.yaml", end2end=True))
    head = [n for n in names if n.part]
    # fused end-to-end: the one-to-many towers are gone; reg_max 1: no DFL; the decode ends in a top-k
    assert [n.key for n in head] == ["23.one2one_cv2", "23.one2one_cv3", "23.decode"]
    assert head[0].label == "23 Detect: one-to-one box towers (one2one_cv2)"
    assert "top-k" in head[-1].label


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("model.4.m.0.cv1.conv", "4"),
        ("/model.4/m.0/cv1/conv/Conv", "4"),
        ("/model.0/act/Mul/QuickGeluFusion/", "0"),
        ("/model.22/cv2.1/cv2.1.0/conv/Conv_output_0_nchwc", "22.cv2"),
        ("model.22.cv3.2.1.conv", "22.cv3"),
        ("/model.22/dfl/Softmax", "22.dfl"),
        ("/model.22/Concat_3", "22.decode"),
        ("/model.22/Sub_1", "22.decode"),
        ("ReorderInput_token_17", None),
        ("/model.99/Conv", None),
        ("images_abcd_acdb_/model.0/conv/Conv/WithoutBiases", None),
    ],
)
def test_node_and_module_names_map_to_rows(path: str, key: str | None) -> None:
    names = layer_names(_net())
    assert key_of_path(path, names) == key


# ---------------------------------------------------------------- GFLOPs per layer


def test_layer_gflops_sum_to_the_model_and_dfl_is_fixed() -> None:
    from slimbench.model.static_metrics import gflops

    net, narrow = _net(), _net(width=0.125)
    per_layer, narrow_layer = layer_gflops(net, 128), layer_gflops(narrow, 128)
    assert set(per_layer) == {n.key for n in layer_names(net)}
    assert sum(per_layer.values()) == pytest.approx(gflops(net, 128), rel=0.03)
    assert per_layer["22.dfl"] > 0 and per_layer["22.dfl"] == narrow_layer["22.dfl"]  # no channel of it pruned
    assert per_layer["22.decode"] == 0.0 and per_layer["11"] == 0.0  # decode and a Concat: no conv
    assert narrow_layer["2"] < per_layer["2"]


# ---------------------------------------------------------------- torch


def test_torch_attribution_names_every_layer_and_adds_up() -> None:
    net = _net()
    rec = attribute("torch", net, seeded_input(1, IMGSZ), 1, calls=3, warmup=1, gflops=layer_gflops(net, IMGSZ))
    assert list(rec.layer_ms) == [n.key for n in layer_names(net)]
    assert all(v >= 0 for v in rec.layer_ms.values())
    assert rec.extras_ms == {}  # torch profiles modules: nothing but layers
    assert rec.unattributed_ms >= 0  # per call: the wall time encloses every hooked span
    assert sum(rec.layer_ms.values()) + rec.unattributed_ms == pytest.approx(rec.total_ms)
    assert rec.forward_ms > 0 and rec.calls == 3 and rec.batch == 1 and rec.imgsz == IMGSZ
    d = rec.as_dict()
    assert sum(r["ms"] for r in d["layers"]) + d["unattributed_ms"] == pytest.approx(d["total_ms"])


def test_medians_per_layer_keep_order_and_count_absent_as_zero() -> None:
    calls = [{"a": 0.001, "b": 0.003}, {"a": 0.002}, {"a": 0.009, "b": 0.001}]
    assert medians(calls, ["b", "a"]) == {"b": pytest.approx(1.0), "a": pytest.approx(2.0)}


# ---------------------------------------------------------------- ONNX Runtime and OpenVINO


def test_ort_trace_calls_take_the_nodes_inside_each_run() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},  # warm-up, dropped
        {"cat": "Node", "name": "/model.0/conv/Conv_kernel_time", "ts": 10, "dur": 50, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        {"cat": "Node", "name": "/model.0/conv/Conv_kernel_time", "ts": 210, "dur": 40, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "/model.0/conv/Conv_fence_before", "ts": 211, "dur": 1},  # not a kernel
        {"cat": "Node", "name": "ReorderInput_kernel_time", "ts": 260, "dur": 5, "args": {"op_name": "ReorderInput"}},
        {"cat": "Node", "name": "late_kernel_time", "ts": 400, "dur": 5, "args": {}},  # outside every run
    ]
    (call,) = ort_calls(events, 1)
    assert [(n.name, n.op) for n in call] == [("/model.0/conv/Conv", "Conv"), ("ReorderInput", "ReorderInput")]
    assert call[0].seconds == pytest.approx(40e-6)


def test_unmapped_nodes_become_named_extras() -> None:
    names = layer_names(_net())
    calls = [
        [
            NodeTime("/model.0/conv/Conv", "Conv", 0.002),
            NodeTime("ReorderOutput_token_3", "ReorderOutput", 0.001),
            NodeTime("images_abcd_acdb_/model.0/conv/Conv", "Reorder", 0.001),
            NodeTime("output0", "Concat", 0.0005),
        ]
    ]
    per_call, unmapped = map_nodes(calls, names)
    assert per_call == [{"0": 0.002, "reorders": 0.002, "other": 0.0005}]
    assert unmapped == ["output0"]


def _mapped_keys(runtime: str, onnx: Path) -> set[str]:
    """The rows the nodes of one profiled call map to (which nodes ran, not how long they took)."""
    from slimbench.measure.attribution import node_key
    from slimbench.runtimes.registry import runtime as runtime_named

    profiled = runtime_named(runtime).profile(onnx, seeded_input(1, IMGSZ).numpy(), 1, 1, 0)
    (nodes,) = profiled.calls
    return {node_key(node, layer_names(_net())) for node in nodes}


def _check_file_runtime(runtime: str, onnx: Path, net: torch.nn.Module) -> Attribution:
    rec = attribute(runtime, net, seeded_input(1, IMGSZ), 1, onnx_path=onnx, calls=2, warmup=1)
    keys = {n.key for n in layer_names(net)}
    assert set(rec.layer_ms) == keys  # every row present (0.0 where no node ran)
    assert set(rec.extras_ms) <= set(EXTRAS)
    assert rec.attributed_ms + rec.unattributed_ms == pytest.approx(rec.total_ms)
    assert rec.forward_ms > 0 and math.isfinite(rec.coverage)
    # every convolution-bearing layer has nodes of its own: the mapping reached every layer that computes
    flops = layer_gflops(net, IMGSZ)
    mapped = _mapped_keys(runtime, onnx)
    assert {k for k in keys if flops[k] > 0} <= mapped
    assert mapped <= keys | set(EXTRAS)
    return rec


def test_ort_nodes_map_to_existing_layers(v8: dict[str, Path]) -> None:
    net = timing_model(load_detector(v8["original"]))
    rec = _check_file_runtime("onnxruntime", v8["original.onnx"], net)
    assert rec.unmapped == []  # ONNX Runtime: every node carries a module's name, or is a reorder it inserted
    assert {"22.dfl", "22.cv2", "22.cv3", "22.decode"} <= _mapped_keys("onnxruntime", v8["original.onnx"])


def test_openvino_layers_map_to_existing_layers(v8: dict[str, Path]) -> None:
    pytest.importorskip("openvino", reason="openvino not installed")
    net = timing_model(load_detector(v8["original"]))
    rec = _check_file_runtime("openvino", v8["original.onnx"], net)
    assert all(not name.startswith("/model.") for name in rec.unmapped)  # only nodes without a module's name


def test_yolo26_one_to_one_towers_get_their_onnx_runtime_nodes(tmp_path: Path) -> None:
    from slimbench.runtimes.export import export_onnx

    model = tiny_models.build_detector("yolo26n.yaml", nc=3)
    model.end2end = True
    ckpt = save_detector(model, tmp_path / "y26.pt")
    yolo = load_detector(ckpt)
    onnx = export_onnx(yolo, sha256_of(ckpt), IMGSZ, tmp_path / "cache", name="y26").path
    from slimbench.measure.attribution import node_key
    from slimbench.runtimes.profiling import ort_profile

    names = layer_names(timing_model(yolo))
    (nodes,) = ort_profile(onnx, seeded_input(1, IMGSZ).numpy(), 1, calls=1, warmup=0).calls
    mapped = {node_key(node, names) for node in nodes}
    assert {"23.one2one_cv2", "23.one2one_cv3", "23.decode"} <= mapped
    assert mapped <= {n.key for n in names} | {"reorders"}


# ---------------------------------------------------------------- comparison


def _record(layer_ms: dict[str, float], gflops: dict[str, float], extras: dict[str, float], rest: float) -> Attribution:
    names = [LayerName("0", 0, "Conv"), LayerName("1", 1, "C2f"), LayerName("2.cv2", 2, "Detect", "cv2")]
    names.append(LayerName("2.dfl", 2, "Detect", "dfl"))
    return Attribution("torch", "cpu", 1, 1, 640, names, layer_ms, rest, 0.0, 0.0, 5, extras, gflops)


def test_compare_flags_layers_whose_time_did_not_follow_their_flops() -> None:
    from slimbench.report.attribution_report import top_rows

    ref = _record(
        {"0": 10.0, "1": 40.0, "2.cv2": 40.0, "2.dfl": 2.0}, {"0": 1.0, "1": 4.0, "2.cv2": 4.0, "2.dfl": 0.1}, {}, 8.0
    )
    cand = _record(
        {"0": 9.0, "1": 10.0, "2.cv2": 1.0, "2.dfl": 2.0},
        {"0": 0.4, "1": 1.0, "2.cv2": 0.2, "2.dfl": 0.1},
        {"reorders": 1.0},
        7.0,
    )
    rows = {r["key"]: r for r in compare(cand, ref)}
    assert rows["0"]["flagged"]  # 0.9 > 2 x its 0.4 GFLOPs ratio, and 30% of the time
    assert rows["0"]["latency_ratio"] == pytest.approx(0.9) and rows["0"]["gflops_ratio"] == pytest.approx(0.4)
    assert not rows["1"]["flagged"]  # 0.25 vs 0.25: followed its FLOPs
    assert not rows["2.cv2"]["flagged"]  # 1.0 / 40 = 0.025 vs 0.05
    assert rows["2.dfl"]["kind"] == "fixed" and not rows["2.dfl"]["flagged"]
    assert rows["reorders"]["kind"] == "extra" and rows["reorders"]["reference_ms"] == 0.0
    assert rows["unattributed"]["ms"] == 7.0 and rows["unattributed"]["reference_ms"] == 8.0
    assert sum(r["ms"] for r in rows.values()) == pytest.approx(cand.total_ms)
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    shown = top_rows(list(rows.values()), 2)  # two layers by name, the rest summed: the total still adds up
    assert [r["key"] for r in shown] == ["1", "0", "rest", "reorders", "unattributed"]
    assert sum(r["ms"] for r in shown) == pytest.approx(cand.total_ms)
    rest = shown[2]
    assert rest["ms"] == pytest.approx(3.0) and rest["reference_ms"] == pytest.approx(42.0)
    # what pruning can move: the model layers alone (DFL, reorders and unattributed left out): 20 / 90
    from slimbench.measure.attribution import layers_ratio

    assert layers_ratio(list(rows.values())) == pytest.approx(20.0 / 90.0)
    assert layers_ratio(compare(cand)) is None  # no reference: nothing to divide by


def test_compare_flag_needs_a_share_of_the_time() -> None:
    ref = _record(
        {"0": 1.0, "1": 80.0, "2.cv2": 10.0, "2.dfl": 1.0}, {"0": 1.0, "1": 4.0, "2.cv2": 1.0, "2.dfl": 0.1}, {}, 1.0
    )
    cand = _record(
        {"0": 1.0, "1": 20.0, "2.cv2": 9.0, "2.dfl": 1.0}, {"0": 0.1, "1": 1.0, "2.cv2": 1.0, "2.dfl": 0.1}, {}, 1.0
    )
    rows = {r["key"]: r for r in compare(cand, ref)}
    assert rows["0"]["latency_ratio"] > 2 * rows["0"]["gflops_ratio"] and not rows["0"]["flagged"]  # 3% of the time


# ---------------------------------------------------------------- slimbench profile


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from slimbench.cli import main

    try:
        rc = main(args)
    except SystemExit as e:  # argparse errors
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err.strip()


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_profile_cli_one_and_two_checkpoints(
    v8: dict[str, Path],
    runtime: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # the ONNX export cache lands in .slimbench-cache/ of the working directory
    common = ["--runtime", runtime, "--imgsz", str(IMGSZ), "--threads", "1", "--calls", "2", "--warmup", "1"]
    rc, out, err = _cli(["profile", str(v8["original"]), *common, "--top", "40"], capsys)  # every layer by name
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("original ") and "unattributed" in lines[0]
    assert "22 Detect: DFL (softmax + fixed conv)" in out and "fixed cost" in out
    assert "rest of the layers" not in out and len(lines) == 2 + 26 + (runtime != "torch") + 1  # 26 rows, unattributed
    rc, out, err = _cli(["profile", str(v8["original"]), str(v8["pruned"]), *common, "--top", "5"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("pruned ") and "vs original" in lines[0] and "model layers alone" in lines[0]
    assert "ref ms" in lines[1] and "GFLOPs x" in lines[1]
    body = lines[2:]
    assert any(line.startswith("rest of the layers") for line in body)
    assert body[-1].startswith("unattributed")
    assert len(body) >= 5 + 2  # five layers by name, the rest, (reorders,) unattributed
    if runtime == "onnxruntime":
        assert (tmp_path / ".slimbench-cache" / "onnx").is_dir()


def _one_line_exit_2(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_profile_bad_input_is_one_line_exit_2(
    v8: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, _, err = _cli(["profile", str(tmp_path / "nope.pt")], capsys)
    _one_line_exit_2(rc, err, "nope.pt", "not found")
    rc, _, err = _cli(["profile", str(v8["original"]), str(tmp_path / "gone.pt")], capsys)
    _one_line_exit_2(rc, err, "gone.pt", "not found")
    rc, _, err = _cli(["profile", str(v8["original"]), "--runtime", "tensorrt"], capsys)
    _one_line_exit_2(rc, err, "--runtime", "tensorrt")
    rc, _, err = _cli(["profile", str(v8["original"]), "--imgsz", "100"], capsys)
    _one_line_exit_2(rc, err, "--imgsz", "multiple of 32")
    from dataclasses import replace

    from slimbench.runtimes import registry

    absent = replace(registry.RUNTIMES["openvino"], missing=lambda: "openvino not installed (No module named x)")
    monkeypatch.setitem(registry.RUNTIMES, "openvino", absent)
    rc, _, err = _cli(["profile", str(v8["original"]), "--runtime", "openvino"], capsys)
    _one_line_exit_2(rc, err, "--runtime openvino", "not installed")
