"""The thread count is a stated setting: its default is the CPUs available to the process (never what
``import ultralytics`` left in OMP_NUM_THREADS), it reaches torch and ONNX Runtime, and it names every timed cell."""

from __future__ import annotations

import os

import pytest
import torch

from slimbench.bench.session import SuiteSession
from slimbench.config.overrides import Overrides, apply_overrides
from slimbench.config.suite import Settings, SuiteConfig, Variant, config_from_dict
from slimbench.core.errors import SlimbenchError
from slimbench.core.timing_key import TimingKey
from slimbench.measure.timing import available_cpus, use_threads


def config(tmp_path, **settings) -> SuiteConfig:
    return config_from_dict(
        {"reference": "a", "variants": {"a": {"path": "a.pt"}}, "settings": settings}, base=tmp_path
    )


def test_default_threads_are_the_available_cpus_even_after_ultralytics_was_imported(tmp_path):
    import ultralytics  # noqa: F401 - sets OMP_NUM_THREADS=1 when it is unset

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == expected
    session = SuiteSession(config(tmp_path))
    assert session.settings.threads == (expected,)


def test_threads_come_from_the_config_and_the_command_line(tmp_path):
    assert config(tmp_path, threads=[1, 4]).settings.threads == (1, 4)
    assert config(tmp_path, threads=2).settings.threads == (2,)
    assert apply_overrides(config(tmp_path), Overrides(threads="1,3")).settings.threads == (1, 3)
    with pytest.raises(SlimbenchError, match=r"--threads '0': expected comma-separated integers >= 1"):
        apply_overrides(config(tmp_path), Overrides(threads="0"))
    with pytest.raises(SlimbenchError, match="settings.threads: expected an integer >= 1"):
        config(tmp_path, threads=[0])
    smoke = SuiteSession(SuiteConfig("a", {"a": Variant("a", tmp_path / "a.pt")}, Settings(threads=(1, 2))), smoke=True)
    assert smoke.settings.threads == (1,)


def test_use_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
        assert use_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError):
        use_threads(0)


def test_timing_keys_name_runtime_device_batch_threads_and_size():
    key = TimingKey.of("onnxruntime", "cpu", 8, 2, 640)
    assert str(key) == "ort-cpu-b8-t2-640" and key.label == "ort-cpu-b8-t2"
    assert TimingKey.parse("ort-cpu-b8-t2-640") == key == TimingKey.parse("ort-cpu-b8-t2", imgsz=640)
    torch_key = TimingKey.parse("cuda:1-b1-t4-320")
    assert (torch_key.runtime, torch_key.device, torch_key.batch, torch_key.threads) == ("torch", "cuda:1", 1, 4)
    assert sorted([key, TimingKey.of("torch", "cpu", 8, 2, 640)])[0].runtime == "torch"
    for bad in ("cpu-b1-640", "trt-cpu-b1-t1-640", "cpu-b1-t2"):
        with pytest.raises(ValueError):
            TimingKey.parse(bad)
