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

from slimbench.bench.checks import onnx_parity, peak_memory


def test_onnx_parity(slimbench, variant):
    slimbench.gate(onnx_parity(slimbench, variant.name))


def test_peak_memory(slimbench, variant, device, runtime, batch, threads):
    slimbench.gate(peak_memory(slimbench, variant.name, device, runtime, batch, threads))
