"""INT8 static quantization of a tiny variant with ONNX Runtime's tools: the file holds an INT8 graph (INT8 weights
and QDQ nodes counted), the Detect head's decoding stays FP32, the cache is reused and a tampered file rebuilt, and
bad calibration input or a failing quantizer is one line naming the path or the variant."""

from __future__ import annotations

import json

import pytest

from slimbench.core.errors import SlimbenchError
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.runtimes import quantize
from slimbench.runtimes.export import export_onnx

IMGSZ = 64


@pytest.fixture(scope="module")
def fp32(tiny, tmp_path_factory):
    cache = tmp_path_factory.mktemp("q-export")
    sha = sha256_of(tiny.original)
    return export_onnx(load_detector(tiny.original), sha, IMGSZ, cache, name="original"), sha


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    import tiny_models

    root = tmp_path_factory.mktemp("calib")
    for i, size in enumerate((160, 96, 200, 128)):
        tiny_models.write_scene(root / f"scene_{i}.jpg", size)
    return root


@pytest.fixture
def counted(monkeypatch):
    """Count the quantizer's runs (the real quantizer still runs)."""
    calls = []
    real = quantize._run_quantizer

    def spy(*a, **k):
        calls.append(a[-1])
        return real(*a, **k)

    monkeypatch.setattr(quantize, "_run_quantizer", spy)
    return calls


def _quantize(fp32, calib, cache, settings=quantize.DEFAULT_SETTINGS, name="original"):
    exported, sha = fp32
    return quantize.quantize_onnx(exported.path, exported.key, sha, IMGSZ, calib, cache, settings, name=name)


def test_quantization_produces_an_int8_graph(fp32, calib_dir, tmp_path):
    calib = quantize.calibration_set(calib_dir)
    q = _quantize(fp32, calib, tmp_path)
    before, after = quantize.graph_counts(fp32[0].path), quantize.graph_counts(q.path)
    assert before.int8_initializers == 0 and before.quantize_linear == before.dequantize_linear == 0
    assert after.convs == before.convs
    assert after.int8_convs == after.convs - 1, "every conv takes INT8 weights but the DFL's (head decoding, FP32)"
    assert after.quantize_linear >= after.int8_convs and after.dequantize_linear >= 2 * after.int8_convs
    assert after.int8_initializers >= after.int8_convs
    assert q.size_mb < 0.5 * fp32[0].size_mb, "INT8 weights: well under half the FP32 file"
    side = json.loads(q.path.with_suffix(".json").read_text())
    assert side["onnx_sha256"] == sha256_of(q.path) == q.sha256
    assert side["calibration_sha256"] == calib.sha256 and side["settings"]["per_channel"] is True
    assert q.as_dict()["calibration_images"] == 4 and "MinMax calibration, per-channel" in q.as_dict()["quantization"]


def test_the_detect_heads_decoding_is_excluded(fp32):
    import onnx

    model = onnx.load(str(fp32[0].path))
    prefix = quantize.head_prefix(model)
    excluded = quantize.head_nodes_to_exclude(model)
    assert prefix and prefix.startswith("/model.")
    assert any(n.endswith("dfl/conv/Conv") for n in excluded) and any("Sigmoid" in n for n in excluded)
    assert not any(n[len(prefix) :].startswith(("cv2.", "cv3.")) for n in excluded), "the head's conv towers: INT8"


def test_int8_cache_is_reused_and_keyed_by_what_changes_the_file(fp32, calib_dir, tmp_path, counted):
    calib = quantize.calibration_set(calib_dir)
    first = _quantize(fp32, calib, tmp_path)
    again = _quantize(fp32, calib, tmp_path)
    assert first.built and not again.built and len(counted) == 1
    assert again.path == first.path and again.sha256 == first.sha256
    fewer = quantize.calibration_set(calib_dir, max_images=3)  # another calibration set: another key
    per_tensor = quantize.QuantSettings(per_channel=False)  # other settings: another key
    assert _quantize(fp32, fewer, tmp_path).path != first.path
    assert _quantize(fp32, calib, tmp_path, per_tensor).path != first.path
    assert len(counted) == 3
    assert quantize.cache_key("k", "ab" * 32, per_tensor, "1.2") != quantize.cache_key(
        "k", "ab" * 32, per_tensor, "1.3"
    )


@pytest.mark.parametrize("damage", ["tamper", "sidecar"])
def test_a_tampered_int8_file_is_rebuilt_never_used(fp32, calib_dir, tmp_path, counted, damage):
    calib = quantize.calibration_set(calib_dir)
    first = _quantize(fp32, calib, tmp_path)
    data = first.path.read_bytes()
    if damage == "tamper":
        first.path.write_bytes(data[:-64] + bytes(64))
    else:
        first.path.with_suffix(".json").write_text("[]")
    rebuilt = _quantize(fp32, calib, tmp_path)
    assert rebuilt.built and len(counted) == 2 and rebuilt.path == first.path
    assert sha256_of(rebuilt.path) == rebuilt.sha256


def test_an_empty_calibration_folder_is_one_line_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SlimbenchError) as e:
        quantize.calibration_set(tmp_path)
    assert str(e.value).startswith(f"{tmp_path}: no calibration images in the folder") and "\n" not in str(e.value)
    with pytest.raises(SlimbenchError, match="calibration images not found"):
        quantize.calibration_set(tmp_path / "missing")


def test_an_undecodable_calibration_image_is_one_line_naming_it(fp32, calib_dir, tmp_path):
    import shutil

    folder = tmp_path / "calib"
    shutil.copytree(calib_dir, folder)
    bad = folder / "scene_9.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SlimbenchError) as e:
        _quantize(fp32, quantize.calibration_set(folder), tmp_path / "cache")
    assert str(e.value).startswith(f"{bad}: calibration image does not decode") and "\n" not in str(e.value)
    assert not list((tmp_path / "cache").rglob("*.onnx")), "nothing cached"


def test_a_failed_quantization_is_one_line_naming_the_variant(fp32, calib_dir, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    def broken(*a, **k):
        raise RuntimeError("Unsupported op\nin graph")

    monkeypatch.setattr(ortq, "quantize_static", broken)
    with pytest.raises(SlimbenchError) as e:
        _quantize(fp32, quantize.calibration_set(calib_dir), tmp_path, name="pruned")
    assert str(e.value) == "pruned: INT8 quantization failed (RuntimeError: Unsupported op in graph)"
    assert not list((tmp_path / "int8").glob("*.onnx")), "nothing cached"
    assert not any(p.name.startswith(".int8-") for p in (tmp_path / "int8").iterdir()), "temp folder removed"


def test_calibration_input_is_the_exports_preprocessing():
    import numpy as np

    img = np.zeros((32, 64, 3), np.uint8)
    img[..., 2] = 255  # BGR red
    x = quantize.preprocess(img, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert x[0, 0, 32, 32] == 1.0 and x[0, 2, 32, 32] == 0.0, "RGB order, /255"
    assert np.isclose(x[0, 1, 0, 0], 114 / 255), "letterbox padding in grey 114, image centred"
