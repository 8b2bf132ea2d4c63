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


def recorded_plan_shares(manifest: Path, model: Any) -> tuple[tuple[tuple[str, float], ...], dict[str, Any]]:
    """The shares and record of the latency plan a make-fixtures manifest recorded, to train the same cut again
    without timing anything (a plan measured again on a busy or other machine plans another cut). Refused in one
    line when the file holds no plan or names a layer ``model`` (the detection model it applies to) lacks."""
    from slimbench.core.errors import SlimbenchError
    from slimbench.core.files import read_json_object
    from slimbench.pruning.sparsity import unmatched_layer_targets

    where = f"{manifest}: --plan-from"
    record = read_json_object(manifest, "--plan-from manifest").get("latency_plan")
    shares = record.get("shares") if isinstance(record, dict) else None
    if not isinstance(shares, dict) or not shares:
        raise SlimbenchError(f"{where}: records no latency plan (a build with --target-latency records one)")
    pairs = tuple((str(k), float(v)) for k, v in shares.items())
    missing = unmatched_layer_targets(model, [k for k, _ in pairs])
    if missing:
        raise SlimbenchError(f"{where}: the plan names {missing[0]}, which holds no BatchNorm of this model")
    return pairs, {**record, "recorded_in": str(manifest)}


def share_plan_size(
    yolo: Any, share: float, layer_shares: dict[str, float], round_to: int, imgsz: int = 640
) -> dict[str, float]:
    """GFLOPs and parameter ratios of ``yolo`` pruned to the widths that per-layer sparsity targets (``share``, or
    the longest matching ``layer_shares`` prefix) leave, without training: the size of a sweep point in seconds
    before its 20 minutes of building. Exact when the threshold rule removes what the targets pushed to zero."""
    from slimbench.model.static_metrics import count_params, gflops
    from slimbench.pruning.latency_target import pruned_to_widths
    from slimbench.pruning.sparsity import kept_width, unit_share

    pruned = pruned_to_widths(
        yolo, lambda u: min(u.width, kept_width(u.width, unit_share(u.name, share, layer_shares), round_to)), round_to
    )
    before, after = yolo.model, pruned.model
    return {
        "gflops_ratio": round(gflops(after, imgsz) / gflops(before, imgsz), 4),
        "params_ratio": round(count_params(after) / count_params(before), 4),
    }
