"""ONNX Runtime on tiny variants: the exported file computes what the checkpoint computes (raw outputs within the
stated tolerance, at batch 1 and through the dynamic batch axis), the session uses the stated thread count, the
parity check catches a real difference, and a missing onnxruntime is a reason, not a crash; tools/ort_spinning.py
times the suite's sessions."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tiny_models
import torch

from slimbench.measure.timing import seeded_input, timing_model
from slimbench.model.checkpoint import load_detector, sha256_of
from slimbench.runtimes import onnx_runtime as ort_runtime
from slimbench.runtimes.export import export_onnx


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    cache = tmp_path_factory.mktemp("ort-cache")
    return {
        name: export_onnx(load_detector(path), sha256_of(path), 64, cache, name=name).path
        for name, path in (("original", tiny.original), ("pruned", tiny.pruned))
    }


@pytest.mark.parametrize("name", ["original", "pruned"])
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_outputs_match_the_checkpoint(tiny, exported, name, batch):
    net = timing_model(load_detector(getattr(tiny, name)))
    x = seeded_input(batch, 64)
    with torch.inference_mode():
        want = net(x)[0].numpy()
    sess = ort_runtime.session(exported[name], "cpu", num_threads=1)
    got = ort_runtime.run(sess, x.numpy())
    p = ort_runtime.parity(got, want, atol=1e-3, rtol=1e-3)
    assert p.ok and p.shape == (batch, 6, 84), p
    assert p.max_abs_diff < 1e-3 and p.as_dict()["ok"] is True


def test_parity_catches_a_different_model(tiny, exported):
    """The original's export against a checkpoint of the same shape with other class logits (the untrained tiny
    variants differ little in their raw outputs): same shape, different numbers."""
    x = seeded_input(1, 64)
    with torch.inference_mode():
        want = timing_model(load_detector(tiny.blind))(x)[0].numpy()
    got = ort_runtime.run(ort_runtime.session(exported["original"], "cpu"), x.numpy())
    p = ort_runtime.parity(got, want)
    assert p.shape_ok and not p.ok and p.max_abs_diff > 0.5
    assert not ort_runtime.parity(got[:, :4], want).ok, "a shape mismatch never passes"


def test_parity_tolerance_is_numpys_allclose_rule():
    b = np.array([0.0, 100.0, 0.5])
    assert ort_runtime.parity(b + np.array([1e-3, 0.1, 0.0]), b, atol=1e-3, rtol=1e-3).ok
    assert not ort_runtime.parity(b + np.array([0.0, 0.2, 0.0]), b, atol=1e-3, rtol=1e-3).ok


def test_session_states_its_threads_and_the_timed_call_runs(exported):
    sess = ort_runtime.session(exported["pruned"], "cpu", num_threads=2)
    opts = sess.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]
    for key, value in ort_runtime.NO_SPINNING.items():  # alternating sessions must not spin against each other
        assert opts.get_session_config_entry(key) == value == "0"
    ort_runtime.forward_fn(sess, np.zeros((2, 3, 64, 64), np.float32))()


def test_devices_without_a_provider_say_why():
    assert ort_runtime.provider_for("cpu")[0] == "CPUExecutionProvider"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        provider, why = ort_runtime.provider_for("cuda")
        assert provider is None and "no CUDAExecutionProvider" in why
        with pytest.raises(ort_runtime.NoProvider):
            ort_runtime.session("unused.onnx", "cuda")


def test_missing_onnxruntime_is_a_reason(monkeypatch):
    assert ort_runtime.missing_reason() is None
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an environment without it looks like to import
    why = ort_runtime.missing_reason()
    assert why is not None and why.startswith("onnxruntime not installed")


def test_the_spinning_tool_times_the_suites_sessions_and_two_other_modes(exported, capsys):
    tool = tiny_models.load_tool("ort_spinning")
    assert tool.MODES["off"] == {}, "the tool's 'off' must be the suite's sessions as they are"
    opts = ort_runtime.session(exported["pruned"], "cpu", 2, config=tool.MODES["run"]).get_session_options()
    assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0", "the suite's entry kept"
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    paths = [exported["original"], exported["pruned"]]
    for alternate in (False, True):
        ms = tool.medians_ms(paths, 1, "off", runs=3, alternate=alternate)
        assert len(ms) == 2 and all(m > 0 for m in ms)
    with pytest.raises(SystemExit) as stop:
        tool.main([str(exported["original"]), "missing.onnx"])
    assert stop.value.code == 2 and "not a file: missing.onnx" in capsys.readouterr().err
