"""The deployment matrix (marker ``matrix``; off unless ``--precision`` / ``[settings] precision`` is given):
each variant x ONNX-based runtime (``onnxruntime``, ``openvino`` from ``--runtime``) x precision (``fp32``, ``int8``)
x device x batch x threads.

- ``test_cell_latency``: pytest-benchmark rounds of the cell (p50/p90/p99, FPS in extra_info and the summary);
  the speedup against the reference in the same cell is read from the medians at summary time.
- ``test_cell_vs_torch``: the cell against the reference in torch FP32 in interleaved pairs (the whole gain a user
  gets, measured side by side); reported, not gated.
- ``test_cell_agreement``: the cell's detections against the same variant's FP32 checkpoint on the sample and
  agreement images; INT8 cells are gated by ``min_int8_agreement_map50``.
- ``test_cell_map`` (also marker ``accuracy``): mAP of every cell on the dataset (OpenVINO's through an IR folder);
  INT8 gated by ``max_int8_map50_95_drop`` against the FP32 checkpoint's mAP50-95.

INT8 files: static QDQ quantization with onnxruntime.quantization (slimbench.runtimes.quantize), calibrated on
``--calibration DIR`` (default: the dataset's val split with ``--data``, else the agreement images), cached.
"""

import pytest

from slimbench.bench.checks import cell_vs_torch, measured
from slimbench.bench.matrix import accuracy_key, cell_key
from slimbench.measure.timing import latency_figures
from slimbench.runtimes.registry import FILE_RUNTIMES, missing_reason

pytestmark = pytest.mark.matrix


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    from slimbench.core.timing_key import RUNTIME_IDS
    from slimbench.plugin import get_session

    s = get_session(metafunc.config).settings
    cells = [(rt, p) for rt in s.runtime if rt in FILE_RUNTIMES for p in s.precision] or [("off", "off")]
    ids = [f"{RUNTIME_IDS.get(rt, rt)}-{p}" for rt, p in cells]
    metafunc.parametrize("cell", cells, ids=ids)


def _check(slimbench, runtime):
    if not slimbench.settings.precision:
        pytest.skip("deployment matrix off: give --precision fp32,int8 or [settings] precision")
    if runtime == "off":
        pytest.skip("no ONNX-based runtime in --runtime / settings.runtime (onnxruntime, openvino)")
    why = missing_reason(runtime)
    if why:
        pytest.skip(why)


def test_cell_latency(benchmark, slimbench, variant, cell, device, batch, threads):
    runtime, precision = cell
    _check(slimbench, runtime)
    fn = measured(lambda: slimbench.deploy.callable(variant.name, runtime, precision, device, batch, threads))
    key = cell_key(runtime, precision, device, batch, threads)
    benchmark.group = f"matrix-{device}-b{batch}-t{threads}-{slimbench.settings.imgsz}"
    benchmark.extra_info.update(
        variant=variant.name, runtime=runtime, precision=precision, device=device, batch=batch, threads=threads
    )
    benchmark(fn)
    stats = getattr(benchmark, "stats", None)  # None with --benchmark-disable
    if stats is None:
        return
    timed = latency_figures(stats.stats.data, batch)
    timed.update(runtime=runtime, precision=precision, device=device, batch=batch, threads=threads)
    benchmark.extra_info.update({k: timed.get(k) for k in ("p50_s", "p90_s", "p99_s", "fps")})
    slimbench.figures[variant.name].matrix[key] = timed


def test_cell_vs_torch(slimbench, variant, cell, device, batch, threads):
    runtime, precision = cell
    _check(slimbench, runtime)
    figs = cell_vs_torch(slimbench, variant.name, runtime, precision, device, batch, threads)
    assert 0 < figs["median_ratio"] < float("inf"), f"{variant.name} {runtime}-{precision}: no time measured"


def test_cell_agreement(slimbench, variant, cell, threads):
    from slimbench.core.undefined import defined

    runtime, precision = cell
    _check(slimbench, runtime)
    score = measured(lambda: slimbench.deploy.agreement(variant.name, runtime, precision, threads))
    figs = slimbench.figures[variant.name].matrix_accuracy.setdefault(accuracy_key(*cell), {})
    figs.update(
        agreement_map50=defined(score.map50),
        agreement_recall=defined(score.recall),
        agreement_precision=defined(score.precision),
        agreement_images=score.images,
    )
    if precision == "int8":
        note = f"{score.reference_boxes} boxes of the FP32 checkpoint on {score.images} images as truth"
        key = accuracy_key(*cell)
        slimbench.gate(
            slimbench.judge(
                variant.name,
                "int8_agreement_map50",
                figs["agreement_map50"],
                cell=key,
                who=f"{variant.name} {key}",
                note=note,
                undefined=score.undefined("map50"),
            )
        )


@pytest.mark.accuracy
def test_cell_map(slimbench, variant, cell):
    runtime, precision = cell
    _check(slimbench, runtime)
    reason = slimbench.map_unsupported()
    if reason:
        pytest.skip(reason)
    figs = measured(lambda: slimbench.deploy.map(variant.name, runtime, precision))
    fp32 = slimbench.map_metrics(variant.name)
    drop = fp32["map50_95"] - figs["map50_95"]
    acc = slimbench.figures[variant.name].matrix_accuracy.setdefault(accuracy_key(*cell), {})
    acc.update(map50=figs["map50"], map50_95=figs["map50_95"], map50_95_drop_vs_fp32=drop)
    if precision == "int8":
        note = f"{figs['map50_95']:.3f} vs {fp32['map50_95']:.3f} of the FP32 checkpoint"
        key = accuracy_key(*cell)
        slimbench.gate(
            slimbench.judge(variant.name, "int8_map50_95_drop", drop, cell=key, who=f"{variant.name} {key}", note=note)
        )
