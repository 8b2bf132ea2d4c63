"""What accuracy does each latency cost? Prune one original to several latency targets, fine-tune each, plot.

    python tools/latency_sweep.py fixtures/models/original.pt --data DATA.yaml --targets 0.43 0.55 0.7 \
        --epochs 15 --out docs/sweep --manifest fixtures/manifest.json

For each target R: ``prune --target-latency R --runtime onnxruntime`` (2 threads, b1, 640 px: measured and
corrected as the command does), the pruned model's mAP50-95, then ``finetune`` for ``--epochs`` with make-fixtures'
settings (256 px, batch 32, seed 0, close_mosaic 6), and its mAP50-95 again. Writes ``OUT.csv`` and ``OUT.png``
(mAP50-95 against GFLOPs ratio; with ``--manifest``: the converged original, the equal-budget control and the
bundled Network Slimming variants drawn beside the points). The points are direct pruning + fine-tuning, without the
sparsity stage: a cheaper method than the bundled line's, so they bound what that line can cost from below.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    from slimbench.model.checkpoint import load_detector, save_detector
    from slimbench.model.static_metrics import count_params, gflops
    from slimbench.pruning.latency_target import LatencySettings, prune_to_latency
    from slimbench.pruning.reference_stage import validate_map
    from slimbench.pruning.training import train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("original", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--targets", type=float, nargs="+", default=[0.43, 0.55, 0.7])
    p.add_argument("--runtime", default="onnxruntime")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("docs/sweep"))
    p.add_argument("--manifest", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "slimbench" / "latency")
    a = p.parse_args()

    base = load_detector(a.original).model
    g0, p0 = gflops(base, 640), count_params(base)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        work = Path(tmp)
        for target in a.targets:
            s = LatencySettings(runtime=a.runtime, threads=a.threads)
            pruned, result = prune_to_latency(load_detector(a.original), target, s, a.cache, work)
            path = save_detector(pruned, work / f"pruned_{target:g}.pt")
            before = validate_map(path, a.data, 256, 32, "cpu", work)["map50_95"]
            tuned = train(
                path,
                a.data,
                epochs=a.epochs,
                imgsz=256,
                batch=32,
                project=work / "runs",
                name=f"ft_{target:g}",
                keep_shape=True,
                seed=0,
                close_mosaic=6,
            )
            after = validate_map(tuned.best, a.data, 256, 32, "cpu", work)["map50_95"]
            net = load_detector(tuned.best).model
            rows.append(
                {
                    "target": target,
                    "measured_latency_ratio": round(result.measured, 3),
                    "gflops_ratio": round(gflops(net, 640) / g0, 4),
                    "params_ratio": round(count_params(net) / p0, 4),
                    "map50_95_pruned": round(before, 4),
                    "map50_95_finetuned": round(after, 4),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out.with_suffix(".csv"), index=False)
    print(table.to_string(index=False))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    label = f"latency-steered prune + {a.epochs} ep fine-tune"
    ax.plot(table.gflops_ratio, table.map50_95_finetuned, "o-", label=label)
    for _, r in table.iterrows():
        ax.annotate(f"lat {r.measured_latency_ratio:.2f}", (r.gflops_ratio, r.map50_95_finetuned), fontsize=8)
    if a.manifest is not None:
        m = json.loads(a.manifest.read_text())
        v = m["variants"]
        ax.axhline(v["original"]["map50_95"], color="k", ls="--", lw=1, label="converged original")
        ax.axhline(v["original"]["map50_95"] - 0.02, color="k", ls=":", lw=1, label="converged original - 0.02")
        if "control" in m and m["control"].get("map50_95") is not None:
            ax.axhline(m["control"]["map50_95"], color="tab:green", ls="--", lw=1, label="equal-budget control")
        ratio = v["finetuned"]["gflops_at_640"] / v["original"]["gflops_at_640"]
        bundled = "bundled Network Slimming (fine-tuned)"
        ax.plot([ratio], [v["finetuned"]["map50_95"]], "s", color="tab:red", label=bundled)
    ax.set_xlabel("GFLOPs ratio to the original (640 px)")
    ax.set_ylabel("mAP50-95, synthetic val (256 px)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out.with_suffix(".png"), dpi=120)
    print(f"wrote {a.out.with_suffix('.csv')} and {a.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
