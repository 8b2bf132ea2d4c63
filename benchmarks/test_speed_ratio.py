"""The speed gate: candidate time / reference time, timed in interleaved pairs in this test, median compared with
the candidate's max_speed_ratio. A ratio measured side by side survives a noisy machine; an absolute time does not.
"""

import pytest

from slimbench.timing import interleaved_ratio
from slimbench.variants import violation


def test_speed_ratio(slimbench, candidate, device, batch):
    s = slimbench.settings
    limit = slimbench.limits(candidate.name).max_speed_ratio
    if limit is None:
        pytest.skip(f"{candidate.name}: no max_speed_ratio in the config")
    ref_name = slimbench.reference.name
    ref_fn = slimbench.forward_callable(ref_name, device, batch)
    cand_fn = slimbench.forward_callable(candidate.name, device, batch)
    result = interleaved_ratio(ref_fn, cand_fn, s.speed_pairs)
    slimbench.record(candidate.name, "speed_ratio", f"{device}-b{batch}-{s.imgsz}", result.as_dict())
    if slimbench.smoke:
        pytest.skip(f"smoke mode: speed ratio {result.median:.3f} from {len(result.ratios)} pairs, not gated")
    slimbench.gate(
        [
            violation(
                candidate.name,
                f"speed ratio ({device}, batch {batch}, {s.imgsz}px)",
                result.median,
                limit,
                "max",
                "{:.3f}",
                note=f"median of {len(result.ratios)} interleaved pairs vs {ref_name}, {result.speedup:.2f}x speedup",
            )
        ]
    )
