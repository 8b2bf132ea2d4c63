"""At equal measured latency, what does latency steering keep that a uniform ratio does not?

    python tools/steer_vs_uniform.py yolov8n.yaml --runtime onnxruntime --target 0.5 --threads 2 --imgsz 640

Prunes the model (a YAML, nc=80, or a checkpoint) with ``prune --target-latency`` and measures its ratio m; then
finds, by bisection on measured ratios, the uniform per-layer ratio (``prune --ratio``) that measures m too (within
0.02), and prints both: measured ratio, parameters, GFLOPs and the kept BN-scale importance (the sum over kept
channels of |gamma| / their layer's max; on an untrained model, the kept channel count).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
from torch import nn


def kept_importance(model: nn.Module) -> float:
    total = 0.0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            g = m.weight.detach().float().abs()
            total += float((g / g.max().clamp_min(1e-12)).sum())
    return total


def main() -> None:
    from ultralytics import YOLO

    from slimbench.model.static_metrics import count_params, gflops
    from slimbench.pruning import latency_measure
    from slimbench.pruning.latency_table import DEFAULT_CACHE
    from slimbench.pruning.latency_target import LatencySettings, prune_to_latency
    from slimbench.pruning.structural import prune_detection_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--runtime", default="onnxruntime")
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    a = p.parse_args()
    torch.manual_seed(0)
    yolo = YOLO(a.model)
    s = LatencySettings(runtime=a.runtime, threads=a.threads, imgsz=a.imgsz)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        steered, result = prune_to_latency(yolo, a.target, s, a.cache, work)
        m_s = result.measured
        ref = latency_measure.model_forward(yolo, a.runtime, a.threads, 1, a.imgsz, work)
        lo, hi, best = 0.05, 0.95, None
        for _ in range(8):
            r = (lo + hi) / 2
            cand = copy.deepcopy(yolo)
            prune_detection_model(cand.model, r)
            fwd = latency_measure.model_forward(cand, a.runtime, a.threads, 1, a.imgsz, work)
            m_u = latency_measure.paired_ratio(ref, fwd)
            print(f"uniform ratio {r:.3f}: measured {m_u:.3f}")
            if best is None or abs(m_u - m_s) < abs(best[1] - m_s):
                best = (r, m_u, cand)
            if abs(m_u - m_s) <= 0.02:
                break
            lo, hi = (r, hi) if m_u > m_s else (lo, r)
    assert best is not None
    rows = [("latency-steered", m_s, steered.model), (f"uniform --ratio {best[0]:.3f}", best[1], best[2].model)]
    print(f"\n{'plan':28s} {'measured':>8s} {'params':>10s} {'GFLOPs':>7s} {'kept importance':>16s}")
    for name, m, net in rows:
        print(f"{name:28s} {m:8.3f} {count_params(net):10,} {gflops(net, a.imgsz):7.2f} {kept_importance(net):16.1f}")


if __name__ == "__main__":
    main()
