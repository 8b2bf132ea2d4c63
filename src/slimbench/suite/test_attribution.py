"""Where the time goes: each variant's forward time per layer, per runtime, at batch 1 (marker ``attribution``).

Runs once per variant x runtime x device, on the run's first thread count, outside the timed loops: a few warm-up
calls, then a handful of profiled calls, the median per layer kept. torch times each top-level layer and each part
of the head (box and class towers, YOLO26's one-to-one towers, DFL, decode) with forward hooks; ONNX Runtime and
OpenVINO profile the ONNX export per node, each node mapped back to the layer whose module produced it. The report's
"where the time goes" section and ``summary.json``'s ``attribution`` set each candidate's layers beside the
reference's: ms, share of the forward time, latency ratio beside GFLOPs ratio. Reported, never gated.

Off with ``[settings] attribution = false``; deselect with ``-m "not attribution"``.
"""

import pytest

from slimbench.bench.checks import attribution

pytestmark = pytest.mark.attribution


def test_attribution(slimbench, variant, device, runtime):
    slimbench.gate(attribution(slimbench, variant.name, device, runtime))
