"""The speed gate: candidate time / reference time, timed in interleaved pairs, median compared with the
candidate's limit for the runtime: max_speed_ratio (torch) or max_ort_speed_ratio (ONNX Runtime, on the ONNX
exports). A ratio measured side by side survives a noisy machine; an absolute time does not. Pruning gains differ
by runtime, hence one limit per runtime.
"""

from slimbench.bench.checks import speed_ratio


def test_speed_ratio(slimbench, candidate, device, batch, threads, runtime):
    slimbench.gate(speed_ratio(slimbench, candidate.name, device, batch, threads, runtime))
