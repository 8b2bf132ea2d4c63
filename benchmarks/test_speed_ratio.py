"""The speed gate: candidate time / reference time, timed in interleaved pairs in this test, median compared with
the candidate's limit for the runtime: max_speed_ratio (torch) or max_ort_speed_ratio (ONNX Runtime, on the ONNX
exports). A ratio measured side by side survives a noisy machine; an absolute time does not. Pruning gains differ
by runtime, hence one limit per runtime.
"""

import pytest

from slimbench.config import violation
from slimbench.errors import SlimbenchError
from slimbench.ort_runtime import NoProvider
from slimbench.timing import interleaved_ratio

LIMIT_KEYS = {"torch": "max_speed_ratio", "onnxruntime": "max_ort_speed_ratio"}


def test_speed_ratio(slimbench, candidate, device, batch, threads, runtime):
    s = slimbench.settings
    limit_key = LIMIT_KEYS.get(runtime)
    if limit_key is None:
        pytest.skip(f"no speed-ratio limit for {runtime} (its cells are in the deployment matrix, marker matrix)")
    limit = getattr(slimbench.limits(candidate.name), limit_key)
    if limit is None:
        pytest.skip(f"{candidate.name}: no {limit_key} in the config")
    ref_name = slimbench.reference.name
    try:
        ref_fn = slimbench.runtime_callable(ref_name, runtime, device, batch, threads)
        cand_fn = slimbench.runtime_callable(candidate.name, runtime, device, batch, threads)
    except SlimbenchError as e:
        pytest.fail(str(e), pytrace=False)
    except NoProvider as e:  # no ONNX Runtime provider for this device (CUDA without onnxruntime-gpu)
        pytest.skip(str(e))
    result = interleaved_ratio(ref_fn, cand_fn, s.speed_pairs)
    slimbench.record(
        candidate.name, "speed_ratio", slimbench.timing_key(device, batch, runtime, threads), result.as_dict()
    )
    if slimbench.smoke:
        pytest.skip(f"smoke mode: speed ratio {result.median:.3f} from {len(result.ratios)} pairs, not gated")
    where = f"{device}, batch {batch}, {threads} threads, {s.imgsz}px" + (
        ", onnxruntime" if runtime == "onnxruntime" else ""
    )
    slimbench.gate(
        [
            violation(
                candidate.name,
                f"speed ratio ({where})",
                result.median,
                limit,
                "max",
                "{:.3f}",
                note=f"median of {len(result.ratios)} interleaved pairs vs {ref_name}, {result.speedup:.2f}x speedup",
            )
        ]
    )
