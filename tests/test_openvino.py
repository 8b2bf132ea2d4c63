"""OpenVINO on tiny variants: the FP32 export compiled by OpenVINO computes what the checkpoint computes (raw
outputs within 1e-3 + 1e-3 x |torch|, as ONNX Runtime), the compiled model runs with the thread count it is told
and the latency hint, and a missing openvino or GPU is a reason to skip, not a crash."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from slimbench.measure.timing import seeded_input, timing_model
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.runtimes import onnx_runtime as ort_runtime
from slimbench.runtimes import openvino_runtime as ovr
from slimbench.runtimes.export import export_onnx

pytestmark = pytest.mark.skipif(ovr.missing_reason() is not None, reason=str(ovr.missing_reason()))


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    cache = tmp_path_factory.mktemp("ov-cache")
    return {
        name: export_onnx(load_detector(path), sha256_of(path), 64, cache, name=name).path
        for name, path in (("original", tiny.original), ("pruned", tiny.pruned))
    }


@pytest.mark.parametrize("name", ["original", "pruned"])
@pytest.mark.parametrize("batch", [1, 3])
def test_openvino_outputs_match_the_checkpoint(tiny, exported, name, batch):
    net = timing_model(load_detector(getattr(tiny, name)))
    x = seeded_input(batch, 64)
    with torch.inference_mode():
        want = net(x)[0].numpy()
    compiled = ovr.compile_model(exported[name], "cpu", num_threads=1, batch=batch, imgsz=64)
    got = ovr.run(compiled, x.numpy())
    p = ort_runtime.parity(got, want, atol=1e-3, rtol=1e-3)
    assert p.ok and p.shape == (batch, 6, 84), p


def test_openvino_runs_the_dynamic_file_without_a_fixed_shape(exported):
    compiled = ovr.compile_model(exported["pruned"], "cpu", num_threads=1)
    x = seeded_input(2, 64).numpy()
    want = ort_runtime.run(ort_runtime.session(exported["pruned"], "cpu", 1), x)
    assert ort_runtime.parity(ovr.run(compiled, x), want).ok


def test_parity_catches_a_different_model(tiny, exported):
    x = seeded_input(1, 64)
    with torch.inference_mode():
        want = timing_model(load_detector(tiny.blind))(x)[0].numpy()
    got = ovr.run(ovr.compile_model(exported["original"], "cpu", 1, 1, 64), x.numpy())
    assert not ort_runtime.parity(got, want).ok


def test_compiled_model_states_its_threads_and_hint(exported):
    compiled = ovr.compile_model(exported["pruned"], "cpu", num_threads=2, batch=2, imgsz=64)
    assert ovr.threads_of(compiled) == 2
    assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    assert int(compiled.get_property("NUM_STREAMS")) == 1
    fn = ovr.forward_fn(compiled, np.zeros((2, 3, 64, 64), np.float32))
    fn()
    assert ovr.threads_of(ovr.compile_model(exported["pruned"], "cpu", num_threads=1)) == 1


def test_devices_without_openvino_support_say_why(exported):
    assert ovr.ov_device("cpu") == ("CPU", "CPU")
    assert ovr.ov_device("mps")[0] is None
    if not any(d.startswith("GPU") for d in ovr.core().available_devices):
        device, why = ovr.ov_device("gpu")
        assert device is None and "OpenVINO sees no GPU device" in why
        with pytest.raises(ovr.NoDevice, match="no GPU"):
            ovr.compile_model(exported["pruned"], "gpu")


def test_missing_openvino_is_a_reason(monkeypatch):
    assert ovr.missing_reason() is None
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an environment without it looks like to import
    why = ovr.missing_reason()
    assert why is not None and why.startswith("openvino not installed")
