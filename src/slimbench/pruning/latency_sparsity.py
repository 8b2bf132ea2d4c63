"""make-fixtures' sparsity shares from the latency plan: each layer loses the share that the plan for a measured
latency target on a runtime removes from it (slimbench.pruning.latency_target), instead of hand-picked layers.

The plan is made on the original the sparsity stage starts from, measured and corrected on this machine as
``prune --target-latency`` does; only its per-layer shares are used, so the threshold rule after sparsity removes
the channels the plan chose (and any others that sparsity drove to zero).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from slimbench.pruning.latency_table import DEFAULT_CACHE


def latency_plan_shares(
    yolo: Any,
    target: float,
    runtime: str,
    threads: int,
    step: int,
    imgsz: int = 640,
    cache_dir: Path = DEFAULT_CACHE,
    log: Any = print,
    max_layer_ratio: float = 0.9,
) -> tuple[tuple[tuple[str, float], ...], dict[str, Any]]:
    """(layer name, share) pairs for the sparsity recipe from the plan that prunes ``yolo`` (an ultralytics YOLO,
    left as it was) to ``target`` on ``runtime`` at batch 1, and the plan's record for the manifest.

    ``max_layer_ratio`` caps the share of any one unit: uncapped (0.9), the plan cuts the costly high-resolution units
    to 8 channels first, which leaves the stem and the stride-8 path a bottleneck that training does not recover."""
    from slimbench.pruning.latency_target import LatencySettings, prune_to_latency

    settings = LatencySettings(
        runtime=runtime, threads=threads, batch=1, imgsz=imgsz, step=step, max_layer_ratio=max_layer_ratio
    )
    with tempfile.TemporaryDirectory(prefix="slimbench-latency-") as work:
        _, result = prune_to_latency(yolo, target, settings, cache_dir, Path(work), log=log)
    shares = result.sparsity_shares()
    record = {
        "runtime": runtime,
        "target": target,
        "threads": threads,
        "batch": 1,
        "imgsz": imgsz,
        "max_layer_ratio": max_layer_ratio,
        "rounds": [{k: round(v, 4) for k, v in r.items()} for r in result.rounds],
        "measured": round(result.measured, 4),
        "params_ratio": round(result.params_after / max(1, result.params_before), 4),
        "plan": {unit: list(wk) for unit, wk in result.plan.items()},
        "shares": {name: round(v, 4) for name, v in shares},
    }
    return shares, record
