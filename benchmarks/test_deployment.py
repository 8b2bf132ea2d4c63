"""The deployment view: each variant as it ships, exported to ONNX and run by ONNX Runtime, and its peak memory.

- ``test_onnx_parity``: the variant is exported through ultralytics' exporter (cached by checkpoint sha256, imgsz
  and exporter version; the file size is recorded); the ONNX file's raw outputs must match the checkpoint's on the
  same input within settings.parity_atol / parity_rtol, and its detections on the sample images must be the
  checkpoint's (same boxes at IoU >= 0.95, same classes: agreement 1.0). A variant whose export fails fails here
  with the exporter's reason; the others still run.
- ``test_peak_memory``: peak resident memory of inference per runtime and batch, each in a fresh process (so one
  model's allocations do not hide another's); ``torch.cuda.max_memory_allocated`` on a GPU. Measured, reported and
  kept in the stored baseline; not gated by a threshold here.
"""

import pytest

from slimbench.errors import SlimbenchError
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
        if agr["recall"] < 1.0 or agr["precision"] < 1.0:
            problems.append(
                f"{variant.name} on {image}: ONNX detections differ from the checkpoint's: {agr['matched']} of "
                f"{agr['reference_count']} boxes kept, {agr['candidate_count']} found (same class, IoU >= "
                f"{agr['iou_threshold']})"
            )
    slimbench.gate(problems)


def test_peak_memory(slimbench, variant, device, runtime, batch):
    if not slimbench.settings.memory:
        pytest.skip("settings.memory = false")
    if runtime == "onnxruntime" and device != "cpu":
        from slimbench.ort_runtime import provider_for

        provider, why = provider_for(device)
        if provider is None:
            pytest.skip(why)
    try:
        figs = slimbench.memory(variant.name, runtime, batch, device)
    except NoProvider as e:
        pytest.skip(str(e))
    except SlimbenchError as e:
        pytest.fail(str(e), pytrace=False)
    slimbench.record(variant.name, "memory", slimbench.timing_key(device, batch, runtime), figs)
