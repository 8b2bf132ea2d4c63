"""The deployment view: each variant as it ships, exported to ONNX and run by ONNX Runtime, and its peak memory.

- ``test_onnx_parity``: the variant is exported through ultralytics' exporter (cached by checkpoint sha256, imgsz
  and exporter version; the file size is recorded); the ONNX file's raw outputs must match the checkpoint's on the
  same input within settings.parity_atol / parity_rtol, and its detections on the sample images must be the
  checkpoint's (same boxes at IoU >= 0.95, same classes: agreement 1.0). A variant whose export fails fails here
  with the exporter's reason; the others still run.
- ``test_peak_memory``: peak resident memory of inference per runtime, batch and thread count, each in a fresh
  process (so one model's allocations do not hide another's); ``torch.cuda.max_memory_allocated`` on a GPU. A
  candidate's inference memory is gated like speed, as a ratio to the reference's measured in the same run
  (``max_memory_ratio``); the absolute figures are reported and kept in the stored baseline.
"""

import pytest

from slimbench.config import violation
from slimbench.errors import SlimbenchError
from slimbench.memory import memory_ratio
from slimbench.ort_runtime import NoProvider, missing_reason


def test_onnx_parity(slimbench, variant):
    if "onnxruntime" not in slimbench.settings.runtime:
        pytest.skip("onnxruntime not in settings.runtime / --runtime")
    why = missing_reason()
    if why:
        pytest.skip(why)
    try:
        exported = slimbench.onnx(variant.name)
        figs = slimbench.parity(variant.name)
    except SlimbenchError as e:
        pytest.fail(str(e), pytrace=False)
    slimbench.record(variant.name, "deployment", "onnx_size_mb", exported.size_mb)
    problems = []
    if not figs["ok"]:
        shape = "" if figs["shape"] else " (output shapes differ)"
        problems.append(
            f"{variant.name}: ONNX output differs from the checkpoint's: max abs diff {figs['max_abs_diff']:.3g} "
            f"> atol {figs['atol']:g} + rtol {figs['rtol']:g} x |torch|{shape} (batch {figs['batch']})"
        )
    for image, agr in figs["images"].items():
        if not agr["identical"]:
            problems.append(
                f"{variant.name} on {image}: ONNX detections differ from the checkpoint's: {agr['matched']} of "
                f"{agr['reference_count']} boxes kept, {agr['candidate_count']} found (same class, IoU >= "
                f"{agr['iou_threshold']})"
            )
    slimbench.gate(problems)


def test_peak_memory(slimbench, variant, device, runtime, batch, threads):
    if not slimbench.settings.memory:
        pytest.skip("settings.memory = false")
    if runtime == "openvino":
        pytest.skip("peak memory is measured for torch and onnxruntime only")
    if runtime == "onnxruntime" and device != "cpu":
        from slimbench.ort_runtime import provider_for

        provider, why = provider_for(device)
        if provider is None:
            pytest.skip(why)
    try:
        figs = slimbench.memory(variant.name, runtime, batch, device, threads)
    except NoProvider as e:
        pytest.skip(str(e))
    except SlimbenchError as e:
        pytest.fail(str(e), pytrace=False)
    key = slimbench.timing_key(device, batch, runtime, threads)
    slimbench.record(variant.name, "memory", key, figs)
    limit = slimbench.limits(variant.name).max_memory_ratio
    if variant.is_reference or limit is None:
        return
    ref_name = slimbench.reference.name
    try:
        ref = slimbench.memory(ref_name, runtime, batch, device, threads)
    except SlimbenchError as e:
        pytest.fail(str(e), pytrace=False)
    ratio = memory_ratio(figs, ref)
    slimbench.record(variant.name, "memory_ratio", key, ratio)
    slimbench.gate(
        [
            violation(
                variant.name,
                f"memory ratio ({runtime}, {device}, batch {batch}, {threads} threads)",
                ratio["ratio"],
                limit,
                "max",
                "{:.3f}",
                note=f"{ratio['unit']} {ratio['candidate']:.0f} vs {ratio['reference']:.0f} MB of {ref_name}, same run",
            )
        ]
    )
