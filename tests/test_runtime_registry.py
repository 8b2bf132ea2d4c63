"""One runtime interface (slimbench.runtimes.registry) and one bridge to pytest-benchmark's run state
(slimbench.bench.benchmark_bridge): names, the runner cache's keys, and what the bridge reads."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from slimbench.bench import benchmark_bridge
from slimbench.core.timing_key import RUNTIMES
from slimbench.runtimes import registry


def test_every_timed_runtime_has_one_entry():
    assert tuple(registry.RUNTIMES) == RUNTIMES
    assert registry.FILE_RUNTIMES == ("onnxruntime", "openvino")
    assert registry.missing_reason("torch") is None and not registry.runtime("torch").runs_file
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        registry.runtime("tensorrt")


def test_one_cache_keys_a_static_batch_only_where_the_runtime_compiles_one(monkeypatch, tmp_path):
    loads = []

    def fake(path, device, threads, batch, imgsz):
        loads.append((path.name, device, threads, batch, imgsz))
        return object()

    for name in registry.FILE_RUNTIMES:
        monkeypatch.setitem(registry.RUNTIMES, name, replace(registry.RUNTIMES[name], load_file=fake))
    runners, f = registry.Runners(imgsz=64), tmp_path / "m.onnx"
    ort = runners.get("onnxruntime", f, "cpu", 2, 1)
    assert runners.get("onnxruntime", f, "cpu", 2, 8) is ort, "dynamic batch: one ONNX Runtime session"
    assert runners.get("onnxruntime", f, "cpu", 1) is not ort, "one session per thread count"
    ov1 = runners.get("openvino", f, "cpu", 2, 1)
    assert runners.get("openvino", f, "cpu", 2, 8) is not ov1 and runners.get("openvino", f, "cpu", 2, 1) is ov1
    assert len(loads) == 4 and loads[-1] == ("m.onnx", "cpu", 2, 8, 64)
    with pytest.raises(ValueError, match="torch does not run ONNX files"):
        runners.get("torch", f, "cpu", 2)


def test_the_bridge_reads_results_regressions_and_the_json_file(tmp_path):
    done = SimpleNamespace(
        name="test_forward[a]", group="forward-cpu", extra_info=None, stats=SimpleNamespace(data=[1.0])
    )
    empty = SimpleNamespace(__bool__=lambda: False)
    json_file = tmp_path / "benchmark.json"
    bs = SimpleNamespace(benchmarks=[done, None, empty and None], performance_regressions=[("x", 1)], json=json_file)
    config = SimpleNamespace(**{benchmark_bridge.SESSION_ATTR: bs})
    assert benchmark_bridge.benchmarks(config) == [
        benchmark_bridge.Benchmark("test_forward[a]", "forward-cpu", {}, [1.0])
    ]
    assert benchmark_bridge.regressions(config) == [("x", "1")]
    assert benchmark_bridge.json_written(config, ran=True) is None, "not written yet"
    json_file.write_text("{}")
    assert benchmark_bridge.json_written(config, ran=True) == str(json_file)
    benchmark_bridge.drop_json_without_benchmarks(config, [SimpleNamespace(fixturenames=("slimbench",))])
    assert bs.json is None
    nothing = SimpleNamespace()  # pytest-benchmark not active
    assert benchmark_bridge.benchmarks(nothing) == [] and benchmark_bridge.regressions(nothing) == []
